// SPDX-License-Identifier: MIT
// Baseline for `make bench`: throughput of rate-limiter-flexible's
// RateLimiterMemory.consume() (npm) over many distinct keys, the embedded
// store of a popular Node rate limiter, to compare with `sluice bench` on
// memory://.  One process, one event loop, each consume() awaited in turn
// (as a request handler would).  Usage:
//   node rlflex.js [keys=1000000] [requests=2000000]
// Prints "rlflex_decisions_per_sec=N allowed=N denied=N" as its last line.
'use strict';
const { RateLimiterMemory } = require('rate-limiter-flexible');

async function main() {
  const keys = parseInt(process.argv[2] || '1000000', 10);
  const requests = parseInt(process.argv[3] || '2000000', 10);
  const limiter = new RateLimiterMemory({ points: 100, duration: 1 });
  const names = new Array(keys);
  for (let i = 0; i < keys; i++) names[i] = 'bench-' + i;
  // xorshift32: the same kind of spread as sluice bench's random picks.
  let x = 2463534242;
  let allowed = 0;
  let denied = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    try {
      await limiter.consume(names[x % keys], 1);
      allowed++;
    } catch (e) {
      if (e instanceof Error) throw e;
      denied++; // rejected with a RateLimiterRes
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const rate = Math.round(requests / secs);
  console.log(`rate-limiter-flexible RateLimiterMemory: keys=${keys} requests=${requests} ` +
              `elapsed_s=${secs.toFixed(3)}`);
  console.log(`rlflex_decisions_per_sec=${rate} allowed=${allowed} denied=${denied}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
