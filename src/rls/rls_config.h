/* SPDX-License-Identifier: MIT */
/*
 * rls_config.h - the hooks config.c calls for the Envoy RLS keys
 * (descriptors_config, descriptors_semantics); see rls_config.c.
 */
#ifndef SLUICE_RLS_CONFIG_H
#define SLUICE_RLS_CONFIG_H

#include "policy/conf.h"

/** Parses one of the RLS keys (others: 0, nothing done); loads the descriptor files. */
int sluice__rls_conf_setting(sluice__cload *c, const char *key, const sluice__ynode *v,
                             sluice_config *cfg);
/** After every setting: an empty descriptor set when descriptors_config was absent. */
int sluice__rls_conf_finish(sluice__cload *c, sluice_config *cfg);
/** Frees cfg's descriptor set. */
void sluice__rls_conf_free(sluice_config *cfg);

#endif /* SLUICE_RLS_CONFIG_H */
