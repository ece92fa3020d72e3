-- SPDX-License-Identifier: MIT
-- soak_wrk.lua - the steady load of scripts/soak.sh: wrk sends
-- /v1/authorize requests for random keys out of SOAK_KEYS (so the store sees
-- many keys, not one hot one), counts every response by status, and prints
-- one machine-readable line at the end.  wrk itself records every
-- response's latency in its histogram; done() reads its maximum and
-- percentiles from there.
local nkeys = tonumber(os.getenv("SOAK_KEYS") or "100000")
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919 + os.time())
  s200, s429, sother = 0, 0, 0
end

function request()
  local k = math.random(nkeys)
  return wrk.format("GET", "/v1/authorize", {
    ["X-Original-URI"] = "/api/soak",
    ["X-Original-Method"] = "GET",
    ["X-API-Key"] = "k" .. k,
  })
end

function response(status, headers, body)
  if status == 200 then
    s200 = s200 + 1
  elseif status == 429 then
    s429 = s429 + 1
  else
    sother = sother + 1
  end
end

function done(summary, latency, requests)
  local a, d, o = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s200")
    d = d + t:get("s429")
    o = o + t:get("sother")
  end
  local e = summary.errors
  io.write(string.format(
    "soak_wrk: responses=%d s200=%d s429=%d other=%d max_us=%d p50_us=%d p99_us=%d p999_us=%d " ..
    "connect_err=%d read_err=%d write_err=%d timeout_err=%d duration_us=%d\n",
    summary.requests, a, d, o, latency.max, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect, e.read, e.write, e.timeout, summary.duration))
end
