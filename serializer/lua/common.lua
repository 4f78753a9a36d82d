-- Shared helpers, prepended to every fishgate script. All keys of one node
-- share the hash tag {node}, so scripts work on Redis Cluster.
-- The keys are bound to named locals (SLOTS, TASKS, TASKZ, FLIPS, LOG, LEASE,
-- FENCE) by a line generated from store.go's nodeKeySet.named, the one
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
  redis.call('HSET', SLOTS, 'now', s.now, 'now_type', s.now_type, 'cancelling', s.cancelling and '1' or '',
    'waiting', table.concat(w, ' '), 'desired', s.desired)
  -- every replica refreshes its view of the node, and the lease holder (or
  -- any replica, for an idle node) picks up the work.
  redis.call('PUBLISH', 'fg:node', node)
end

local function get_task(id)
  local raw = redis.call('HGET', TASKS, id)
  if not raw then return nil end
  local t = cjson.decode(raw)
  t.id = id -- a finished task's record leaves it out
  return t
end

-- put_task stores a task. A finished one is stored compacted: without
-- what its hash field or its node's keys say (id, node) and what no longer
-- matters (the issued time, joined when 0); Store.Task fills them back.
local function put_task(t)
  local id = t.id
  if TERMINAL[t.state] then
    local node = t.node
    t.id, t.node, t.issued = nil, nil, nil
    if t.joined == 0 then t.joined = nil end
    redis.call('HSET', TASKS, id, cjson.encode(t))
    t.id, t.node = id, node
    return
  end
  redis.call('HSET', TASKS, id, cjson.encode(t))
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
-- of at most {{LOGMAX}} entries, each a JSON array [id, field, value, ...].
-- The id, "<ms>-<n>" (n counts the node's entries, slots field log_seq),
-- orders the entries and names one. A list, not a stream: a Redis stream
-- costs 4.75 KB with a single entry, a short list about 200 bytes, which
-- matters at 10,000 nodes.
local function log(fields)
  local t = redis.call('TIME')
  local id = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-' .. redis.call('HINCRBY', SLOTS, 'log_seq', 1)
  table.insert(fields, 1, id)
  redis.call('LPUSH', LOG, cjson.encode(fields))
  redis.call('LTRIM', LOG, 0, {{LOGMAX}} - 1)
end
