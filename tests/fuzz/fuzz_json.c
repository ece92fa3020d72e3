/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json.c - the JSON bodies of POST /v1/check (jansson, every field
 * type-checked, matched, decided) and POST /json (envoyproxy/ratelimit's
 * RateLimitRequest in proto3 JSON, src/rls/rls_json.c, decided on the
 * descriptor files of the config), through sluiced's real connection
 * layer and handlers (fuzz_sluiced.c).  The body is sent whole after a
 * Content-Length header, then a second request on the same connection,
 * so a body that confuses the handler shows in the next reply's framing.
 *
 * Input: byte 0 bit 0 picks the endpoint, the rest is the body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sluiced.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 70000)
        return 0;
    const char *path = data[0] & 1 ? "/json" : "/v1/check";
    size_t body = size - 1;
    static char req[71000];
    int n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: sluiced\r\nContent-Type: application/json\r\n"
                     "X-API-Key: k1\r\nContent-Length: %zu\r\n\r\n",
                     path, body);
    memcpy(req + n, data + 1, body);
    static const char next[] = "GET /healthz HTTP/1.1\r\nHost: sluiced\r\n\r\n";
    memcpy(req + n + body, next, sizeof(next) - 1);
    fz_session((const uint8_t *)req, (size_t)n + body + sizeof(next) - 1, NULL, 0, 0, 0);
    return 0;
}
