-- register: a heartbeat.
-- ARGV: prefix, id, server, origin JSON, alive ms, endpoints fingerprint, probe hold ms (0: off).
-- Returns {the id of the process it replaces (same server, other id: a restart) or '',
--          1 if the origin was not live before, else 0,
--          1 if its endpoints are new for this id and it now awaits a probe, else 0}.
local id, server, json, alive = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local endpoints, hold = ARGV[6], tonumber(ARGV[7])
local server_key = P .. 'server:' .. server
local old = redis.call('GET', server_key)
local replaced = ''
if old and old ~= id then
  release(old)
  redis.call('DEL', P .. 'origin:' .. old, P .. 'aside:' .. old, P .. 'endpoints:' .. old,
    P .. 'down:' .. old)
  redis.call('ZREM', P .. 'origins', old)
  replaced = old
end
local fresh = redis.call('EXISTS', P .. 'origin:' .. id) == 0 and 1 or 0
local endpoints_key = P .. 'endpoints:' .. id
local unverified = 0
if hold > 0 and redis.call('GET', endpoints_key) ~= endpoints then
  redis.call('SET', P .. 'aside:' .. id, 'probe', 'PX', hold)
  redis.call('DEL', P .. 'down:' .. id)
  unverified = 1
end
redis.call('SET', server_key, id, 'PX', alive)
redis.call('SET', P .. 'origin:' .. id, json, 'PX', alive)
redis.call('SET', endpoints_key, endpoints, 'PX', alive)
redis.call('ZADD', P .. 'origins', now, id)
return {replaced, fresh, unverified}
