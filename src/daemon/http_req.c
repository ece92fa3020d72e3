/* SPDX-License-Identifier: MIT */
/*
 * http_req.c - the parsed request of sluiced's HTTP front end: header
 * lookup by name (ASCII case-insensitive, over spans into the read buffer),
 * the request target split into path and query by http_parser_parse_url,
 * and method bits.  No parsing of its own beyond comparing names; never
 * allocates.
 */
#include <http_parser.h>
#include <string.h>

#include "http.h"

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

const char *sluiced_http_header(const sluiced_http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->nfields; i++) {
        if (req->name[i].len != n)
            continue;
        const unsigned char *a = (const unsigned char *)req->base + req->name[i].off;
        const unsigned char *b = (const unsigned char *)name;
        size_t k = 0;
        while (k < n && lower(a[k]) == lower(b[k]))
            k++;
        if (k == n)
            return req->value[i].len ? req->base + req->value[i].off : "";
    }
    return NULL;
}

int sluiced_http_method_bit(int m)
{
    switch (m) {
    case HTTP_GET:
        return SLUICED_M_GET;
    case HTTP_POST:
        return SLUICED_M_POST;
    case HTTP_HEAD:
        return SLUICED_M_HEAD;
    case HTTP_PUT:
        return SLUICED_M_PUT;
    case HTTP_DELETE:
        return SLUICED_M_DELETE;
    case HTTP_OPTIONS:
        return SLUICED_M_OPTIONS;
    case HTTP_PATCH:
        return SLUICED_M_PATCH;
    default:
        return SLUICED_M_OTHER;
    }
}

int sluiced_http_split_target(sluiced_http_request *req, sluiced_http_span url)
{
    char *u = req->base + url.off;
    struct http_parser_url pu;
    http_parser_url_init(&pu);
    req->path = "/";
    req->query = NULL;
    /* "*" (OPTIONS *) and anything else without a path keep "/". */
    if (url.len == 0 || http_parser_parse_url(u, url.len, 0, &pu) != 0) {
        u[url.len] = '\0';
        return url.len == 1 && u[0] == '*' ? 0 : -1;
    }
    /* Terminate after reading every offset: the NULs overwrite '?' / '#'. */
    bool has_path = pu.field_set & (1 << UF_PATH);
    bool has_query = pu.field_set & (1 << UF_QUERY);
    size_t p_off = pu.field_data[UF_PATH].off, p_len = pu.field_data[UF_PATH].len;
    size_t q_off = pu.field_data[UF_QUERY].off, q_len = pu.field_data[UF_QUERY].len;
    if (has_query) {
        u[q_off + q_len] = '\0';
        req->query = u + q_off;
    }
    if (has_path && p_len > 0) {
        u[p_off + p_len] = '\0';
        req->path = u + p_off;
    }
    return 0;
}
