/* SPDX-License-Identifier: MIT */
/*
 * quickstart.c - the README's program: load a config, open the embedded
 * store, and ask for six decisions for one client against a limit of 5 per
 * minute.  Built with every build so the README cannot go stale.
 *
 *   cc quickstart.c $(pkg-config --cflags --libs --static sluice) -o quickstart
 */
#include <sluice.h>
#include <stdio.h>
#include <string.h>

static const char config[] = "rules:\n"
                             "  - name: login\n"
                             "    match: { method: POST, path: /api/auth/login }\n"
                             "    key: ip\n"
                             "    limits:\n"
                             "      - { algorithm: fixed_window, limit: 5, window: 1m }\n";

int main(void)
{
    sluice_error err;
    sluice_config *cfg = NULL;
    sluice_store *store = NULL;
    int rc = 1;

    if (sluice_config_load_string(&cfg, config, strlen(config), "inline", &err) != 0 ||
        sluice_store_open(&store, "memory://", NULL, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }

    sluice_request req = {.method = "POST", .path = "/api/auth/login", .ip = "203.0.113.7"};
    sluice_match m;
    if (sluice_config_match(cfg, &req, &m, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        goto out;
    }
    for (int i = 0; i < 6; i++) {
        sluice_decision d;
        if (sluice_decide(store, cfg, &m, 1, SLUICE_NOW, &d, &err) != 0) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            goto out;
        }
        printf("%s %s: allowed=%d remaining=%lld retry_after_ms=%lld\n", m.rule, m.key,
               d.allowed, (long long)d.remaining, (long long)d.retry_after_ms);
    }
    rc = 0;
out:
    sluice_store_close(store);
    sluice_config_free(cfg);
    return rc;
}
