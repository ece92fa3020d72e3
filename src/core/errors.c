/* SPDX-License-Identifier: MIT */
/*
 * errors.c - static names for error codes and algorithms, and the one
 * function that fills a sluice_error.  No state.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "core/errors.h"
#include "sluice.h"

const char *sluice_strerror(int code)
{
    switch (code) {
    case SLUICE_OK:
        return "success";
    case SLUICE_EINVAL:
        return "invalid argument";
    case SLUICE_ENOMEM:
        return "out of memory";
    case SLUICE_ECONFIG:
        return "invalid configuration";
    case SLUICE_ENORULE:
        return "no such rule, or no rule matched";
    case SLUICE_ESTORE:
        return "store unreachable or failed";
    case SLUICE_ETIMEOUT:
        return "store timed out";
    case SLUICE_EURL:
        return "malformed or unknown store URL";
    case SLUICE_EKEY:
        return "identifier empty or too long";
    case SLUICE_EIO:
        return "file could not be read";
    case SLUICE_ECANCELED:
        return "operation canceled";
    default:
        return "unknown error";
    }
}

static const char *const algorithm_names[] = {
    "fixed_window", "sliding_log", "sliding_window", "token_bucket", "leaky_bucket",
};

const char *sluice_algorithm_name(int algorithm)
{
    if (algorithm < 0 || algorithm >= (int)(sizeof(algorithm_names) / sizeof(algorithm_names[0])))
        return NULL;
    return algorithm_names[algorithm];
}

int sluice__errorf(sluice_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}
