/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c - the YAML config (src/policy, on libyaml): any text loads
 * or is refused with an error; a config that loads is used as sluiced uses
 * it: requests matched against its rules (methods, paths, addresses,
 * identity headers, tiers) and every match decided twice on a memory://
 * store, so limits at the bounds the loader accepts reach the algorithms.
 *
 * Inputs naming descriptors_config are skipped: its value is a list of
 * glob patterns of files to read, and a fuzzer running as root must not
 * open whatever it can spell (devices included).  Backslashes are skipped
 * too, so a double-quoted "\x5f" cannot spell the key either.  Descriptor
 * files have their own target (fuzz_rls) on the same YAML layer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice.h"

static sluice_store *store;

static const char *header(void *ctx, const char *name)
{
    static const char *const h[][2] = {
        {"X-API-Key", "key-1"},
        {"X-User-Id", "u42"},
        {"X-User-Tier", "premium"},
        {"X-Plan", "gold"},
        {"X-Tenant", "t1"},
        {"X-Client-Id", "c"},
        {"Authorization", "Bearer x"},
    };
    (void)ctx;
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (strcasecmp(h[i][0], name) == 0)
            return h[i][1];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memmem(data, size, "descriptors_config", 18) || memchr(data, '\\', size))
        return 0;
    if (!store) {
        sluice_error err = {0};
        if (sluice_store_open(&store, "memory://?max_keys=10000", NULL, &err) != 0)
            abort();
    }
    sluice_config *cfg = NULL;
    sluice_error err = {0};
    if (sluice_config_load_string(&cfg, (const char *)data, size, "fuzz.yaml", &err) != 0) {
        if (cfg || !memchr(err.msg, '\0', sizeof(err.msg)))
            abort();
        return 0;
    }
    sluice_config_store_url(cfg);
    static const struct {
        const char *method, *path, *ip, *tier;
        bool headers;
    } reqs[] = {
        {"GET", "/", "127.0.0.1", NULL, true},
        {"POST", "/api/auth/login", "10.1.2.3", NULL, false},
        {"GET", "/api/search", "::1", NULL, true},
        {"PUT", "/api/v2/items/7", "192.168.1.7", "gold", true},
        {NULL, "/status", NULL, NULL, false},
        {"DELETE", "/a/b/c/d/e/f", "fd00::1", "free", true},
    };
    int64_t now = 1700000000000;
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        sluice_request rq = {.method = reqs[i].method,
                             .path = reqs[i].path,
                             .ip = reqs[i].ip,
                             .header = reqs[i].headers ? header : NULL,
                             .tier = reqs[i].tier};
        sluice_match m;
        if (sluice_config_match(cfg, &rq, &m, &err) != 0)
            continue;
        sluice_decision d;
        for (int k = 0; k < 2; k++)
            sluice_decide(store, cfg, &m, k, now + k, &d, &err);
        /* the same rule by name, as /v1/check and replay ask */
        if (sluice_config_match_rule(cfg, m.rule, m.tier, "id", 2, &m, &err) == 0)
            sluice_decide(store, cfg, &m, 3, now + 7, &d, &err);
    }
    sluice_config_free(cfg);
    return 0;
}
