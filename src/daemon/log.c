/* SPDX-License-Identifier: MIT */
/*
 * log.c - structured logs of sluiced: one line per event on stderr, in
 * logfmt (`ts=... level=... event=... key=value ...`), written with a single
 * write(2) so lines of different threads never interleave.  It must never
 * print a credential: store URLs go through sluiced_redact_url() first.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "store/store.h"

static atomic_int log_level = SLUICED_LOG_INFO;

static const char *level_name(int level)
{
    switch (level) {
    case SLUICED_LOG_DEBUG:
        return "debug";
    case SLUICED_LOG_INFO:
        return "info";
    case SLUICED_LOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

void sluiced_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

void sluiced_log(int level, const char *event, const char *fields, ...)
{
    if (level < atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_name(level), event);
    if (n < 0)
        return;
    if (fields && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fields);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fields, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

const char *sluiced_log_quote(char *buf, size_t size, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (size < 3) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        /* Room for the longest escape (\xNN), the closing quote and NUL. */
        if (o + 6 > size)
            break;
        if (*p == '"' || *p == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[*p >> 4];
            buf[o++] = hex[*p & 15];
        } else {
            buf[o++] = (char)*p;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

const char *sluiced_redact_url(char *buf, size_t size, const char *url)
{
    /* the store's own parser decides where the credentials are */
    sluice__url_redact(buf, size, url);
    return buf;
}
