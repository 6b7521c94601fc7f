-- origins: every live origin, for the system API.
-- ARGV: prefix, alive ms, default backend id ('' if none).
-- Returns {id, heartbeat age ms, JSON ('' for the default backend), aside ('' when not aside,
-- 'probe' while unverified, '1' after a failed dial), leases, endpoint kinds held down
-- (',rtmp,http,' or '')} rows,
-- the default backend first.
local alive, default = tonumber(ARGV[2]), ARGV[3]
prune(alive)
local rows = {}
local function row(id, age, json)
  rows[#rows + 1] = {id, age, json, redis.call('GET', P .. 'aside:' .. id) or '', load(id),
    redis.call('GET', P .. 'down:' .. id) or ''}
end
if default ~= '' then
  row(default, 0, '')
end
local index = redis.call('ZRANGE', P .. 'origins', 0, -1, 'WITHSCORES')
for i = 1, #index, 2 do
  local id = index[i]
  local json = redis.call('GET', P .. 'origin:' .. id)
  if json and id ~= default then
    row(id, now - tonumber(index[i + 1]), json)
  end
end
return rows
