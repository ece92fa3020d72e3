/* SPDX-License-Identifier: MIT */
/*
 * rls_stub.c - placeholder implementation of src/rls/rls.h so sluiced links
 * while the real loader and decider are written: every set is empty and every
 * descriptor is OK without a limit (upstream's answer for an unknown domain).
 */
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "rls/rls.h"

struct sluice__rls {
    int unused;
};

static sluice__rls empty_set;

int sluice__rls_load(sluice__rls **out, const char *const *patterns, int n, sluice_error *err)
{
    (void)patterns;
    if (!out)
        return SLUICE_EINVAL;
    *out = NULL;
    if (n > 0)
        return sluice__errorf(err, SLUICE_ECONFIG, "descriptors_config: not implemented yet");
    sluice__rls *r = calloc(1, sizeof(*r));
    if (!r)
        return SLUICE_ENOMEM;
    *out = r;
    return 0;
}

void sluice__rls_free(sluice__rls *r)
{
    if (r != &empty_set)
        free(r);
}

int sluice__rls_decide_async(sluice_async *a, const sluice__rls *rls, const sluice_config *cfg,
                             const sluice__rls_request *req, sluice__rls_cb cb, void *arg)
{
    (void)a; (void)rls; (void)cfg;
    if (!req || !cb || req->ndescriptors < 0 || req->ndescriptors > SLUICE_RLS_MAX_DESCRIPTORS)
        return SLUICE_EINVAL;
    static _Thread_local sluice__rls_reply rep;
    memset(&rep, 0, sizeof(rep));
    rep.overall_code = SLUICE_RLS_OK;
    rep.nstatuses = req->ndescriptors;
    for (int i = 0; i < req->ndescriptors; i++)
        rep.statuses[i].code = SLUICE_RLS_OK;
    cb(0, &rep, arg);
    return 0;
}

const sluice__rls *sluice__config_rls(const sluice_config *cfg)
{
    (void)cfg;
    return &empty_set;
}

int sluice__rls_headers(const sluice_config *cfg, const sluice__rls_reply *r,
                        sluice__rls_header_fn fn, void *arg)
{
    (void)cfg; (void)r; (void)fn; (void)arg;
    return 0;
}
