-- set_aside: quarantines a live origin (or the default backend) and drops its leases.
-- ARGV: prefix, origin id, duration ms (> 0), default backend id ('' if none).
-- Returns 1 if set aside, 0 for an unknown id.
local id, duration, default = ARGV[2], tonumber(ARGV[3]), ARGV[4]
if id ~= default and redis.call('EXISTS', P .. 'origin:' .. id) == 0 then
  return 0
end
redis.call('SET', P .. 'aside:' .. id, '1', 'PX', duration)
release(id)
return 1
