-- admit: the admission decision of policy.go's Admit, applied atomically.
-- ARGV: 1 node, 2 task id, 3 reset type, 4 now (ms), 5 policy, 6 queue max,
-- 7 flip limit, 8 flip window (ms), 9 precedence ("Type=rank,..."),
-- 10 task retention count, 11 task retention age (ms), 12 request summary,
-- 13 request id ('' when none: the task is not a client's)
-- Returns {outcome, task, refusal, retry_after_ms, cancel_now, dropped...},
-- followed by '|' and the ids of the tasks retention removed, if any (the
-- caller takes them out of the fleet-wide task index, another slot).
local node, task, rtype, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local policy, qmax, flimit, fwin = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local prec = {}
for k, v in string.gmatch(ARGV[9], "([%w]+)=(%d+)") do prec[k] = tonumber(v) end
local keep, maxage = tonumber(ARGV[10]), tonumber(ARGV[11])

local s = load_slots()
redis.call('ZREMRANGEBYSCORE', FLIPS, '-inf', now - fwin)
local flips = redis.call('ZCARD', FLIPS)

local function retry_after()
  local first = redis.call('ZRANGE', FLIPS, 0, 0, 'WITHSCORES')
  if #first < 2 then return fwin end
  return math.max(tonumber(first[2]) + fwin - now, 1)
end

local function refuse(why)
  local ra = 0
  if why == 'flip-flop' then ra = retry_after() end
  log({ 'event', 'refused', 'type', rtype, 'why', why, 'req', ARGV[12] })
  return { 'refused', '', why, ra, 0 }
end

-- A node being removed (retire.lua) admits nothing: not a policy
-- decision, the node is leaving the gateway.
if redis.call('HGET', SLOTS, 'retired') == '1' then return refuse('removed') end

local function coalesce(id)
  local t = get_task(id)
  if t then t.joined = (t.joined or 0) + 1; put_task(t) end
  log({ 'event', 'coalesced', 'type', rtype, 'task', id, 'req', ARGV[12] })
  return { 'coalesced', id, '', 0, 0 }
end

-- Retention (README, tasks:): a task goes once it is finished, beyond the
-- newest `keep` or created more than `maxage` ago, and has been finished
-- for at least min_age (10 minutes, or maxage when smaller): a client still
-- polling a task it was just given (superseded, cancelled a moment ago)
-- finds it. Both rules take the oldest tasks first (task_created orders
-- them), so one look at the 20 oldest serves both: at most 20 tasks read and
-- removed per admission. A task kept by min_age goes at a later admission.
local PRUNE_MAX, MIN_AGE = 20, math.min(600000, maxage)
local forgotten = {}

-- with_forgotten appends the removed tasks to a reply.
local function with_forgotten(out)
  if #forgotten > 0 then
    out[#out + 1] = '|'
    for _, id in ipairs(forgotten) do out[#out + 1] = id end
  end
  return out
end

local function prune()
  -- The node's tasks are the fields of TASKS; they were also indexed by
  -- creation in TASKZ, a key of its own (~140 bytes a node in Redis): an
  -- index left by an earlier version goes.
  redis.call('DEL', TASKZ)
  local ids = redis.call('HKEYS', TASKS)
  local n, at = #ids, {}
  for _, id in ipairs(ids) do at[id] = task_created(id) end
  table.sort(ids, function(a, b)
    if at[a] ~= at[b] then return at[a] < at[b] end
    return a < b
  end)
  for rank = 1, math.min(n, PRUNE_MAX) do
    local id = ids[rank]
    local created = at[id]
    if rank > n - keep and created >= now - maxage then break end -- kept by both rules, and so is the rest
    local t = get_task(id)
    local gone = not t
    if t and TERMINAL[t.state] then
      gone = now - (tonumber(t['end']) or created) >= MIN_AGE
    end
    if gone then
      redis.call('HDEL', TASKS, id)
      forgotten[#forgotten + 1] = id
    end
  end
end

local function new_task()
  local t = { id = task, node = node, type = rtype, state = STATE.New, status = 'OK', created = now, joined = 0, pct = 0 }
  if ARGV[13] and ARGV[13] ~= '' then t.rid = ARGV[13] end
  put_task(t)
  prune()
end

local function drop(list, reason)
  local ids = {}
  for _, x in ipairs(list) do
    end_task(x.task, STATE.Cancelled, 'OK', reason, now)
    ids[#ids + 1] = x.task
  end
  return ids
end

local busy = s.now ~= ''
local live = busy and not s.cancelling
local why = 'superseded by ' .. rtype .. ' (' .. task .. ')'

if not busy then
  local dropped = drop(s.waiting, why)
  s.now, s.now_type, s.cancelling, s.waiting = task, rtype, false, {}
  new_task()
  save_slots(s, node)
  log({ 'event', 'started', 'type', rtype, 'task', task, 'req', ARGV[12] })
    local out = { 'started', task, '', 0, 0 }
  for _, id in ipairs(dropped) do out[#out + 1] = id end
  return with_forgotten(out)
end

if policy == 'queue' then
  local n = #s.waiting
  if n > 0 then
    if s.waiting[n].type == rtype then return coalesce(s.waiting[n].task) end
  elseif live and s.now_type == rtype then
    return coalesce(s.now)
  end
  if qmax <= 0 then qmax = 8 end
  if n >= qmax then return refuse('queue-full') end
  s.waiting[n + 1] = { task = task, type = rtype }
  new_task()
  save_slots(s, node)
  log({ 'event', 'queued', 'type', rtype, 'task', task, 'req', ARGV[12] })
  return with_forgotten({ 'queued', task, '', 0, 0 })
end

if policy == 'reject' then
  if live and s.now_type == rtype then return coalesce(s.now) end
  return refuse('busy')
end

-- now-next and supersede
if #s.waiting > 0 and s.waiting[1].type == rtype then return coalesce(s.waiting[1].task) end
if live and s.now_type == rtype then
  if #s.waiting > 0 and flimit > 0 and flips >= flimit then return refuse('flip-flop') end
  -- the request joins the running task: no task is created for it, so the
  -- dropped ones name the task it joined
  local dropped = drop(s.waiting, 'superseded by ' .. rtype .. ' (' .. s.now .. ')')
  local out = coalesce(s.now)
  if #dropped > 0 then
    s.waiting = {}
    save_slots(s, node)
    redis.call('ZADD', FLIPS, now, task)
    for _, id in ipairs(dropped) do out[#out + 1] = id end
  end
  return out
end
local cancel_now = live and (policy == 'supersede' or (prec[rtype] or 0) > (prec[s.now_type] or 0))
local conflict = cancel_now or #s.waiting > 0
if conflict and flimit > 0 and flips >= flimit then return refuse('flip-flop') end
local dropped = drop(s.waiting, why)
if cancel_now then
  s.cancelling = true
  local t = get_task(s.now)
  if t then t.state = STATE.Cancelling; t.reason = why; put_task(t) end
end
s.waiting = { { task = task, type = rtype } }
new_task()
save_slots(s, node)
if conflict then redis.call('ZADD', FLIPS, now, task) end
log({ 'event', 'queued', 'type', rtype, 'task', task, 'cancel_now', cancel_now and '1' or '0', 'req', ARGV[12] })
local out = { 'queued', task, '', 0, cancel_now and 1 or 0 }
for _, id in ipairs(dropped) do out[#out + 1] = id end
return with_forgotten(out)
