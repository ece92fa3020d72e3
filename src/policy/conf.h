/* SPDX-License-Identifier: MIT */
/*
 * conf.h - helpers shared by the config loader's files (config.c, rules.c,
 * conf_util.c): error reporting as "<file>:<line>: <reason>", typed reads of
 * YAML nodes, key checking with "did you mean" hints, identity and CIDR
 * parsing.  Internal to src/policy; nothing here does I/O.
 */
#ifndef SLUICE_POLICY_CONF_H
#define SLUICE_POLICY_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "policy/policy.h"
#include "policy/yaml_doc.h"
#include "sluice.h"

#define SLUICE_CONFIG_FILE_MAX (4u << 20) /* bytes in a config file */
#define SLUICE_MAX_RULES 4096
#define SLUICE_MAX_TIERS 64
#define SLUICE_MAX_IDENT 16
#define SLUICE_MAX_TRUSTED 1024
#define SLUICE_HEADER_NAME_MAX 128
#define SLUICE_PATH_MAX 2048
#define SLUICE_STORE_URL_MAX 4096

/* The state of one load: where messages go. */
typedef struct sluice__cload {
    const char *file; /* name used in messages */
    sluice_error *err;
} sluice__cload;

/**
 * Fills err (may be NULL) with code and "<file>:<line>: <reason>"; line <= 0
 * gives "<file>: <reason>".  A long file name is shortened from the left so
 * the reason always fits.  Returns code.
 */
int sluice__conf_fail(sluice_error *err, int code, const char *file, int line, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));

/** sluice__conf_fail(SLUICE_ECONFIG) at node n's line. */
int sluice__cerr(sluice__cload *c, const sluice__ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** SLUICE_ENOMEM with "out of memory". */
int sluice__cnomem(sluice__cload *c);

/**
 * Checks that n is a mapping whose keys are unique strings drawn from
 * allowed (NULL-terminated); an unknown key is reported with the nearest
 * allowed one ("did you mean ...?").  what names the mapping in messages.
 */
int sluice__ckeys(sluice__cload *c, const sluice__ynode *n, const char *what,
                  const char *const *allowed);

/** A non-empty string scalar (quoted or plain, not null) of at most max bytes. */
int sluice__cstr(sluice__cload *c, const sluice__ynode *n, const char *key, size_t max,
                 const char **out);
/** A plain decimal integer in [lo, hi]. */
int sluice__cint(sluice__cload *c, const sluice__ynode *n, const char *key, int64_t lo,
                 int64_t hi, int64_t *out);
/** true/false (also yes/no, on/off). */
int sluice__cbool(sluice__cload *c, const sluice__ynode *n, const char *key, bool *out);
/** A duration with a unit suffix (ms s m h d), in [lo, hi] ms. */
int sluice__cduration(sluice__cload *c, const sluice__ynode *n, const char *key, int64_t lo,
                      int64_t hi, int64_t *out);
/** One of names[] (NULL-terminated); *out is its index. */
int sluice__cenum(sluice__cload *c, const sluice__ynode *n, const char *key,
                  const char *const *names, int *out);

/** True when s is a valid HTTP header name (RFC 9110 token). */
bool sluice__header_name_ok(const char *s);

/**
 * Parses an identity source ("ip", "api_key", "user", "header:<Name>") from
 * node n into *id (id->header is allocated).
 */
int sluice__cident(sluice__cload *c, const sluice__ynode *n, sluice__ident *id);

/** Parses a list (or a single scalar) of identity sources into a new array. */
int sluice__cident_list(sluice__cload *c, const sluice__ynode *n, const char *key,
                        sluice__ident **out, int *nout);

/** Frees an identity array of n entries.  Accepts NULL. */
void sluice__ident_free(sluice__ident *id, int n);

/** Parses "a.b.c.d[/n]" or "v6[/n]" into *out (host bits cleared). 0 or -1. */
int sluice__cidr_parse(const char *s, sluice__cidr *out);

/** Parses the rules list into cfg->rules (config.c calls it). */
int sluice__conf_rules(sluice__cload *c, const sluice__ynode *key, const sluice__ynode *n,
                       sluice_config *cfg);

/** Frees the rules of cfg (rules.c). */
void sluice__conf_rules_free(sluice_config *cfg);

#endif /* SLUICE_POLICY_CONF_H */
