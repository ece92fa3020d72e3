/* SPDX-License-Identifier: MIT */
/*
 * rls_json.h - envoyproxy/ratelimit's POST /json body and reply: a
 * RateLimitRequest and a RateLimitResponse in the proto3 JSON mapping
 * (lowerCamel or original field names read; lowerCamel written; enums as
 * names; default values omitted; a Duration as "<s>[.<frac>]s").
 */
#ifndef SLUICE_RLS_JSON_H
#define SLUICE_RLS_JSON_H

#include <jansson.h>

#include "rls/rls.h"

#define SLUICE_RLS_JSON_MAX 65536 /* bytes of a /json body */

/* A parsed request: req's strings point into root (free with _json_req_free). */
typedef struct sluice__rls_json_req {
    json_t *root;
    sluice__rls_request req;
    sluice__rls_descriptor *descriptors;
} sluice__rls_json_req;

/**
 * Parses body into out.  0, or -1 with code ("malformed_json", "bad_type",
 * "bad_request", "body_too_large") and a message in why.
 */
int sluice__rls_json_parse(const char *body, size_t len, sluice__rls_json_req *out,
                           const char **code, char *why, size_t whysize);
void sluice__rls_json_req_free(sluice__rls_json_req *r);

/** The reply as a new JSON object (NULL on OOM).  headers: {"key","value"} pairs or NULL. */
json_t *sluice__rls_json_reply(const sluice__rls_reply *r, json_t *headers);

#endif /* SLUICE_RLS_JSON_H */
