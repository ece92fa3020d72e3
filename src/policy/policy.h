/* SPDX-License-Identifier: MIT */
/*
 * policy.h - the loaded configuration: global settings and the rules, as
 * plain immutable data.  Loading (config.c) validates everything; matching
 * (match.c) only reads.  Nothing here does I/O after load.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice.h"

typedef enum sluice__id_kind {
    SLUICE_ID_IP = 0,     /* "ip"            -> "ip:<addr>" */
    SLUICE_ID_API_KEY,    /* "header:X-API-Key" or "api_key" -> "api_key:<v>" */
    SLUICE_ID_USER,       /* "header:X-User-Id" or "user" -> "user:<v>" */
    SLUICE_ID_HEADER      /* "header:<Name>" -> "header:<name>:<v>" */
} sluice__id_kind;

typedef struct sluice__ident {
    int kind;        /* sluice__id_kind */
    char *header;    /* header name for API_KEY/USER/HEADER; NULL for IP */
} sluice__ident;

typedef struct sluice__limit_set {
    int n;
    sluice_limit limits[SLUICE_MAX_LIMITS];
} sluice__limit_set;

typedef struct sluice__tier {
    char *name;
    sluice__limit_set set;
} sluice__tier;

typedef struct sluice__rule {
    char *name;          /* 1..SLUICE_RULE_NAME_MAX (64) bytes of [A-Za-z0-9_.-]; unique */
    int line;            /* where it starts in the file */
    char *method;        /* NULL: any method; else uppercased ("post" -> "POST") */
    char *path;          /* NULL: any path (a slash-star path, or none); else exact, or prefix when
                          * prefix is true; compared with the query string stripped */
    bool prefix;         /* path ended in '*' (stored without the '*') */
    int nident;          /* 0: use the config's identify list */
    sluice__ident *ident;
    bool shadow;         /* decide and count, never deny; already true when the
                          * config's top-level shadow is */
    bool shape;          /* leaky bucket: /v1/authorize waits delay_ms (default true) */
    sluice__limit_set set; /* when ntiers == 0 */
    int ntiers;
    sluice__tier *tiers;  /* the first is the fallback unless one is named "free" */
    int default_tier;     /* index used for unknown/missing tiers (0 without tiers) */
} sluice__rule;

typedef struct sluice__cidr {
    int family;          /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;            /* prefix length; host bits of addr are zero */
} sluice__cidr;

enum { SLUICE_HEADERS_LEGACY = 1, SLUICE_HEADERS_IETF = 2, SLUICE_HEADERS_BOTH = 3,
       SLUICE_HEADERS_NONE = 0 };

struct sluice_config {
    char *file;          /* name used in messages */
    char *listen;        /* "127.0.0.1:8080" */
    char *grpc_listen;   /* Envoy RLS gRPC listener "host:port"; NULL = off */
    int workers;         /* 0 = auto */
    char *store;         /* "memory://" */
    int timeout_ms;      /* 20 */
    int on_store_error;  /* sluice_on_store_error */
    int headers;         /* SLUICE_HEADERS_* */
    int ntrusted;
    sluice__cidr *trusted; /* default: 127.0.0.1/32 and ::1/128 */
    int nident;
    sluice__ident *ident;  /* default: header:X-API-Key, header:X-User-Id, ip */
    int deny_status;     /* 429 */
    char *tier_header;   /* "X-User-Tier" */
    bool shadow;         /* top-level shadow: every rule */
    struct sluice__rls *rls; /* descriptors_config's files (src/rls); never NULL once loaded */
    int rls_semantics;   /* descriptors_semantics: SLUICE_RLS_SEM_* */
    int nrules;
    sluice__rule *rules;
};

/* The limits a match selects (rule's own, or its tier's); NULL for a bad index. */
const sluice__limit_set *sluice__config_limits(const sluice_config *cfg, const sluice_match *m);

/* Longest request path matched against rules (longer: SLUICE_EINVAL). */
#define SLUICE_REQUEST_PATH_MAX 16384

/*
 * Writes the canonical form of the path in[0..len) (no query string) to out,
 * which holds at least len + 2 bytes, NUL-terminated; returns its length.
 * %XX decoded (not %00), slashes merged, "." and ".." resolved (never above
 * the root), a trailing slash dropped; "/" for an empty path (path.c).
 */
size_t sluice__path_canon(const char *in, size_t len, char *out);

/* The name of the tier whose limits sluice__config_limits picks (the default
 * tier for a bad tier_index), or NULL for a rule without tiers or a bad match. */
const char *sluice__config_tier_name(const sluice_config *cfg, const sluice_match *m);

/*
 * True when addr (textual IPv4 or IPv6; an IPv4-mapped IPv6 address counts
 * as IPv4) lies in one of the config's trusted proxy ranges.  False for
 * NULL or text that is not an address.
 */
bool sluice__config_trusted(const sluice_config *cfg, const char *addr);

/*
 * Parses "10ms", "5s", "1m", "2h", "1d" (digits then exactly one unit) into
 * *ms.  Returns 0, or -1 for anything else (a bare number, a sign, spaces,
 * overflow) leaving *ms unchanged.
 */
int sluice__parse_duration(const char *s, int64_t *ms);

#endif /* SLUICE_POLICY_H */
