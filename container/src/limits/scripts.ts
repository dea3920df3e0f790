/** Redis Lua scripts for admission and reconciliation (kept in TS so the build ships them). */

/**
 * Admission for one API key: requests and tokens per minute (sliding window over two fixed
 * one-minute windows: exact for bursts, O(1) memory), tokens per UTC day, USD per month.
 * Checks all four, then reserves all four, or nothing. One round trip.
 *
 * KEYS: 1 rpm previous window, 2 rpm current window, 3 tpm previous, 4 tpm current,
 *       5 day counter, 6 month counter (micro-USD)
 * ARGV: 1 ms elapsed in the current minute, 2 rpm, 3 tpm, 4 daily limit, 5 monthly limit (micro-USD),
 *       6 tokens, 7 cost (micro-USD), 8 ms until day end, 9 ms until month end   (0 = unlimited)
 * Returns: denied ('' | rpm | tpm | daily | monthly), wait ms, rpm remaining, tpm remaining
 */
export const ADMISSION_LUA = `
local elapsed = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local daily = tonumber(ARGV[4])
local monthly = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local cost = tonumber(ARGV[7])
local window = 60000
local frac = elapsed / window

local function check(prev_key, cur_key, limit, n)
  if limit <= 0 then return 1, 0, -1 end
  local prev = tonumber(redis.call('GET', prev_key) or '0')
  local cur = tonumber(redis.call('GET', cur_key) or '0')
  -- Rounded up: a burst that straddles the minute boundary still admits exactly the limit.
  local used = math.ceil(prev * (1 - frac)) + cur
  if used + n <= limit then
    return 1, 0, math.floor(limit - used - n)
  end
  local wait
  if cur + n > limit then
    -- Not even a fresh window fits it alongside this one's count: wait into the next window.
    local f = 1
    if cur > 0 then f = 1 - (limit - n) / cur end
    if f < 0 then f = 0 end
    wait = (window - elapsed) + f * window
  else
    wait = ((1 - (limit - cur - n) / prev) - frac) * window
  end
  return 0, wait, math.max(0, math.floor(limit - used))
end

local r_ok, r_wait, r_rem = check(KEYS[1], KEYS[2], rpm, 1)
local t_ok, t_wait, t_rem = check(KEYS[3], KEYS[4], tpm, tokens)
local used_day = tonumber(redis.call('GET', KEYS[5]) or '0')
local used_month = tonumber(redis.call('GET', KEYS[6]) or '0')

local denied = ''
local wait = 0
if r_ok == 0 then denied = 'rpm'; wait = r_wait
elseif t_ok == 0 then denied = 'tpm'; wait = t_wait
elseif daily > 0 and used_day + tokens > daily then denied = 'daily'; wait = tonumber(ARGV[8])
elseif monthly > 0 and used_month + cost > monthly then denied = 'monthly'; wait = tonumber(ARGV[9])
end

if denied == '' then
  local ttl = 2 * window - elapsed + 1000
  if rpm > 0 then
    redis.call('INCR', KEYS[2])
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  if tpm > 0 and tokens > 0 then
    redis.call('INCRBY', KEYS[4], tokens)
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
  if tokens > 0 then
    redis.call('INCRBY', KEYS[5], tokens)
    redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[8]) + 3600000)
  end
  if cost > 0 then
    redis.call('INCRBY', KEYS[6], cost)
    redis.call('PEXPIRE', KEYS[6], tonumber(ARGV[9]) + 86400000)
  end
end
return { denied, math.ceil(wait), r_rem, t_rem }
`;

/**
 * Reconciliation: charge or give back the difference between reserved and real usage, in the
 * windows the reservation was made in. Counters that already expired are left alone.
 * KEYS: 1 tpm window of the reservation, 2 day counter, 3 month counter. ARGV: 1 token delta, 2 micro-USD delta
 */
export const RECONCILE_LUA = `
local dt = tonumber(ARGV[1])
local dc = tonumber(ARGV[2])
if dt ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], dt) end
if dt ~= 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], dt) end
if dc ~= 0 and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCRBY', KEYS[3], dc) end
return 1
`;
