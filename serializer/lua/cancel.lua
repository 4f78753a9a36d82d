-- cancel: a DELETE of a task (policy.go's Cancel), applied atomically.
-- ARGV: 1 node, 2 task id, 3 now (ms). Returns {result, state}.
local node, task, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local s = load_slots()
if s.now == task and task ~= '' then
  if s.cancelling then return { 'already', STATE.Cancelling } end
  s.cancelling = true
  save_slots(s, node)
  local t = get_task(task)
  if t then t.state = STATE.Cancelling; t.reason = 'cancelled by a client (DELETE)'; put_task(t) end
  log({ 'event', 'cancel', 'task', task, 'result', 'cancelling' })
    return { 'cancelling', STATE.Cancelling }
end
for i, w in ipairs(s.waiting) do
  if w.task == task then
    table.remove(s.waiting, i)
    save_slots(s, node)
    end_task(task, STATE.Cancelled, 'OK', 'cancelled by a client (DELETE) before it started', now)
    log({ 'event', 'cancel', 'task', task, 'result', 'dropped' })
    return { 'dropped', STATE.Cancelled }
  end
end
local t = get_task(task)
if not t then return { 'finished', '' } end
return { 'finished', t.state }
