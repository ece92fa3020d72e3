/* SPDX-License-Identifier: MIT */
/*
 * rls_metrics.h - counters of Envoy RLS descriptor decisions, by domain and
 * descriptor (the configured path, so cardinality is bounded by the
 * descriptor files unless detailed_metric/value_to_metric put request
 * values in it; the table is bounded too).  Rendered into sluiced's /metrics.
 */
#ifndef SLUICE_RLS_METRICS_H
#define SLUICE_RLS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLUICE_RLS_METRIC_SLOTS 4096 /* (domain, descriptor) pairs over the process life */

/** Counts one descriptor decision: hits charged, over or not, shadow, what remains of rpu. */
void sluice__rls_metrics_count(const char *domain, const char *descriptor, int64_t hits,
                               bool over, bool shadow, uint32_t remaining, uint32_t rpu);

/** The slot of (domain, descriptor), created if new (never NULL: a full table gives
 * the "_other" slot); valid for the process's life. */
void *sluice__rls_metrics_slot(const char *domain, const char *descriptor);

/** sluice__rls_metrics_count() on a slot already found. */
void sluice__rls_metrics_count_slot(void *slot, int64_t hits, bool over, bool shadow,
                                    uint32_t remaining, uint32_t rpu);

/** A request for a domain no descriptor file names (one counter: domains come from clients). */
void sluice__rls_metrics_unknown_domain(const char *domain);

/** A request refused by descriptors_semantics: exact before anything was charged. */
void sluice__rls_metrics_refused(const char *domain);

/** Prometheus text (format 0.0.4) of the counters; a new string (free()) or NULL on OOM. */
char *sluice__rls_metrics_render(size_t *len);

/** Zeroes every counter (tests). */
void sluice__rls_metrics_reset(void);

#endif /* SLUICE_RLS_METRICS_H */
