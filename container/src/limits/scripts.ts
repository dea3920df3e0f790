/** Redis Lua scripts for admission and reconciliation (kept in TS so the build ships them). */

/**
 * Admission: RPM + TPM (GCRA), tokens per UTC day, USD per month; all checked, then all
 * reserved, or nothing. One round trip.
 */
export const ADMISSION_LUA = `-- Admission for one API key: RPM + TPM (GCRA), tokens per UTC day, USD per month.
-- Checks all four, then reserves all four, or nothing. One round trip.
-- KEYS: 1 rpm tat, 2 tpm tat, 3 day counter, 4 month counter (micro-USD)
-- ARGV: 1 now ms, 2 rpm, 3 tpm, 4 daily limit, 5 monthly limit micro-USD, 6 tokens, 7 cost micro-USD,
--       8 ms until day end, 9 ms until month end   (a limit of 0 means unlimited)
local now = tonumber(ARGV[1])
local rpm = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local daily = tonumber(ARGV[4])
local monthly = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local cost = tonumber(ARGV[7])
local period = 60000

local function gcra(key, limit, n)
  if limit <= 0 then return 1, 0, -1, 0, 0 end
  local t = period / limit
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + n * t
  local allow_at = new_tat - period
  if now < allow_at then
    local remaining = math.floor((period - (tat - now)) / t)
    return 0, allow_at - now, remaining, tat - now, 0
  end
  return 1, 0, math.floor((period - (new_tat - now)) / t), new_tat - now, new_tat
end

local r_ok, r_wait, r_rem, r_reset, r_tat = gcra(KEYS[1], rpm, 1)
local t_ok, t_wait, t_rem, t_reset, t_tat = gcra(KEYS[2], tpm, tokens)
local used_day = tonumber(redis.call('GET', KEYS[3]) or '0')
local used_month = tonumber(redis.call('GET', KEYS[4]) or '0')

local denied = ''
local wait = 0
if r_ok == 0 then denied = 'rpm'; wait = r_wait
elseif t_ok == 0 then denied = 'tpm'; wait = t_wait
elseif daily > 0 and used_day + tokens > daily then denied = 'daily'; wait = tonumber(ARGV[8])
elseif monthly > 0 and used_month + cost > monthly then denied = 'monthly'; wait = tonumber(ARGV[9])
end

if denied == '' then
  if rpm > 0 then redis.call('SET', KEYS[1], r_tat, 'PX', math.ceil(r_tat - now) + 1000) end
  if tpm > 0 and tokens > 0 then redis.call('SET', KEYS[2], t_tat, 'PX', math.ceil(t_tat - now) + 1000) end
  if tokens > 0 then
    used_day = redis.call('INCRBY', KEYS[3], tokens)
    redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[8]) + 3600000)
  end
  if cost > 0 then
    used_month = redis.call('INCRBY', KEYS[4], cost)
    redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[9]) + 86400000)
  end
end
return { denied, math.ceil(wait), r_rem, math.ceil(r_reset), t_rem, math.ceil(t_reset), used_day, used_month }
`;

/** Reconciliation: charge or give back the difference between reserved and real usage. */
export const RECONCILE_LUA = `-- Give back (or charge) the difference between reserved and real usage.
-- KEYS: 1 tpm tat, 2 day counter, 3 month counter. ARGV: 1 now ms, 2 tpm, 3 token delta, 4 micro-USD delta
local now = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local dt = tonumber(ARGV[3])
local dc = tonumber(ARGV[4])
if tpm > 0 and dt ~= 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat > 0 then
    local new_tat = tat + dt * (60000 / tpm)
    if new_tat > now then
      redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
    else
      redis.call('DEL', KEYS[1])
    end
  end
end
if dt ~= 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], dt) end
if dc ~= 0 and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCRBY', KEYS[3], dc) end
return 1
`;
