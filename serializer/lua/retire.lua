-- retire: the first step of a node's removal (Service.Remove). From now on
-- the node admits nothing (admit.lua and boot.lua refuse it); its waiting
-- actions end Cancelled at once; the running one, if any, runs to its end
-- under its lease holder. Every replica runs it when it removes the node:
-- the second run finds nothing left to drop.
-- ARGV: 1 node, 2 now (ms). Returns {running task or '', dropped...}.
local node, now = ARGV[1], tonumber(ARGV[2])
local s = load_slots()
local out = { s.now }
for _, x in ipairs(s.waiting) do
  end_task(x.task, STATE.Cancelled, 'OK', 'cancelled: the node is being removed from the gateway', now)
  out[#out + 1] = x.task
end
local first = redis.call('HSET', SLOTS, 'retired', '1') == 1
if #s.waiting > 0 or first then
  s.waiting = {}
  save_slots(s, node)
  log({ 'event', 'retired', 'running', s.now, 'dropped', table.concat(out, ' ', 2) })
end
return out
