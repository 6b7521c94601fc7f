-- pick: the owner of a stream, or a new one, atomically for every proxy.
-- ARGV: prefix, stream, lease ms, alive ms, random seed, default backend id ('' if none),
--       '1' if the default backend offers the protocol, the load limit ('' if none), then the
--       endpoint lists the protocol needs (e.g. 'http', or 'api' and 'rtc').
-- Returns {kind, origin id, origin JSON ('' for the default backend)}, kind being
-- 'owner' (live owner, lease refreshed), 'lacks' (live owner without the protocol, lease
-- refreshed), 'new' (newly leased) or 'none' (no live origin offers the protocol).
local stream, lease, alive, seed = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local default, default_offers, limit = ARGV[6], ARGV[7] == '1', tonumber(ARGV[8])

-- The decoded record of an origin, or nil when it is not a JSON object.
local function decode(json)
  local ok, info = pcall(cjson.decode, json)
  if ok and type(info) == 'table' then
    return info
  end
  return nil
end

local function offers(info)
  for i = 9, #ARGV do
    local list = info[ARGV[i]]
    if type(list) ~= 'table' or #list == 0 then
      return false
    end
  end
  return true
end

-- Whether a probe found one of the endpoints the protocol needs unreachable (`down:{id}`).
local function held_down(id)
  local down = redis.call('GET', P .. 'down:' .. id)
  if not down then
    return false
  end
  for i = 9, #ARGV do
    if string.find(down, ',' .. ARGV[i] .. ',', 1, true) then
      return true
    end
  end
  return false
end

-- The record of a live origin ('' for the default backend), or nil: dead, gone or set aside.
local function live(id)
  if redis.call('EXISTS', P .. 'aside:' .. id) == 1 then
    return nil
  end
  if id == default then
    return ''
  end
  return redis.call('GET', P .. 'origin:' .. id) or nil
end

local owner = redis.call('GET', P .. 'owner:' .. stream)
if owner then
  local json = live(owner)
  if json and not (json ~= '' and held_down(owner)) then
    lease_to(stream, owner, lease)
    local ok
    if json == '' then
      ok = default_offers
    else
      local info = decode(json)
      ok = info ~= nil and offers(info)
    end
    if ok then
      return {'owner', owner, json}
    end
    return {'lacks', owner, ''}
  end
  release(owner)
end

prune(alive)
-- Origins whose load per CPU is above the limit compete only when every candidate is
-- (docs/design.md §5.1); among the group that competes, the fewest leases win.
local under, over = {ties = {}}, {ties = {}}
local function consider(group, id, json)
  local n = load(id)
  if group.fewest == nil or n < group.fewest then
    group.fewest, group.ties = n, {{id, json}}
  elseif n == group.fewest then
    group.ties[#group.ties + 1] = {id, json}
  end
end
if default ~= '' and default_offers and live(default) then
  consider(under, default, '')
end
for _, id in ipairs(redis.call('ZRANGE', P .. 'origins', 0, -1)) do
  if id ~= default then
    local json = live(id)
    local info = json and decode(json)
    if info and offers(info) and not held_down(id) then
      local above = limit ~= nil and type(info.load) == 'number' and info.load > limit
      consider(above and over or under, id, json)
    end
  end
end
local group = under
if group.fewest == nil then
  group = over
end
if group.fewest == nil then
  return {'none', '', ''}
end
local chosen = group.ties[(seed % #group.ties) + 1]
lease_to(stream, chosen[1], lease)
return {'new', chosen[1], chosen[2]}
