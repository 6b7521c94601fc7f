-- probe: the result of a reachability probe of a live origin's TCP endpoints.
-- ARGV: prefix, origin id, hold ms, the endpoint kinds that did not answer as ',rtmp,http,'
-- ('' when all did).
-- Ends an unverified hold ('probe'), not a set-aside after a failed dial ('1'), and replaces
-- the kinds held out (`down:`) for `hold` ms.
-- Returns 1 if it ended an unverified hold, else 0.
local id, hold, down = ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', P .. 'origin:' .. id) == 0 then
  return 0
end
local down_key = P .. 'down:' .. id
if down == '' then
  redis.call('DEL', down_key)
else
  redis.call('SET', down_key, down, 'PX', hold)
end
local aside = P .. 'aside:' .. id
if redis.call('GET', aside) == 'probe' then
  redis.call('DEL', aside)
  return 1
end
return 0
