-- Prelude of every script (see mod.rs for the key layout). ARGV[1] is always the key prefix.
-- Keys are derived from ARGV and from what is read (a stream's owner), so they cannot all be
-- declared; KEYS[1] is the fleet's index key, declared so that a cluster runs the script on the
-- primary of its slot. On a cluster the prefix is a hash tag, putting every key in that one
-- slot (docs/design.md §9).
local P = ARGV[1]
-- Redis's clock, so every proxy agrees on lease ends whatever its own clock says
-- (TIME before writes is allowed with effects replication, the only mode since Redis 7).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

-- Drops every lease held by origin `id`: the owner keys still naming it, and its stream set.
local function release(id)
  local set = P .. 'streams:' .. id
  for _, stream in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    local owner = P .. 'owner:' .. stream
    if redis.call('GET', owner) == id then
      redis.call('DEL', owner)
    end
  end
  redis.call('DEL', set)
end

-- Leases `stream` to origin `id` for `lease` ms from now. The stream set lives as long as its
-- longest lease, which is this one.
local function lease_to(stream, id, lease)
  redis.call('SET', P .. 'owner:' .. stream, id, 'PX', lease)
  local set = P .. 'streams:' .. id
  redis.call('ZADD', set, now + lease, stream)
  redis.call('PEXPIRE', set, lease)
end

-- Number of unexpired leases held by origin `id`.
local function load(id)
  local set = P .. 'streams:' .. id
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  return redis.call('ZCARD', set)
end

-- Forgets index entries of origins whose heartbeat is `alive` ms old or older.
local function prune(alive)
  redis.call('ZREMRANGEBYSCORE', P .. 'origins', '-inf', now - alive)
end

