"""The Lua scripts of :class:`~runengine.scaleout.lock.RedisLock` (one round trip, atomic).

Keys of a lock: ``H`` the holder (``"<fence>\\t<since>\\t<job>\\t<owner>"``, with the lease as
its TTL), ``Q`` the FIFO queue (a zset of tickets scored by number), ``F`` the fence counter,
``T`` the ticket counter; per ticket ``W..ticket`` (the waiter is alive; its job) and
``K..ticket`` (a list its waiter blocks on, pushed when it may be its turn).
"""

# Shared head: drop waiters whose liveness key expired; the live head ticket (or nil).
_HEAD = """
local function head()
  while true do
    local h = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not h then return nil end
    if redis.call('EXISTS', ARGV[1] .. h) == 1 then return h end
    redis.call('ZREM', KEYS[2], h)
  end
end
local function wake()
  local h = head()
  if h and redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('LPUSH', ARGV[2] .. h, '1')
    redis.call('PEXPIRE', ARGV[2] .. h, 60000)
  end
end
local function mine(fence)
  local v = redis.call('GET', KEYS[1])
  return v and string.match(v, '^(%d+)\\t') == fence
end
"""

# KEYS H Q F T; ARGV wprefix kprefix ticket job_owner lease_ms try_only waiter_ttl_ms job
ACQUIRE = (
    _HEAD
    + """
local h = head()
local ticket = ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 and (h == nil or h == ticket) then
  local fence = redis.call('INCR', KEYS[3])
  local t = redis.call('TIME')
  local since = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
  redis.call('SET', KEYS[1], fence .. '\\t' .. since .. '\\t' .. ARGV[4], 'PX', ARGV[5])
  if ticket ~= '' then
    redis.call('ZREM', KEYS[2], ticket)
    redis.call('DEL', ARGV[1] .. ticket, ARGV[2] .. ticket)
  end
  return {1, tostring(fence), ''}
end
local holder = redis.call('GET', KEYS[1]) or ''
if ARGV[6] == '1' then return {0, '', holder} end
if ticket == '' then
  local n = redis.call('INCR', KEYS[4])
  ticket = 'T' .. n
  redis.call('ZADD', KEYS[2], n, ticket)
elseif not redis.call('ZSCORE', KEYS[2], ticket) then
  return {-2, '', holder}
end
redis.call('SET', ARGV[1] .. ticket, ARGV[8], 'PX', ARGV[7])
return {0, ticket, holder}
"""
)

# KEYS H Q; ARGV wprefix kprefix fence
RELEASE = (
    _HEAD
    + """
local ok = mine(ARGV[3])
if ok then redis.call('DEL', KEYS[1]) end
wake()
return ok and 1 or 0
"""
)

# KEYS H Q F T; ARGV wprefix kprefix fence job waiter_ttl_ms
YIELD = (
    _HEAD
    + """
if not mine(ARGV[3]) then return {-1, ''} end
if not head() then return {0, ''} end
local n = redis.call('INCR', KEYS[4])
local ticket = 'T' .. n
redis.call('ZADD', KEYS[2], n, ticket)
redis.call('SET', ARGV[1] .. ticket, ARGV[4], 'PX', ARGV[5])
redis.call('DEL', KEYS[1])
wake()
return {1, ticket}
"""
)

# KEYS H Q; ARGV wprefix kprefix ticket
WITHDRAW = (
    _HEAD
    + """
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('DEL', ARGV[1] .. ARGV[3], ARGV[2] .. ARGV[3])
wake()
return 1
"""
)

# KEYS H Q; ARGV wprefix kprefix fence lease_ms
RENEW = (
    _HEAD
    + """
if not mine(ARGV[3]) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
)

# KEYS H Q; ARGV wprefix kprefix fence
IS_HOLDER = (
    _HEAD
    + """
return mine(ARGV[3]) and 1 or 0
"""
)

# KEYS max; ARGV fence -- a device's fencing check: refuse any fence older than the newest seen
ADMIT = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
local fence = tonumber(ARGV[1])
if fence < seen then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
