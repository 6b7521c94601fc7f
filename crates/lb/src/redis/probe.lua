-- probe: the result of a reachability probe of a live origin.
-- ARGV: prefix, origin id, 1 (reachable) or 0, hold ms.
-- Reachable ends an unverified hold ('probe'), not a set-aside after a failed dial ('1');
-- unreachable holds the origin out for `hold` ms and drops its leases.
-- Returns 1 when something changed, else 0.
local id, reachable, hold = ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local aside = P .. 'aside:' .. id
if reachable then
  if redis.call('GET', aside) == 'probe' then
    redis.call('DEL', aside)
    return 1
  end
  return 0
end
if redis.call('EXISTS', P .. 'origin:' .. id) == 0 then
  return 0
end
redis.call('SET', aside, 'probe', 'PX', hold)
release(id)
return 1
