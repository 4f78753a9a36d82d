-- forget: the fleet-wide task retention (Service.trimTasks) removes one
-- task of the node, if it is finished and has been for at least the
-- minimum age (as admit.lua's prune), or is gone already.
-- ARGV: 1 task id, 2 now (ms), 3 minimum age (ms).
-- Returns 1 when the task is gone, 0 when it stays.
local id, now, min_age = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = get_task(id)
if t then
  if not TERMINAL[t.state] then return 0 end
  if now - (tonumber(t['end']) or tonumber(t.created) or 0) < min_age then return 0 end
  redis.call('HDEL', TASKS, id)
end
return 1
