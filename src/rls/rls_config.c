/* SPDX-License-Identifier: MIT */
/*
 * rls_config.c - the sluice config keys of Envoy RLS: descriptors_config (a
 * glob pattern or a list of them; relative ones are taken from the config
 * file's directory) is loaded while the config loads, so a loaded config
 * carries its descriptor set and a reload replaces both or neither;
 * descriptors_semantics (envoy | exact).
 */
#include <string.h>

#include "policy/conf.h"
#include "rls/rls_config.h"
#include "rls/rls_int.h"
#include "util/alloc.h"

#define MAX_PATTERNS 64
#define PATTERN_MAX 4096

static sluice__rls empty_set; /* for a config built without the loader */

const sluice__rls *sluice__config_rls(const sluice_config *cfg)
{
    return cfg && cfg->rls ? cfg->rls : &empty_set;
}

void sluice__rls_conf_free(sluice_config *cfg)
{
    sluice__rls_free(cfg->rls);
    cfg->rls = NULL;
}

/* pattern, made relative to the directory of the config file `file` */
static char *resolve(const char *file, const char *pattern)
{
    const char *slash = strrchr(file, '/');
    if (pattern[0] == '/' || !slash)
        return sluice__strdup(pattern);
    size_t dl = (size_t)(slash - file) + 1, pl = strlen(pattern);
    char *p = sluice__malloc(dl + pl + 1);
    if (!p)
        return NULL;
    memcpy(p, file, dl);
    memcpy(p + dl, pattern, pl + 1);
    return p;
}

static int load_patterns(sluice__cload *c, const sluice__ynode *v, sluice_config *cfg)
{
    const sluice__ynode *items[MAX_PATTERNS];
    size_t n = 0;
    if (v->kind == SLUICE_YNODE_SEQ) {
        if (v->n > MAX_PATTERNS)
            return sluice__cerr(c, v, "'descriptors_config' has more than %d patterns",
                                MAX_PATTERNS);
        for (n = 0; n < v->n; n++)
            items[n] = v->kids[n];
    } else if (v->kind == SLUICE_YNODE_SCALAR) {
        items[n++] = v;
    } else {
        return sluice__cerr(c, v, "'descriptors_config' must be a list of file patterns, got %s",
                            sluice__ynode_kind_name(v));
    }
    char *pats[MAX_PATTERNS] = {0};
    int rc = 0, np = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *s;
        rc = sluice__cstr(c, items[i], "descriptors_config", PATTERN_MAX, &s);
        if (rc == 0 && !(pats[np] = resolve(c->file, s)))
            rc = sluice__cnomem(c);
        if (rc == 0)
            np++;
    }
    sluice__rls *r = NULL;
    if (rc == 0)
        rc = sluice__rls_load(&r, (const char *const *)pats, np, c->err);
    for (int i = 0; i < np; i++)
        sluice__free(pats[i]);
    if (rc)
        return rc;
    sluice__rls_free(cfg->rls);
    cfg->rls = r;
    return 0;
}

int sluice__rls_conf_setting(sluice__cload *c, const char *key, const sluice__ynode *v,
                             sluice_config *cfg)
{
    static const char *const sems[] = {"envoy", "exact", NULL};
    if (strcmp(key, "descriptors_semantics") == 0) {
        int idx;
        int rc = sluice__cenum(c, v, key, sems, &idx);
        cfg->rls_semantics = idx == 1 ? SLUICE_RLS_SEM_EXACT : SLUICE_RLS_SEM_ENVOY;
        return rc;
    }
    if (strcmp(key, "descriptors_config") == 0)
        return load_patterns(c, v, cfg);
    return 0;
}

int sluice__rls_conf_finish(sluice__cload *c, sluice_config *cfg)
{
    if (cfg->rls)
        return 0;
    cfg->rls = sluice__calloc(1, sizeof(*cfg->rls));
    return cfg->rls ? 0 : sluice__cnomem(c);
}
