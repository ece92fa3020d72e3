/* SPDX-License-Identifier: MIT */
/*
 * fuzz_rls.c - envoyproxy/ratelimit descriptor files (src/rls/rls_load.c
 * on the YAML layer of src/policy): any text loads or is refused with
 * "<file>:<line>: <reason>"; a file that loads is matched the way
 * requests are: descriptors built from its own tree (each node's key and
 * value, then its first child's, with a value that does not match too),
 * so the lookup index, wildcards and overrides see the loaded shapes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rls/rls_int.h"

static void match_tree(const sluice__rls_domain *dom, const sluice__rls_node *kids, int nkids,
                       sluice__rls_descriptor *d, int depth)
{
    for (int i = 0; i < nkids && i < 8; i++) {
        const sluice__rls_node *n = &kids[i];
        if (d->nentries >= SLUICE_RLS_MAX_ENTRIES || depth > 4)
            return;
        sluice__rls_entry *e = &d->entries[d->nentries++];
        e->key = n->key;
        e->key_len = strlen(n->key);
        e->value = n->value ? n->value : "any-value";
        e->value_len = strlen(e->value);
        sluice__rls_hit h;
        sluice__rls_match(dom, dom->name, strlen(dom->name), d, &h);
        /* an override of the descriptor's limit, as a request may carry */
        d->has_limit = true;
        d->limit_requests_per_unit = 7;
        d->limit_unit = (i % 9);
        sluice__rls_match(dom, dom->name, strlen(dom->name), d, &h);
        d->has_limit = false;
        match_tree(dom, n->kids, n->nkids, d, depth + 1);
        /* the same key with another value */
        e->value = "other";
        e->value_len = 5;
        sluice__rls_match(dom, dom->name, strlen(dom->name), d, &h);
        d->nentries--;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sluice__rls *r = NULL;
    sluice_error err = {0};
    int rc = sluice__rls_load_text(&r, (const char *)data, size, "fuzz.yaml", &err);
    if (rc != 0) {
        if (r || strncmp(err.msg, "fuzz.yaml:", 10) != 0)
            abort(); /* every refusal names the file (and its line) */
        return 0;
    }
    for (int i = 0; i < r->ndomains; i++) {
        const sluice__rls_domain *dom = &r->domains[i];
        if (sluice__rls_find_domain(r, dom->name, strlen(dom->name)) != dom)
            abort();
        static sluice__rls_descriptor d;
        memset(&d, 0, sizeof(d));
        match_tree(dom, dom->kids, dom->nkids, &d, 0);
    }
    sluice__rls_free(r);
    return 0;
}
