-- SPDX-License-Identifier: MIT
-- sluice.lua - one rate-limit decision for a whole limit set, run atomically
-- on the Redis server (EVALSHA).  Mirrors src/core/algo.c line for line (the
-- arithmetic of docs/design.md); tests/vectors proves both agree.  Embedded in
-- src/store/redis/redis_lua.c (test_redis_lua checks the copy is identical).
--
-- KEYS[i]  sluice:{<rule>[@<tier>]:<identifier>}:<i-1>, one per limit (one hash tag)
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
--
-- Cost per call.  This body runs on every EVALSHA: every closure, upvalue,
-- table and string it makes is made and collected again each time, and a
-- redis.call costs more than all the arithmetic around it.  So: a window or
-- bucket limit is one GET and, when committed, one SET ... PX (plus TIME
-- when the caller passed no time); a sliding log reads its header and first
-- 63 entries with one LRANGE.  The limits are evaluated inline in one loop
-- (no closure or table per limit); idiv is the only closure on the window
-- and bucket path and has no upvalue; struct.* is looked up where used;
-- floors are taken as x - x % 1 (exactly math.floor(x) for doubles, without
-- a C call); ARGV is converted by coercion (s + 0, tonumber's conversion),
-- except the usual '-1', '1' and '0', which are compared instead.

-- floor(a/b) for integers |a| <= 2^53, b > 0, exact despite double division
local function idiv(a, b)
  local q = a / b
  q = q - q % 1
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local now = (ARGV[1] == '-1') and -1 or ARGV[1] + 0
if now < 0 then
  local t = redis.call('TIME')
  local ms = t[2] / 1000
  now = t[1] * 1000 + (ms - ms % 1)
end
local cost = (ARGV[2] == '1') and 1 or ARGV[2] + 0
local n = #KEYS
local slack = ARGV[3 + 4 * n]
slack = (slack == '0') and 0 or slack + 0

local out = { now, 0, 0, 0, 0, 0, 0 } -- sized for one limit, the common case
local state1, states = false, false -- what to write: limit 1, limits 2..n
local all = true

-- Pass 1 evaluates every limit at the cost.  If one denies, nothing is
-- consumed, and pass 2 re-evaluates the limits that allowed as a peek (cost
-- 0, judged as 1): they report their unchanged state, no delay.
for pass = 1, 2 do
  local c = (pass == 1) and cost or 0
  local cq = (c > 1) and c or 1
  for i = 1, n do
    local k = 6 * i - 5
    if pass == 1 or out[k + 1] == 1 then
      local base = 4 * i - 2
      local alg = ARGV[base + 1] + 0
      local L = ARGV[base + 2] + 0
      local W = ARGV[base + 3] + 0
      local B = ARGV[base + 4] + 0
      local key = KEYS[i]
      -- allowed, remaining, reset_after, retry_after, delay, and when
      -- allowed with c > 0 what to write (packed string or sliding log plan)
      local ok, rem, reset, retry, delay, state = false, 0, 0, nil, 0, false
      local cap = L
      if alg == 1 then -- sliding log
        -- header and the first 63 entries; an error table when the key is a string
        local h = redis.pcall('LRANGE', key, 0, 63)
        local nh = #h
        local len, sum, drop = 0, 0, 0
        local hd = h[1]
        if hd and #hd == 56 then
          local a, l, w, b, s = struct.unpack('<ddddddd', hd)
          if a == 1 and l == L and w == W and b == B then
            len = (nh < 64) and nh - 1 or redis.call('LLEN', key) - 1
            sum = s
          end
        end
        -- entry j (1..len), read in order: from h, then 64 at a time
        local buf, b0 = h, 0
        local function entry(j)
          if j < b0 or j - b0 >= #buf then
            buf, b0 = redis.call('LRANGE', key, j, j + 63), j
          end
          return struct.unpack('<dd', buf[j - b0 + 1])
        end
        -- drop entries that left the window (time <= now - W), oldest first
        while drop < len do
          local t, ec = entry(drop + 1)
          if t > now - W then
            break
          end
          sum = sum - ec
          drop = drop + 1
        end
        local live = len - drop
        local newest_t, newest_c
        if live > 0 then
          newest_t, newest_c = struct.unpack('<dd', (len < nh) and h[len + 1]
                                                    or redis.call('LINDEX', key, -1))
        end
        ok = sum + cq <= L
        local s1 = ok and sum + c or sum
        rem = (L - s1 > 0) and L - s1 or 0
        if ok and c > 0 then
          reset = ((newest_t or now) > now and newest_t or now) + W - now
        elseif live > 0 then
          reset = newest_t + W - now
        end
        if ok then
          retry = 0
        elseif cq <= L then
          -- first entry k (oldest first) whose leaving frees enough: sum - r_k + cq <= L
          local r = 0
          for j = 1 + drop, len do
            local t, ec = entry(j)
            r = r + ec
            if sum - r + cq <= L then
              retry = t + W - now
              break
            end
          end
        end
        if ok and c > 0 then
          state = { fresh = (len == 0), absent = (next(h) == nil), drop = drop, live = live,
                    newest_t = newest_t, newest_c = newest_c,
                    hdr = struct.pack('<ddddddd', 1, L, W, B, s1, 0, 0) }
        end
      else
        if alg == 3 or alg == 4 then
          if B <= 0 then
            B = L -- burst 0: the default, L
          end
          cap = B
        elseif alg ~= 0 and alg ~= 2 then
          return redis.error_reply('ERR sluice: unknown algorithm')
        end
        -- the cell: nil when absent, of another type or other parameters
        local v = redis.pcall('GET', key) -- false when absent, an error table when a list
        local s1, s2, s3
        if v and #v == 56 then
          local a, l, w, b
          a, l, w, b, s1, s2, s3 = struct.unpack('<ddddddd', v)
          if a ~= alg or l ~= L or w ~= W or b ~= B then
            s1, s2, s3 = nil, nil, nil
          end
        end
        if alg == 0 then -- fixed window
          local j = idiv(now, W)
          local n0 = (s1 == j) and s2 or 0
          ok = n0 + cq <= L
          local n1 = ok and n0 + c or n0
          rem = (L - n1 > 0) and L - n1 or 0
          reset = (n1 > 0) and (j + 1) * W - now or 0
          retry = ok and 0 or (j + 1) * W - now
          if ok and c > 0 then
            state = struct.pack('<ddddddd', 0, L, W, B, j, n1, 0)
          end
        elseif alg == 2 then -- sliding window
          local j = idiv(now, W)
          local e = now - j * W
          local pv, nn = 0, 0
          if s1 == j then
            pv, nn = s2, s3
          elseif s1 == j - 1 then
            pv, nn = s3, 0
          end
          ok = nn + cq <= L and pv * (W - e) <= (L - nn - cq) * W
          local n1 = ok and nn + c or nn
          rem = idiv(L * W - pv * (W - e), W) - n1
          rem = (rem > 0) and rem or 0
          if n1 > 0 then
            reset = (j + 2) * W - now
          elseif pv > 0 then
            reset = (j + 1) * W - now
          end
          if ok then
            retry = 0
          elseif nn + cq <= L then
            retry = W - idiv((L - nn - cq) * W, pv) - e
          elseif nn > 0 then
            retry = (j + 1) * W + W - idiv((L - cq) * W, nn) - now
          end
          if ok and c > 0 then
            state = struct.pack('<ddddddd', 2, L, W, B, j, pv, n1)
          end
        else -- GCRA: token bucket (3), leaky bucket (4); cdiv(a, b) = -idiv(-a, b)
          local t0, excess = s1, s2
          if not t0 then
            t0, excess = 0, 0
          end
          local dt = (now - t0 > 0) and now - t0 or 0
          local x = 0
          if dt < -idiv(-excess, L) then
            x = excess - dt * L
          end
          ok = x <= (B - cq) * W
          local x1 = ok and x + c * W or x
          rem = idiv(B * W - x1, W)
          reset = -idiv(-x1, L)
          retry = ok and 0 or -idiv((B - cq) * W - x, L)
          if alg == 4 and ok then
            delay = -idiv(-x, L)
          end
          if ok and c > 0 then
            state = struct.pack('<ddddddd', alg, L, W, B, (now > t0) and now or t0, x1, 0)
          end
        end
      end
      if cq > cap then
        ok = false
        retry = -1
      end
      if pass == 1 then
        out[k + 1] = ok and 1 or 0
        all = all and ok
        if i == 1 then
          state1 = state
        else
          states = states or {}
          states[i] = state
        end
      end
      out[k + 2] = cap
      out[k + 3] = rem
      out[k + 4] = reset
      out[k + 5] = retry
      out[k + 6] = (ok and pass == 1) and delay or 0
    end
  end
  if all then
    break
  end
end

if all and cost > 0 then
  for i = 1, n do
    local key = KEYS[i]
    local st = (i == 1) and state1 or states[i]
    local ttl = string.format('%d', out[6 * i - 1] + slack)
    if type(st) == 'string' then
      redis.call('SET', key, st, 'PX', ttl)
    else -- sliding log
      if st.fresh then
        if not st.absent then
          redis.call('DEL', key)
        end
        redis.call('RPUSH', key, st.hdr, struct.pack('<dd', now, cost))
      else
        if st.drop > 0 then
          redis.call('LTRIM', key, st.drop, -1)
        end
        redis.call('LSET', key, 0, st.hdr)
        if st.live > 0 and st.newest_t >= now then
          -- same millisecond (or a server clock that stepped back): merge
          redis.call('LSET', key, -1, struct.pack('<dd', st.newest_t, st.newest_c + cost))
        else
          redis.call('RPUSH', key, struct.pack('<dd', now, cost))
        end
      end
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
return out
