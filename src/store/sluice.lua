-- SPDX-License-Identifier: MIT
-- sluice.lua - one rate-limit decision for a whole limit set, run atomically
-- on the Redis server (EVALSHA).  Mirrors src/core/algo.c line for line (the
-- arithmetic of docs/design.md); tests/vectors proves both agree.  Embedded in
-- src/store/redis_lua.c (test_redis_lua checks the copy is identical).
--
-- KEYS[i]  sluice:{<rule>:<identifier>}:<i-1>, one per limit (same hash tag)
-- ARGV     now_ms (-1: the server's TIME), cost, then per limit:
--          algorithm, limit, window_ms, burst, and finally ttl_slack_ms
-- returns  { now_ms, then per limit: allowed, limit, remaining,
--            reset_after_ms, retry_after_ms, delay_ms }
--
-- State: window and bucket keys are strings of 7 packed doubles
-- (algorithm, L, W, B, s1, s2, s3); a sliding log is a list whose element 0
-- is that header (s1 = sum of costs) and whose other elements are (time, cost)
-- pairs, oldest first, one per distinct millisecond.  Every number is an
-- integer below 2^53, so doubles hold them exactly; the bounds of sluice.h
-- keep every product below 2^53 as well.  A key whose parameters differ from
-- the limit's is treated as untouched.  Every committed key gets PEXPIRE =
-- its reset_after (+ ttl_slack_ms, non-zero only for explicit times), so it
-- disappears exactly when its state is back to untouched.  Nothing is written
-- unless every limit allows and cost > 0.

local HDR = '<ddddddd'
local ENT = '<dd'

-- floor(a/b) for integers |a| <= 2^53, b > 0, exact despite double division
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function cdiv(a, b)
  return -idiv(-a, b)
end

local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cost = tonumber(ARGV[2])
local n = #KEYS
local slack = tonumber(ARGV[3 + 4 * n])

local out = { now, 0, 0, 0, 0, 0, 0 } -- sized for one limit, the common case
local plans = {}
local all = true

-- Reads a string cell; nil when absent, of another type or other parameters.
local function cell(key, alg, L, W, B)
  local v = redis.pcall('GET', key) -- an error table when the key is a list
  if type(v) ~= 'string' or #v ~= 56 then
    return nil
  end
  local a, l, w, b, s1, s2, s3 = struct.unpack(HDR, v)
  if a ~= alg or l ~= L or w ~= W or b ~= B then
    return nil
  end
  return s1, s2, s3
end

local function fixed_window(key, L, W, B, p, cost)
  local cq = math.max(cost, 1)
  local win, cnt = cell(key, 0, L, W, B)
  local i = idiv(now, W)
  local n0 = (win == i) and cnt or 0
  local ok = n0 + cq <= L
  local n1 = ok and n0 + cost or n0
  p.allowed = ok
  p.remaining = math.max(0, L - n1)
  p.reset = (n1 > 0) and (i + 1) * W - now or 0
  p.retry = ok and 0 or (i + 1) * W - now
  p.state = struct.pack(HDR, 0, L, W, B, i, n1, 0)
end

local function sliding_window(key, L, W, B, p, cost)
  local cq = math.max(cost, 1)
  local win, prev, cur = cell(key, 2, L, W, B)
  local j = idiv(now, W)
  local e = now - j * W
  local pv, nn = 0, 0
  if win == j then
    pv, nn = prev, cur
  elseif win == j - 1 then
    pv, nn = cur, 0
  end
  local ok = nn + cq <= L and pv * (W - e) <= (L - nn - cq) * W
  local n1 = ok and nn + cost or nn
  p.allowed = ok
  p.remaining = math.max(0, idiv(L * W - pv * (W - e), W) - n1)
  if n1 > 0 then
    p.reset = (j + 2) * W - now
  elseif pv > 0 then
    p.reset = (j + 1) * W - now
  else
    p.reset = 0
  end
  if ok then
    p.retry = 0
  elseif nn + cq <= L then
    p.retry = W - idiv((L - nn - cq) * W, pv) - e
  elseif nn > 0 then
    p.retry = (j + 1) * W + W - idiv((L - cq) * W, nn) - now
  end
  p.state = struct.pack(HDR, 2, L, W, B, j, pv, n1)
end

local function gcra(key, alg, L, W, B, p, cost)
  local cq = math.max(cost, 1)
  local t0, excess = cell(key, alg, L, W, B)
  if not t0 then
    t0, excess = 0, 0
  end
  local dt = math.max(0, now - t0)
  local x = 0
  if dt < cdiv(excess, L) then
    x = excess - dt * L
  end
  local ok = x <= (B - cq) * W
  local x1 = ok and x + cost * W or x
  p.allowed = ok
  p.remaining = idiv(B * W - x1, W)
  p.reset = cdiv(x1, L)
  p.retry = ok and 0 or cdiv(x - (B - cq) * W, L)
  if alg == 4 and ok then
    p.delay = cdiv(x, L)
  end
  p.state = struct.pack(HDR, alg, L, W, B, math.max(now, t0), x1, 0)
end

local function sliding_log(key, L, W, B, p, cost)
  local cq = math.max(cost, 1)
  local h = redis.pcall('LINDEX', key, 0) -- an error table when the key is a string
  local len, sum, drop = 0, 0, 0
  if type(h) == 'string' and #h == 56 then
    local a, l, w, b, s = struct.unpack(HDR, h)
    if a == 1 and l == L and w == W and b == B then
      len = redis.call('LLEN', key) - 1
      sum = s
    end
  end
  p.fresh = (len == 0)
  -- drop entries that left the window (time <= now - W), oldest first
  local idx = 1
  while drop < len do
    local chunk = redis.call('LRANGE', key, idx, idx + 63)
    local stop = false
    for _, v in ipairs(chunk) do
      local t, c = struct.unpack(ENT, v)
      if t > now - W then
        stop = true
        break
      end
      sum = sum - c
      drop = drop + 1
    end
    if stop or #chunk == 0 then
      break
    end
    idx = idx + #chunk
  end
  local live = len - drop
  local newest_t, newest_c
  if live > 0 then
    newest_t, newest_c = struct.unpack(ENT, redis.call('LINDEX', key, -1))
  end
  local allowed = sum + cq <= L
  local s1 = allowed and sum + cost or sum
  p.allowed = allowed
  p.remaining = math.max(0, L - s1)
  if allowed and cost > 0 then
    p.reset = math.max(newest_t or now, now) + W - now
  elseif live > 0 then
    p.reset = newest_t + W - now
  else
    p.reset = 0
  end
  if allowed then
    p.retry = 0
  elseif cq <= L then
    -- first entry k (oldest first) whose leaving frees enough: sum - r_k + cq <= L
    local r = 0
    local i = 1 + drop
    while p.retry == nil do
      local chunk = redis.call('LRANGE', key, i, i + 63)
      if #chunk == 0 then
        break
      end
      for _, v in ipairs(chunk) do
        local t, c = struct.unpack(ENT, v)
        r = r + c
        if sum - r + cq <= L then
          p.retry = t + W - now
          break
        end
      end
      i = i + #chunk
    end
  end
  p.log = { drop = drop, live = live, newest_t = newest_t, newest_c = newest_c,
            hdr = struct.pack(HDR, 1, L, W, B, s1, 0, 0) }
end

-- Evaluates limit i at cost c (0 = peek, judged as 1) into a new plan.
local function eval(i, c)
  local base = 2 + 4 * (i - 1)
  local alg = tonumber(ARGV[base + 1])
  local L = tonumber(ARGV[base + 2])
  local W = tonumber(ARGV[base + 3])
  local B = tonumber(ARGV[base + 4])
  if (alg == 3 or alg == 4) and B <= 0 then
    B = L -- burst 0: the default, L
  end
  -- every field up front: one allocation instead of a rehash per new field
  local p = { alg = alg, delay = 0, allowed = false, limit = 0, remaining = 0, reset = 0,
              state = false }
  if alg == 0 then
    fixed_window(KEYS[i], L, W, B, p, c)
  elseif alg == 1 then
    sliding_log(KEYS[i], L, W, B, p, c)
  elseif alg == 2 then
    sliding_window(KEYS[i], L, W, B, p, c)
  elseif alg == 3 or alg == 4 then
    gcra(KEYS[i], alg, L, W, B, p, c)
  else
    return nil
  end
  local cap = (alg == 3 or alg == 4) and B or L
  p.limit = cap
  if math.max(c, 1) > cap then
    p.allowed = false
    p.retry = -1
  end
  if not p.allowed then
    p.delay = 0
  end
  return p
end

for i = 1, n do
  local p = eval(i, cost)
  if not p then
    return redis.error_reply('ERR sluice: unknown algorithm')
  end
  all = all and p.allowed
  plans[i] = p
end

-- A denied request consumes nothing: the limits that would have allowed it
-- report their unchanged state (a peek's remaining and reset_after), no delay.
if not all then
  for i = 1, n do
    if plans[i].allowed then
      plans[i] = eval(i, 0)
      plans[i].allowed = true
      plans[i].delay = 0
    end
  end
end

for i = 1, n do
  local p = plans[i]
  local key = KEYS[i]
  if all and cost > 0 then
    if p.alg == 1 then
      local g = p.log
      if p.fresh then
        redis.call('DEL', key)
        redis.call('RPUSH', key, g.hdr, struct.pack(ENT, now, cost))
      else
        if g.drop > 0 then
          redis.call('LTRIM', key, g.drop, -1)
        end
        redis.call('LSET', key, 0, g.hdr)
        if g.live > 0 and g.newest_t >= now then
          -- same millisecond (or a server clock that stepped back): merge
          redis.call('LSET', key, -1, struct.pack(ENT, g.newest_t, g.newest_c + cost))
        else
          redis.call('RPUSH', key, struct.pack(ENT, now, cost))
        end
      end
      redis.call('PEXPIRE', key, string.format('%d', p.reset + slack))
    else
      redis.call('SET', key, p.state, 'PX', string.format('%d', p.reset + slack))
    end
  end
  local k = 6 * (i - 1) + 1
  out[k + 1] = p.allowed and 1 or 0
  out[k + 2] = p.limit
  out[k + 3] = p.remaining
  out[k + 4] = p.reset
  out[k + 5] = p.retry
  out[k + 6] = p.delay
end
return out
