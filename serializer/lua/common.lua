-- Shared helpers, prepended to every fishgate script. All keys of one node
-- share the hash tag {node}, so scripts work on Redis Cluster.
-- The keys are bound to named locals (SLOTS, TASKS, TASKZ, FLIPS, LOG, LEASE)
-- by a line generated from store.go's nodeKeySet.named, the one
-- place their order is defined; scripts use the names, never KEYS[i].
{{KEYS}}

-- TARGETS is generated from schemas.ResetType.Target (one source of truth).
local TARGETS = {{TARGETS}}

-- Task states, generated from schemas.TaskStates: STATE.<name> is the state
-- (STATE.Completed is 'Completed'), TERMINAL[state] is true for a finished
-- task (schemas.TaskState.Terminal). Scripts write no state literally.
{{STATES}}

local function split(s)
  local out = {}
  if s then for w in string.gmatch(s, "%S+") do out[#out + 1] = w end end
  return out
end

local function load_slots()
  local v = redis.call('HMGET', SLOTS, 'now', 'now_type', 'cancelling', 'waiting', 'desired')
  local s = { now = v[1] or '', now_type = v[2] or '', cancelling = (v[3] == '1'), waiting = {}, desired = v[5] or '' }
  local w = split(v[4])
  for i = 1, #w, 2 do s.waiting[#s.waiting + 1] = { task = w[i], type = w[i + 1] } end
  return s
end

local function desired_of(s)
  for i = #s.waiting, 1, -1 do
    local t = TARGETS[s.waiting[i].type]
    if t then return t end
  end
  if s.now ~= '' and not s.cancelling then return TARGETS[s.now_type] end
  return nil
end

local function save_slots(s, node)
  local w = {}
  for _, x in ipairs(s.waiting) do w[#w + 1] = x.task; w[#w + 1] = x.type end
  local d = desired_of(s)
  if d then s.desired = d end
  -- empty slots are left out (load_slots reads a missing one as empty):
  -- an idle node's hash is smaller by ~50 bytes of Redis
  local set, unset = {}, {}
  for _, f in ipairs({ { 'now', s.now }, { 'now_type', s.now_type }, { 'cancelling', s.cancelling and '1' or '' },
    { 'waiting', table.concat(w, ' ') }, { 'desired', s.desired } }) do
    if f[2] == '' then
      unset[#unset + 1] = f[1]
    else
      set[#set + 1] = f[1]; set[#set + 1] = f[2]
    end
  end
  if #set > 0 then redis.call('HSET', SLOTS, unpack(set)) end
  if #unset > 0 then redis.call('HDEL', SLOTS, unpack(unset)) end
  -- every replica refreshes its view of the node, and the lease holder (or
  -- any replica, for an idle node) picks up the work.
  redis.call('PUBLISH', 'fg:node', node)
end

local function get_task(id)
  local raw = redis.call('HGET', TASKS, id)
  if not raw then return nil end
  local t = cjson.decode(raw)
  t.id = id -- a finished task's record leaves it out
  -- and what put_task left out for having its usual value (a finished
  -- task stored before it did so has its pct, always 100)
  if TERMINAL[t.state] and t.pct == nil then
    t.pct = 100
    t.status = t.status or 'OK'
    if t.start == nil then t.start = t.created elseif t.start == 0 then t.start = nil end
    if t.note == nil and type(t.steps) == 'table' and #t.steps > 0 then
      t.note = string.match(t.steps[#t.steps], '^%S+ (.*)$')
    end
  end
  return t
end

-- put_task stores a task. A finished one is stored compacted: without
-- what its hash field or its node's keys say (id, node), what no longer
-- matters (the issued time, joined when 0) and what has its usual value
-- (pct 100, which every end sets, status OK, start at creation (0: never
-- started), the note of the last step); get_task and store.go's decodeTask
-- fill them back. At 10,000 nodes each byte of a record is 10 KB of Redis.
local function put_task(t)
  local id = t.id
  if TERMINAL[t.state] then
    local node, pct, status, start, note = t.node, t.pct, t.status, t.start, t.note
    t.id, t.node, t.issued = nil, nil, nil
    if t.joined == 0 then t.joined = nil end
    if t.pct == 100 then t.pct = nil end
    if t.status == 'OK' then t.status = nil end
    if t.start == nil then t.start = 0 elseif t.start == t.created then t.start = nil end
    local last = type(t.steps) == 'table' and #t.steps > 0 and string.match(t.steps[#t.steps], '^%S+ (.*)$') or nil
    if last ~= nil and t.note == last then t.note = nil elseif last ~= nil and t.note == nil then t.note = '' end
    redis.call('HSET', TASKS, id, cjson.encode(t))
    t.id, t.node, t.pct, t.status, t.start, t.note = id, node, pct, status, start, note
    return
  end
  redis.call('HSET', TASKS, id, cjson.encode(t))
end

-- task_created is when a task was created (ms): read from its id when the
-- id is newTaskID's ("<node>.<8 base-36 digits of the ms><6 hex digits>",
-- store.go's taskCreated reads it alike), else from its record.
local function task_created(id)
  local ms = string.match(id, '%.([0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z])[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]$')
  if ms then return tonumber(ms, 36) end
  local t = get_task(id)
  return t and tonumber(t.created) or 0
end

-- end_task marks a task terminal (state is one of TERMINAL).
local function end_task(id, state, status, reason, now)
  local t = get_task(id)
  if not t then return end
  t.state, t.status, t.reason, t['end'] = state, status, reason, now
  t.pct = 100
  put_task(t)
end

-- log records an entry of the node's command log: a list, newest first,
-- of at most {{LOGMAX}} entries. Call sites name the fields ({'event', e,
-- field, value, ...}); the entry stores [id, e, value...] with the values
-- in the order LOGFIELDS[e] gives (store.go's logFields, which reads them
-- back), trailing empty ones left out, and a task of this node as "."
-- and the part after its last dot (store.go puts the node back): an
-- action's four entries take 340 bytes instead of 560. An event LOGFIELDS
-- does not know is stored named (the older form, which still reads).
-- The id, "<ms>-<n>" (n counts the node's entries, slots field log_seq),
-- orders the entries and names one. A list, not a stream: a Redis stream
-- costs 4.75 KB with a single entry, a short list about 200 bytes, which
-- matters at 10,000 nodes.
local LOGFIELDS = {{LOGFIELDS}}
local LOG_NODE = string.match(LOG, '^fg:node:{(.*)}:log$')

local function log_task(v)
  if LOG_NODE and string.sub(v, 1, #LOG_NODE + 1) == LOG_NODE .. '.' then
    local rest = string.sub(v, #LOG_NODE + 2)
    if not string.find(rest, '.', 1, true) then return '.' .. rest end
  end
  return v
end

local function log(fields)
  local t = redis.call('TIME')
  local id = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-' .. redis.call('HINCRBY', SLOTS, 'log_seq', 1)
  local names = LOGFIELDS[fields[2]]
  local entry = { id }
  if names then
    local named = {}
    for i = 3, #fields - 1, 2 do named[fields[i]] = fields[i + 1] end
    entry[2] = fields[2]
    for _, name in ipairs(names) do
      local v = named[name] or ''
      if (name == 'task' or name == 'running') and v ~= '' then v = log_task(v) end
      entry[#entry + 1] = v
    end
    while #entry > 2 and entry[#entry] == '' do entry[#entry] = nil end
  else
    for _, v in ipairs(fields) do entry[#entry + 1] = v end
  end
  redis.call('LPUSH', LOG, cjson.encode(entry))
  redis.call('LTRIM', LOG, 0, {{LOGMAX}} - 1)
end
