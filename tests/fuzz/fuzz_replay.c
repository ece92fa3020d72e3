/* SPDX-License-Identifier: MIT */
/*
 * fuzz_replay.c - `sluice replay`'s input lines (src/cli/cli_replay.c):
 * the input is stdin of a replay, `TIME_MS RULE[@TIER] KEY [COST]` a
 * line, decided on a fresh memory:// store with a config holding every
 * algorithm, tiers, several limits per rule, and limits at the bounds the
 * loader accepts (largest limit, longest window, 1 ms windows), so any
 * time and cost a line can carry reaches the algorithms.  Both output
 * forms (tab-separated, --json) are written to /dev/null.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char config[] =
    "rules:\n"
    "  - name: fw\n"
    "    limits: [ { algorithm: fixed_window, limit: 3, window: 1s } ]\n"
    "  - name: sl\n"
    "    limits: [ { algorithm: sliding_log, limit: 10000, window: 366d } ]\n"
    "  - name: sw\n"
    "    limits: [ { algorithm: sliding_window, limit: 142418, window: 366d } ]\n"
    "  - name: tb\n"
    "    limits: [ { algorithm: token_bucket, limit: 1000000000, window: 4503599ms, burst: 1 } ]\n"
    "  - name: lb\n"
    "    limits: [ { algorithm: leaky_bucket, limit: 3, window: 1s, burst: 5 } ]\n"
    "  - name: mix\n"
    "    limits:\n"
    "      - { algorithm: fixed_window, limit: 1, window: 1ms }\n"
    "      - { algorithm: sliding_window, limit: 7, window: 1500ms }\n"
    "      - { algorithm: token_bucket, limit: 5000, window: 90m }\n"
    "      - { algorithm: leaky_bucket, limit: 10, window: 1s, burst: 20 }\n"
    "      - { algorithm: sliding_log, limit: 5, window: 1d }\n"
    "  - name: tiered\n"
    "    tiers:\n"
    "      free: [ { algorithm: sliding_window, limit: 100, window: 1h } ]\n"
    "      gold: [ { algorithm: token_bucket, limit: 1000000000, window: 1ms } ]\n";

static sluice_config *cfg;
static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        sluice_error err = {0};
        if (sluice_config_load_string(&cfg, config, sizeof(config) - 1, "replay.yaml", &err) != 0 ||
            !(devnull = fopen("/dev/null", "w")))
            abort();
    }
    FILE *in = fmemopen((void *)data, size, "r");
    if (!in)
        return 0;
    for (int json = 0; json < 2; json++) {
        /* a fresh store each time: a replay starts from nothing */
        sluice_store *store = NULL;
        sluice_error err = {0};
        if (sluice_store_open(&store, "memory://", NULL, &err) != 0)
            abort();
        rewind(in);
        cli_replay_stream(cfg, store, json, in, devnull, devnull);
        sluice_store_close(store);
    }
    fclose(in);
    return 0;
}
