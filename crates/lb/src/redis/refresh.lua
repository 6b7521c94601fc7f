-- refresh_leases: extends the leases still held by the given origins, and takes again a lease
-- that vanished (expired while its proxy was cut off, or lost with a Redis restart) when its
-- origin is live and not set aside: the session relaying it is proof of where the stream is.
-- ARGV: prefix, lease ms, default backend id ('' if none), then stream, origin id pairs.
-- Returns how many were extended or taken.
local lease, default, extended = tonumber(ARGV[2]), ARGV[3], 0
for i = 4, #ARGV - 1, 2 do
  local stream, id = ARGV[i], ARGV[i + 1]
  local owner = redis.call('GET', P .. 'owner:' .. stream)
  local usable = owner == id
  if not owner and redis.call('EXISTS', P .. 'aside:' .. id) == 0 then
    usable = id == default or redis.call('EXISTS', P .. 'origin:' .. id) == 1
  end
  if usable then
    lease_to(stream, id, lease)
    extended = extended + 1
  end
end
return extended
