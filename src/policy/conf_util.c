/* SPDX-License-Identifier: MIT */
/*
 * conf_util.c - typed reads of YAML nodes for the config loader, with
 * messages that name the key, the line and what was expected; durations;
 * identity sources; CIDR ranges.  Pure functions of their inputs; the only
 * side effects are allocations through the sluice allocator hook.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "policy/conf.h"
#include "util/alloc.h"

/* ---- errors --------------------------------------------------------------- */

int sluice__conf_fail(sluice_error *err, int code, const char *file, int line, const char *fmt,
                      ...)
{
    if (!err)
        return code;
    err->code = code;
    if (!file)
        file = "<config>";
    /* Keep the reason readable: shorten a long file name from the left. */
    size_t flen = strlen(file);
    const char *dots = "";
    if (flen > 96) {
        file += flen - 93;
        dots = "...";
    }
    int off;
    if (line > 0)
        off = snprintf(err->msg, sizeof(err->msg), "%s%s:%d: ", dots, file, line);
    else
        off = snprintf(err->msg, sizeof(err->msg), "%s%s: ", dots, file);
    if (off < 0 || (size_t)off >= sizeof(err->msg))
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + off, sizeof(err->msg) - (size_t)off, fmt, ap);
    va_end(ap);
    return code;
}

int sluice__cerr(sluice__cload *c, const sluice__ynode *n, const char *fmt, ...)
{
    char reason[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return sluice__conf_fail(c->err, SLUICE_ECONFIG, c->file, n ? n->line : 0, "%s", reason);
}

int sluice__cnomem(sluice__cload *c)
{
    return sluice__conf_fail(c->err, SLUICE_ENOMEM, c->file, 0, "out of memory");
}

/* A value quoted into a message: at most 40 bytes, so the reason fits. */
static const char *shown(const sluice__ynode *n, char *buf, size_t size)
{
    if (n->kind != SLUICE_YNODE_SCALAR)
        return sluice__ynode_kind_name(n);
    if (n->len + 3 <= size && n->len <= 40) {
        snprintf(buf, size, "'%s'", n->str);
        return buf;
    }
    snprintf(buf, size, "'%.37s...'", n->str);
    return buf;
}

/* ---- keys -------------------------------------------------------------------- */

/* Edit distance, capped: strings longer than 63 bytes are simply "far". */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

int sluice__ckeys(sluice__cload *c, const sluice__ynode *n, const char *what,
                  const char *const *allowed)
{
    char buf[64];
    if (n->kind != SLUICE_YNODE_MAP)
        return sluice__cerr(c, n, "%s must be a mapping, got %s", what, shown(n, buf, sizeof(buf)));
    for (size_t i = 0; i < n->n; i++) {
        const sluice__ynode *k = n->kids[2 * i];
        if (k->kind != SLUICE_YNODE_SCALAR)
            return sluice__cerr(c, k, "keys of %s must be strings, got %s", what,
                                sluice__ynode_kind_name(k));
        for (size_t j = 0; j < i; j++)
            if (strcmp(n->kids[2 * j]->str, k->str) == 0)
                return sluice__cerr(c, k, "duplicate key %s in %s (first at line %d)",
                                    shown(k, buf, sizeof(buf)), what, n->kids[2 * j]->line);
        const char *best = NULL;
        int bestd = 3;
        size_t a;
        for (a = 0; allowed[a]; a++) {
            if (strcmp(allowed[a], k->str) == 0)
                break;
            int d = distance(allowed[a], k->str);
            if (d < bestd) {
                bestd = d;
                best = allowed[a];
            }
        }
        if (allowed[a])
            continue;
        if (best)
            return sluice__cerr(c, k, "unknown key %s in %s (did you mean '%s'?)",
                                shown(k, buf, sizeof(buf)), what, best);
        return sluice__cerr(c, k, "unknown key %s in %s", shown(k, buf, sizeof(buf)), what);
    }
    return 0;
}

/* ---- scalars ----------------------------------------------------------------- */

static bool is_null(const sluice__ynode *n)
{
    return n->kind == SLUICE_YNODE_SCALAR && n->plain &&
           (n->len == 0 || strcmp(n->str, "~") == 0 || strcasecmp(n->str, "null") == 0);
}

static int want_scalar(sluice__cload *c, const sluice__ynode *n, const char *key, const char *type)
{
    if (n->kind != SLUICE_YNODE_SCALAR)
        return sluice__cerr(c, n, "'%s' must be %s, got %s", key, type,
                            sluice__ynode_kind_name(n));
    if (is_null(n))
        return sluice__cerr(c, n, "'%s' has no value (expected %s)", key, type);
    return 0;
}

int sluice__cstr(sluice__cload *c, const sluice__ynode *n, const char *key, size_t max,
                 const char **out)
{
    int rc = want_scalar(c, n, key, "a string");
    if (rc)
        return rc;
    if (n->len == 0)
        return sluice__cerr(c, n, "'%s' must not be empty", key);
    if (n->len > max)
        return sluice__cerr(c, n, "'%s' is longer than %zu bytes", key, max);
    *out = n->str;
    return 0;
}

int sluice__cint(sluice__cload *c, const sluice__ynode *n, const char *key, int64_t lo,
                 int64_t hi, int64_t *out)
{
    char buf[64];
    int rc = want_scalar(c, n, key, "an integer");
    if (rc)
        return rc;
    const char *s = n->str;
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    bool digits = s[i] != '\0';
    for (; s[i]; i++)
        digits = digits && isdigit((unsigned char)s[i]);
    if (!n->plain || !digits)
        return sluice__cerr(c, n, "'%s' must be an integer, got %s%s", key,
                            shown(n, buf, sizeof(buf)), n->plain ? "" : " (a quoted string)");
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v > hi)
        return sluice__cerr(c, n, "'%s' is too large: %s (at most %lld)", key,
                            shown(n, buf, sizeof(buf)), (long long)hi);
    if (v < lo)
        return sluice__cerr(c, n, "'%s' must be at least %lld, got %lld", key, (long long)lo, v);
    *out = v;
    return 0;
}

int sluice__cbool(sluice__cload *c, const sluice__ynode *n, const char *key, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    char buf[64];
    int rc = want_scalar(c, n, key, "true or false");
    if (rc)
        return rc;
    for (int i = 0; n->plain && yes[i]; i++) {
        if (strcasecmp(n->str, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(n->str, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return sluice__cerr(c, n, "'%s' must be true or false, got %s", key,
                        shown(n, buf, sizeof(buf)));
}

int sluice__parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    int64_t v = 0;
    size_t i = 0;
    for (; isdigit((unsigned char)s[i]); i++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        if (strcmp(s + i, units[u].unit) != 0)
            continue;
        if (v > INT64_MAX / units[u].ms)
            return -1;
        *ms = v * units[u].ms;
        return 0;
    }
    return -1;
}

/* "90000ms" -> "90s"; the largest unit that divides ms exactly. */
static void format_duration(int64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        if (ms % units[u].ms == 0) {
            snprintf(buf, size, "%lld%s", (long long)(ms / units[u].ms), units[u].unit);
            return;
        }
    }
}

int sluice__cduration(sluice__cload *c, const sluice__ynode *n, const char *key, int64_t lo,
                      int64_t hi, int64_t *out)
{
    char buf[64], b1[32];
    int rc = want_scalar(c, n, key, "a duration such as 1s, 5m or 1h");
    if (rc)
        return rc;
    size_t i = 0;
    while (isdigit((unsigned char)n->str[i]))
        i++;
    if (i > 0 && n->str[i] == '\0')
        return sluice__cerr(c, n,
                            "'%s' needs a unit: write %sms, %ss, ... (a bare number is "
                            "refused to avoid unit mistakes)",
                            key, n->str, n->str);
    int64_t v;
    if (sluice__parse_duration(n->str, &v) != 0) {
        if (i > 0 && n->str[i] != '\0' && strchr("smhd", n->str[i]))
            return sluice__cerr(c, n, "'%s' is too long: %s", key, shown(n, buf, sizeof(buf)));
        return sluice__cerr(c, n,
                            "'%s' must be a duration with a unit (ms, s, m, h, d), got %s",
                            key, shown(n, buf, sizeof(buf)));
    }
    if (v < lo) {
        format_duration(lo, b1, sizeof(b1));
        return sluice__cerr(c, n, "'%s' must be at least %s, got %s", key, b1,
                            shown(n, buf, sizeof(buf)));
    }
    if (v > hi) {
        format_duration(hi, b1, sizeof(b1));
        return sluice__cerr(c, n, "'%s' is too long: %s (at most %s)", key,
                            shown(n, buf, sizeof(buf)), b1);
    }
    *out = v;
    return 0;
}

int sluice__cenum(sluice__cload *c, const sluice__ynode *n, const char *key,
                  const char *const *names, int *out)
{
    char buf[64], list[160];
    int rc = want_scalar(c, n, key, "a string");
    if (rc)
        return rc;
    size_t off = 0;
    list[0] = '\0';
    for (int i = 0; names[i]; i++) {
        if (strcmp(n->str, names[i]) == 0) {
            *out = i;
            return 0;
        }
        int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", names[i]);
        if (w > 0 && off + (size_t)w < sizeof(list))
            off += (size_t)w;
    }
    return sluice__cerr(c, n, "'%s' must be one of %s; got %s", key, list,
                        shown(n, buf, sizeof(buf)));
}

/* ---- identity ------------------------------------------------------------------ */

bool sluice__header_name_ok(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!s || !*s || strlen(s) > SLUICE_HEADER_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return false;
    return true;
}

int sluice__cident(sluice__cload *c, const sluice__ynode *n, sluice__ident *id)
{
    char buf[64];
    const char *s;
    int rc = sluice__cstr(c, n, "identity source", 7 + SLUICE_HEADER_NAME_MAX, &s);
    if (rc)
        return rc;
    const char *hdr = NULL;
    if (strcmp(s, "ip") == 0) {
        id->kind = SLUICE_ID_IP;
    } else if (strcmp(s, "api_key") == 0) {
        id->kind = SLUICE_ID_API_KEY;
        hdr = "X-API-Key";
    } else if (strcmp(s, "user") == 0) {
        id->kind = SLUICE_ID_USER;
        hdr = "X-User-Id";
    } else if (strncmp(s, "header:", 7) == 0) {
        hdr = s + 7;
        if (!sluice__header_name_ok(hdr))
            return sluice__cerr(c, n, "%s: '%s' is not a valid header name",
                                shown(n, buf, sizeof(buf)), hdr);
        if (strcasecmp(hdr, "X-API-Key") == 0)
            id->kind = SLUICE_ID_API_KEY;
        else if (strcasecmp(hdr, "X-User-Id") == 0)
            id->kind = SLUICE_ID_USER;
        else
            id->kind = SLUICE_ID_HEADER;
    } else {
        return sluice__cerr(c, n,
                            "unknown identity source %s (expected ip, api_key, user or "
                            "header:<Name>)",
                            shown(n, buf, sizeof(buf)));
    }
    id->header = NULL;
    if (hdr) {
        id->header = sluice__strdup(hdr);
        if (!id->header)
            return sluice__cnomem(c);
    }
    return 0;
}

void sluice__ident_free(sluice__ident *id, int n)
{
    if (!id)
        return;
    for (int i = 0; i < n; i++)
        sluice__free(id[i].header);
    sluice__free(id);
}

int sluice__cident_list(sluice__cload *c, const sluice__ynode *n, const char *key,
                        sluice__ident **out, int *nout)
{
    size_t count = n->kind == SLUICE_YNODE_SEQ ? n->n : 1;
    if (n->kind == SLUICE_YNODE_MAP)
        return sluice__cerr(c, n, "'%s' must be a list of identity sources, got a mapping", key);
    if (count == 0)
        return sluice__cerr(c, n, "'%s' must name at least one identity source", key);
    if (count > SLUICE_MAX_IDENT)
        return sluice__cerr(c, n, "'%s' has more than %d identity sources", key,
                            SLUICE_MAX_IDENT);
    sluice__ident *ids = sluice__calloc(count, sizeof(*ids));
    if (!ids)
        return sluice__cnomem(c);
    for (size_t i = 0; i < count; i++) {
        const sluice__ynode *item = n->kind == SLUICE_YNODE_SEQ ? n->kids[i] : n;
        int rc = sluice__cident(c, item, &ids[i]);
        if (rc) {
            sluice__ident_free(ids, (int)i);
            return rc;
        }
    }
    *out = ids;
    *nout = (int)count;
    return 0;
}

/* ---- CIDR ---------------------------------------------------------------------- */

int sluice__cidr_parse(const char *s, sluice__cidr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(out, 0, sizeof(*out));
    int max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->bits = max;
    if (slash) {
        const char *b = slash + 1;
        size_t nd = strspn(b, "0123456789");
        if (nd == 0 || nd > 3 || b[nd] != '\0')
            return -1;
        int bits = 0;
        for (size_t i = 0; i < nd; i++)
            bits = bits * 10 + (b[i] - '0');
        if (bits > max)
            return -1;
        out->bits = bits;
    }
    /* Clear host bits so matching compares whole bytes and one masked byte. */
    for (int i = 0; i < max / 8; i++) {
        int keep = out->bits - i * 8;
        if (keep >= 8)
            continue;
        out->addr[i] &= keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
    return 0;
}
