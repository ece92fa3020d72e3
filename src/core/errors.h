/* SPDX-License-Identifier: MIT */
/*
 * errors.h - filling a caller's sluice_error, shared by every module so that
 * each reports failures the same way (a code and a readable message, never
 * printed).
 */
#ifndef SLUICE_CORE_ERRORS_H
#define SLUICE_CORE_ERRORS_H

#include "sluice.h"

/**
 * Sets err->code and err->msg (printf-style, truncated to fit) when err is
 * not NULL.  Returns code, so a failing path can `return sluice__errorf(...)`.
 */
int sluice__errorf(sluice_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* SLUICE_CORE_ERRORS_H */
