-- claim_leases: a publisher's session is proof of where its stream is, so each given origin takes
-- the stream's lease, from another owner if need be, when it is live and not set aside.
-- ARGV: prefix, lease ms, default backend id ('' if none), then stream, origin id pairs.
-- Returns how many were claimed.
local lease, default, claimed = tonumber(ARGV[2]), ARGV[3], 0
for i = 4, #ARGV - 1, 2 do
  local stream, id = ARGV[i], ARGV[i + 1]
  local live = id == default or redis.call('EXISTS', P .. 'origin:' .. id) == 1
  if live and redis.call('EXISTS', P .. 'aside:' .. id) == 0 then
    local owner = redis.call('GET', P .. 'owner:' .. stream)
    if owner and owner ~= id then
      redis.call('ZREM', P .. 'streams:' .. owner, stream)
    end
    lease_to(stream, id, lease)
    claimed = claimed + 1
  end
end
return claimed
