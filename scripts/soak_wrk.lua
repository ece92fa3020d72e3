-- SPDX-License-Identifier: MIT
-- soak_wrk.lua - the steady load of scripts/soak.sh: wrk sends
-- /v1/authorize requests for random keys out of SOAK_KEYS (so the store sees
-- many keys, not one hot one), counts every response by status, and times
-- every response itself on CLOCK_MONOTONIC (LuaJIT ffi; soak.py's clock):
-- run with one connection per thread (-t N -c N), so request() and
-- response() alternate and pair up.  Per second of the run it keeps the
-- slowest response, the count and the count above SOAK_BOUND_US, written to
-- SOAK_WRK_SERIES at the end ("second max_us responses over_bound"), and it
-- prints one machine-readable summary line from wrk's own histogram.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
int clock_gettime(int clk, soak_timespec *ts);
]]
local ts = ffi.new("soak_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local nkeys = tonumber(os.getenv("SOAK_KEYS") or "100000")
local bound_us = tonumber(os.getenv("SOAK_BOUND_US") or "300000")
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
  smax, scount, sover = {}, {}, {} -- by second of the request's start
  t_req = nil
end

function request()
  t_req = now_us()
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
  if t_req then
    local lat = now_us() - t_req
    local sec = math.floor(t_req / 1000000)
    if lat > (smax[sec] or -1) then smax[sec] = lat end
    scount[sec] = (scount[sec] or 0) + 1
    if lat > bound_us then sover[sec] = (sover[sec] or 0) + 1 end
    t_req = nil
  end
end

function done(summary, latency, requests)
  local a, d, o = 0, 0, 0
  local mx, ct, ov = {}, {}, {}
  for _, t in ipairs(threads) do
    a = a + t:get("s200")
    d = d + t:get("s429")
    o = o + t:get("sother")
    for sec, v in pairs(t:get("smax")) do
      if v > (mx[sec] or -1) then mx[sec] = v end
    end
    for sec, v in pairs(t:get("scount")) do ct[sec] = (ct[sec] or 0) + v end
    for sec, v in pairs(t:get("sover")) do ov[sec] = (ov[sec] or 0) + v end
  end
  local path = os.getenv("SOAK_WRK_SERIES")
  if path then
    local f = assert(io.open(path, "w"))
    for sec, v in pairs(mx) do
      f:write(string.format("%d %d %d %d\n", sec, v, ct[sec] or 0, ov[sec] or 0))
    end
    f:close()
  end
  local e = summary.errors
  io.write(string.format(
    "soak_wrk: responses=%d s200=%d s429=%d other=%d max_us=%d p50_us=%d p99_us=%d p999_us=%d " ..
    "connect_err=%d read_err=%d write_err=%d timeout_err=%d duration_us=%d\n",
    summary.requests, a, d, o, latency.max, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect, e.read, e.write, e.timeout, summary.duration))
end
