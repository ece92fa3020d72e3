/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sluiced.h - one sluiced worker for the HTTP and JSON fuzz targets:
 * a private libevent loop, a memory:// store, a config with every kind of
 * rule and descriptor files, and the real handlers (sluiced_handle) behind
 * the real connection layer (http_conn.c, http_parse.c on http-parser),
 * driven over a socketpair as a client would drive it.
 */
#ifndef SLUICE_FUZZ_SLUICED_H
#define SLUICE_FUZZ_SLUICED_H

#include <stddef.h>
#include <stdint.h>

enum {
    FZ_PEER_TRUSTED = 0, /* 127.0.0.1: a trusted proxy, X-Forwarded-For is believed */
    FZ_PEER_OTHER = 1,   /* 10.9.8.7 */
    FZ_PEER_V6 = 2,      /* ::ffff:192.0.2.1 */
    FZ_PEER_NONE = 3,    /* no address (as for a socketpair) */
};

/* Flags of a session. */
#define FZ_TIMEOUT 1 /* before the client's EOF, jump the sweep clock past the request timeout */
#define FZ_IDLE 2    /* ... and past the idle timeout */
#define FZ_EARLY_CLOSE 4 /* the client closes without reading the replies */

/*
 * One connection: data[0..size) written in pieces of the sizes cuts[]
 * gives (cycled; 0 ends the list), the loop run between pieces, then the
 * client's EOF, and the loop run until the server has closed and every
 * request was answered exactly once.  Aborts (a libFuzzer crash) when a
 * connection never finishes or a request is left unanswered.
 */
void fz_session(const uint8_t *data, size_t size, const uint32_t *cuts, int ncuts, int peer,
                int flags);

#endif /* SLUICE_FUZZ_SLUICED_H */
