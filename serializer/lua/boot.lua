-- boot: a boot override (PATCH Boot, ipmitool chassis bootdev) admitted
-- for the node's lease holder to apply, in order with power actions: it is
-- applied before the next action begins, at the running action's next step
-- boundary, or at once on an idle node. Overrides not yet applied merge
-- (later fields win).
-- ARGV: 1 node, 2 target, 3 enabled, 4 mode, 5 now (ms).
-- Returns the override's sequence number, -1 for a node being removed
-- (retire.lua).
local node = ARGV[1]
if redis.call('HGET', SLOTS, 'retired') == '1' then return -1 end
local seq = redis.call('HINCRBY', SLOTS, 'boot_seq', 1)
local b = { target = '', enabled = '', mode = '' }
local pending = redis.call('HGET', SLOTS, 'boot_pending')
if pending then b = cjson.decode(pending) end
if ARGV[2] ~= '' then b.target = ARGV[2] end
if ARGV[3] ~= '' then b.enabled = ARGV[3] end
if ARGV[4] ~= '' then b.mode = ARGV[4] end
b.seq = seq
b.at = tonumber(ARGV[5])
redis.call('HSET', SLOTS, 'boot_pending', cjson.encode(b))
log({ 'event', 'boot-requested', 'seq', tostring(seq), 'target', ARGV[2], 'enabled', ARGV[3], 'mode', ARGV[4] })
redis.call('PUBLISH', 'fg:node', node)
return seq
