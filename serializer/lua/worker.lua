-- worker: the lease holder's steps. Every step first checks the fencing
-- token (the lease value "replica|fence") so that a holder whose lease
-- expired can neither send a command nor write a result.
-- ARGV: 1 op, 2 lease value, 3 node, 4 task, 5 now (ms), 6.. op arguments.
-- ops:
--   begin                    task New -> Running; returns {ok, type, state before, cancelling, next type,
--                            boot flag, request id of the task ('' when none), its admission
--                            time in ms ('' when not known)}
--   step  <note> <command> <force>
--                            records that BMC command <command> is about to be sent
--                            (the note joins the task's steps); {ok, cancelling, next type}.
--                            While the action is being cancelled nothing is recorded and
--                            cancelling is returned, unless force = 1 (a cancelled restart
--                            powering the node back On).
--   unissue                  the BMC refused the command: not under way; {ok, cancelling, next type}
--   progress <pct> <note> <keep>
--                            records progress (keep = 1: the note joins the task's
--                            steps, a phase message); {ok, cancelling, next type}
-- next type: the ResetType of the action waiting next ('' when none).
--   finish <state> <status> <reason> <observed> <set_desired_observed>
--                            ends the task, promotes the next;
--                            {ok, next_task, next_type, final state, status, reason}
--   power <state>            records an observed power state; {ok}
--   boot_done <seq> <result> a pending boot override up to <seq> was applied
--                            (result "ok" or the BMC's error); {ok}
-- Replies of begin, step, unissue and progress end with the boot flag:
-- '1' when a boot override waits to be applied (boot.lua).
local op, lease, node, task, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if not lease_held(LEASE, lease) then return { 'fenced' } end
local s = load_slots()

if op == 'power' then
  redis.call('HSET', SLOTS, 'power', ARGV[6], 'power_at', now)
  redis.call('PUBLISH', 'fg:node', node)
  return { 'ok' }
end

if op == 'boot_done' then
  local seq = tonumber(ARGV[6])
  local pending = redis.call('HGET', SLOTS, 'boot_pending')
  if pending then
    local b = cjson.decode(pending)
    if tonumber(b.seq) <= seq then redis.call('HDEL', SLOTS, 'boot_pending') end
    -- what was applied, for every replica's view
    if ARGV[7] == 'ok' then
      for _, f in ipairs({ 'target', 'enabled', 'mode' }) do
        if b[f] and b[f] ~= '' then redis.call('HSET', SLOTS, 'boot_' .. f, b[f]) end
      end
    end
  end
  redis.call('HSET', SLOTS, 'boot_result', seq .. ' ' .. ARGV[7])
  log({ 'event', 'boot', 'seq', tostring(seq), 'result', ARGV[7], 'fence', lease })
  redis.call('PUBLISH', 'fg:node', node)
  return { 'ok' }
end

if s.now ~= task then return { 'not-now', s.now } end
local t = get_task(task)
local next_type = ''
if #s.waiting > 0 then next_type = s.waiting[1].type end
local cancel_flag = s.cancelling and '1' or ''
local boot_flag = redis.call('HEXISTS', SLOTS, 'boot_pending') == 1 and '1' or ''

-- add_step keeps a task's phase messages (at most 20: the last ones), each
-- as "<percent complete> <note>".
local function add_step(t, note)
  if note == nil or note == '' then return end
  local steps = t.steps
  if type(steps) ~= 'table' then steps = {} end
  steps[#steps + 1] = tostring(t.pct or 0) .. ' ' .. note
  while #steps > 20 do table.remove(steps, 1) end
  t.steps = steps
end

if op == 'begin' then
  -- the state before begin: New for a fresh task (the worker reports
  -- TaskStarted), Running for one a previous holder had begun (recovery)
  local before = t and t.state or ''
  if t and t.state == STATE.New then
    t.state, t.start = STATE.Running, now
    put_task(t)
  end
  log({ 'event', 'begin', 'task', task, 'fence', lease })
  return { 'ok', s.now_type, before, cancel_flag, next_type, boot_flag, t and t.rid or '', t and tostring(t.created or '') or '' }
end

if op == 'step' then
  if s.cancelling and ARGV[8] ~= '1' then return { 'ok', '1', next_type, boot_flag } end
  if t then t.issued = now; t.note = ARGV[6]; add_step(t, ARGV[6]); put_task(t) end
  redis.call('HSET', SLOTS, 'issued', task, 'issued_at', now, 'issued_cmd', ARGV[7] or '')
  log({ 'event', 'command', 'task', task, 'command', ARGV[7] or '', 'note', ARGV[6], 'fence', lease })
  return { 'ok', '', next_type, boot_flag }
end

if op == 'unissue' then
  -- the BMC refused the command: nothing is under way
  if t then t.issued = nil; put_task(t) end
  redis.call('HDEL', SLOTS, 'issued', 'issued_at', 'issued_cmd')
  return { 'ok', cancel_flag, next_type, boot_flag }
end

if op == 'progress' then
  if t then
    t.pct = tonumber(ARGV[6]); t.note = ARGV[7]
    if ARGV[8] == '1' then add_step(t, ARGV[7]) end
    put_task(t)
  end
  return { 'ok', cancel_flag, next_type, boot_flag }
end

if op == 'finish' then
  local state, status, reason, observed = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  if t then
    -- a task being cancelled that was carried out before it noticed:
    -- an action without a steady target (an NMI delivered) happened and
    -- cannot be undone, so it is Completed and says the cancellation came
    -- too late; one with a target (On, ForceOff, a restart) ends Cancelled
    -- all the same (the client was told it would not run to the end; the
    -- node is left where it is: docs/architecture.md#cancellation).
    if state == STATE.Completed and t.state == STATE.Cancelling then
      local why = (t.reason and t.reason ~= '') and t.reason or 'cancelled'
      if TARGETS[t.type] then
        state, status = STATE.Cancelled, 'OK'
        reason = 'it reached its end before the cancellation took effect (' .. reason .. ')'
      else
        reason = reason .. '; the cancellation (' .. why .. ') came too late: the action had already been carried out'
      end
    end
    -- a cancelled task keeps the cause recorded when it was cancelled
    -- ("superseded by ...", "cancelled by a client"), ahead of the outcome.
    if state == STATE.Cancelled and t.state == STATE.Cancelling and t.reason and t.reason ~= '' then
      reason = t.reason .. '; ' .. reason
    end
    t.state, t.status, t.reason, t['end'], t.pct = state, status, reason, now, 100
    if t.start == nil then t.start = now end
    put_task(t)
  end
  if observed ~= '' then redis.call('HSET', SLOTS, 'power', observed, 'power_at', now) end
  -- the node shows its last failed action until an action completes
  if state == STATE.Exception then
    redis.call('HSET', SLOTS, 'failed_task', task, 'failed_reason', reason, 'failed_at', now)
  elseif state == STATE.Completed then
    redis.call('HDEL', SLOTS, 'failed_task', 'failed_reason', 'failed_at')
  end
  local nt = ''
  local ntype = ''
  if #s.waiting > 0 then
    local w = table.remove(s.waiting, 1)
    nt, ntype = w.task, w.type
  end
  -- a task that was being cancelled (aborted, or superseded by a request
  -- that was then dropped) leaves the desired state at what was observed,
  -- also when it reached its end before it saw the cancellation.
  local was_cancelling = s.cancelling
  s.now, s.now_type, s.cancelling = nt, ntype, false
  if (ARGV[10] == '1' or was_cancelling) and observed ~= '' and #s.waiting == 0 and nt == '' then
    s.desired = observed
  end
  save_slots(s, node)
  redis.call('HDEL', SLOTS, 'issued', 'issued_at', 'issued_cmd')
  log({ 'event', 'finish', 'task', task, 'state', state, 'reason', reason, 'fence', lease })
  return { 'ok', nt, ntype, state, status, reason }
end
return redis.error_reply('unknown op ' .. op)
