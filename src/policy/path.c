/* SPDX-License-Identifier: MIT */
/*
 * path.c - the canonical form of a request path, the one rules are matched
 * against.  A limit on /api/auth/login must hold for every spelling that the
 * server behind sluice routes to the same handler: nginx (and most servers)
 * decode %XX, merge slashes and resolve "." and ".." before routing, and many
 * frameworks route "/login/" to "/login".  Matching the raw bytes let a
 * client pick a looser rule, or none, by spelling the path
 * "//api/auth/login", "/api/auth/./login", "/api/x/../auth/login",
 * "/api/auth/%6cogin" or "/api/auth/login/".
 *
 * Case is kept: paths are case-sensitive on nginx and in most frameworks.
 * "%00" and malformed escapes are kept as they are (never a NUL byte).
 */
#include <string.h>

#include "policy/policy.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t sluice__path_canon(const char *in, size_t len, char *out)
{
    /* Decoding first, as nginx does, so "%2e%2e" is a ".." segment and
     * "%2f" a separator. */
    size_t n = 0;
    if (len == 0 || in[0] != '/')
        out[n++] = '/'; /* so every segment below has a slash before it */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%' && i + 2 < len) {
            int hi = hexval((unsigned char)in[i + 1]), lo = hexval((unsigned char)in[i + 2]);
            if (hi >= 0 && lo >= 0 && (hi | lo) != 0) {
                out[n++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        out[n++] = (char)c;
    }
    /* Then segments, in place (the output never outruns the input): o is
     * the end of the canonical prefix, which always starts with '/'. */
    size_t o = 0, r = 0;
    while (r < n) {
        while (r < n && out[r] == '/')
            r++;
        size_t s = r;
        while (r < n && out[r] != '/')
            r++;
        size_t sl = r - s;
        if (sl == 0)
            break; /* only slashes left: a trailing slash, dropped */
        if (sl == 1 && out[s] == '.')
            continue;
        if (sl == 2 && out[s] == '.' && out[s + 1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* the slash before the dropped segment */
            continue;
        }
        out[o++] = '/';
        memmove(out + o, out + s, sl);
        o += sl;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return o;
}
