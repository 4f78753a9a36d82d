-- lease: acquire, renew or release a node's lease
-- (docs/architecture.md#leases-and-fencing).
-- LEASE the lease; FENCE the fence counter.
-- ARGV: 1 op, 2 replica id or lease value, 3 ttl (ms).
-- acquire: SET NX PX with a new fencing token; returns the lease value or ''.
-- renew/release: only by the holder of that exact value; returns 1 or 0.
local op = ARGV[1]
if op == 'acquire' then
  if redis.call('EXISTS', LEASE) == 1 then return '' end
  local fence = redis.call('INCR', FENCE)
  local val = ARGV[2] .. '|' .. fence
  redis.call('SET', LEASE, val, 'PX', ARGV[3])
  return val
end
if redis.call('GET', LEASE) ~= ARGV[2] then return 0 end
if op == 'renew' then
  redis.call('PEXPIRE', LEASE, ARGV[3])
  return 1
end
if op == 'release' then
  redis.call('DEL', LEASE)
  return 1
end
return redis.error_reply('unknown op ' .. op)
