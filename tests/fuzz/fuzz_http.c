/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http.c - the HTTP/1.1 request stream into sluiced (fuzz_sluiced.c):
 * pipelined requests of any shape, split into pieces where the input
 * says, through the connection layer and http-parser to the real
 * handlers (/v1/authorize with its forwarded headers, /v1/check, /json,
 * /metrics, /healthz, /readyz, 404s and 405s), with request and idle
 * timeouts and clients that leave early.  Every request must be answered
 * exactly once and every connection must close.
 *
 * Input: byte 0 flags (bits 0-1 the peer address, bits 2-4 FZ_* flags),
 * byte 1 a seed and byte 2 a size class for the piece sizes, then the
 * bytes the client sends.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_sluiced.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int peer = data[0] & 3;
    int flags = (data[0] >> 2) & (FZ_TIMEOUT | FZ_IDLE | FZ_EARLY_CLOSE);
    /* piece sizes: 1 .. 2^(class % 17), from a small generator the input seeds */
    uint32_t cuts[16];
    uint32_t x = data[1] * 2654435761u + 1;
    uint32_t span = 1u << (data[2] % 17);
    for (int i = 0; i < 16; i++) {
        x = x * 1103515245u + 12345u;
        cuts[i] = 1 + (x >> 8) % span;
    }
    fz_session(data + 3, size - 3, cuts, 16, peer, flags);
    return 0;
}
