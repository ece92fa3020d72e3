/* SPDX-License-Identifier: MIT */
/*
 * grpc_health.c - grpc.health.v1.Health/Check (gRPC's health checking
 * protocol), as Envoy's and Kubernetes' gRPC health checks ask it: SERVING
 * while the store answers and the worker is not draining, NOT_SERVING
 * otherwise: the same reading as GET /readyz (ready.c), so that a probe
 * never loads the store.  The service is "" (the whole server) or the
 * RateLimitService; any other name is NOT_FOUND, as the protocol says.
 */
#include <string.h>

#include "grpc.h"
#include "grpc/health/v1/health.pb-c.h"

#define RLS_SERVICE "envoy.service.ratelimit.v3.RateLimitService"

void sluiced__grpc_health(gcall *s)
{
    Grpc__Health__V1__HealthCheckRequest *m =
        grpc__health__v1__health_check_request__unpack(&sluiced__pb_alloc, s->nmsg, s->msg);
    if (!m) {
        sluiced__gcall_reply(s, GRPC_INVALID_ARGUMENT, "malformed HealthCheckRequest");
        return;
    }
    bool known = m->service[0] == '\0' || strcmp(m->service, RLS_SERVICE) == 0;
    grpc__health__v1__health_check_request__free_unpacked(m, &sluiced__pb_alloc);
    if (!known) {
        sluiced__gcall_reply(s, GRPC_NOT_FOUND, "unknown service");
        return;
    }
    bool serving = !sluiced__gcall_worker(s)->draining && sluiced_store_ready(NULL, 0) == 0;
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    size_t len = grpc__health__v1__health_check_response__get_packed_size(&r);
    grpc__health__v1__health_check_response__pack(&r, sluiced__gcall_out(s, len));
    sluiced__gcall_reply(s, GRPC_OK, NULL);
}
