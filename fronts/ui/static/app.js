// The operator page: the fleet, one node, bulk resets, kept live by the
// EventService's SSE stream. Everything it shows comes from the Redfish
// API with the user's session; what it offers follows the user's role.
import { api, get, login, logout, session, whenUnauthorized } from './api.js';
import { EventStream } from './sse.js';
import { VirtualList } from './fleet.js';

const $ = (id) => document.getElementById(id);

// The power actions the node view offers, with their labels, when the
// node's ResetType@Redfish.AllowableValues has them.
const actions = [
  ['On', 'On'],
  ['ForceOff', 'Off (ForceOff)'],
  ['GracefulShutdown', 'Soft off'],
  ['ForceRestart', 'Reboot'],
  ['PowerCycle', 'Power cycle'],
  ['Nmi', 'NMI'],
];
const terminal = new Set(['Completed', 'Exception', 'Cancelled', 'Killed']);
const systemsPrefix = '/redfish/v1/Systems/';
const tasksPrefix = '/redfish/v1/TaskService/Tasks/';
const rowHeight = 32;
const eventsKept = 50;

const S = {
  role: '',
  canOperate: false,
  nodes: new Map(), // id -> System
  ids: [], // every node id, in the order read
  view: [], // the ids shown (filtered, sorted)
  selected: new Set(),
  aggregates: new Map(), // id -> Set of node ids
  current: null, // the node of the node view
  events: new Map(), // node id -> recent events, newest first
  bulk: null, // the bulk task followed: {id, path}
  stream: null,
  pending: new Set(), // nodes to read again
  flushTimer: 0,
  flushing: false,
  refreshQueued: false,
  nodeTimer: 0,
};

const oem = (s) => (s && s.Oem && s.Oem.Fishgate) || {};
const allowedResets = (s) => (s && s.Actions && s.Actions['#ComputerSystem.Reset'] &&
  s.Actions['#ComputerSystem.Reset']['ResetType@Redfish.AllowableValues']) || [];

function say(text) { $('message').textContent = text || ''; }

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// ---- login ----

function showLogin(why) {
  if (S.stream) S.stream.stop();
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = why || '';
  $('login-user').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  $('login-error').textContent = '';
  try {
    await login($('login-user').value, $('login-password').value);
  } catch (e) {
    $('login-error').textContent = e.status === 401 ? 'Wrong user or password.' : e.message;
    return;
  }
  $('login-password').value = '';
  enter();
}

async function onLogout() {
  if (S.stream) S.stream.stop();
  try { await logout(); } catch { /* the token is gone anyway */ }
  location.replace(location.pathname);
}

// ---- start ----

async function enter() {
  $('login').hidden = true;
  $('app').hidden = false;
  const user = session.user;
  try {
    const acct = await get(`/redfish/v1/AccountService/Accounts/${encodeURIComponent(user)}`);
    S.role = acct.RoleId || '';
    const role = await get(`/redfish/v1/AccountService/Roles/${encodeURIComponent(S.role)}`);
    S.canOperate = (role.AssignedPrivileges || []).includes('ConfigureComponents');
  } catch (e) {
    if (e.status === 401) return;
    say(`Could not read your account: ${e.message}`);
  }
  $('whoami').textContent = `${user} (${S.role || 'unknown role'})`;
  $('bulk').hidden = !S.canOperate;
  S.stream = new EventStream({
    url: '/redfish/v1/EventService/SSE',
    token: () => session.token,
    onEvent,
    onState: (st) => {
      const live = $('live');
      live.dataset.state = st;
      live.textContent = st === 'live' ? 'live' : `${st}…`;
    },
    onUnauthorized: () => showLogin('Your session ended; log in again.'),
  });
  // The stream's position is fixed before the fleet is read: nothing that
  // changes while it loads is missed.
  S.stream.start();
  await Promise.all([loadFleet(), loadAggregates(), loadRefusals()]);
}

async function loadFleet() {
  const first = 100;
  try {
    let page = await get(`/redfish/v1/Systems?$expand=.&$top=${first}`);
    addSystems(page.Members);
    const total = page['Members@odata.count'] || 0;
    refresh();
    requestAnimationFrame(() => {
      performance.mark('fleet-first-paint');
      window.fishgateFirstPaint = performance.now();
    });
    for (let skip = page.Members.length; skip < total; skip += page.Members.length) {
      page = await get(`/redfish/v1/Systems?$expand=.&$skip=${skip}&$top=1000`);
      if (!page.Members.length) break;
      addSystems(page.Members);
      scheduleRefresh();
    }
    window.fishgateFleetLoaded = performance.now();
    document.body.dataset.fleetLoaded = 'true';
  } catch (e) {
    if (e.status !== 401) say(`Could not read the fleet: ${e.message}`);
  }
}

function addSystems(members) {
  for (const s of members) {
    if (!S.nodes.has(s.Id)) S.ids.push(s.Id);
    S.nodes.set(s.Id, s);
  }
  const kinds = new Set([...S.nodes.values()].map((s) => oem(s).BackendKind).filter(Boolean));
  const sel = $('f-backend');
  for (const k of kinds) {
    if (![...sel.options].some((o) => o.value === k)) sel.append(el('option', { value: k, textContent: k }));
  }
}

async function loadAggregates() {
  try {
    const coll = await get('/redfish/v1/AggregationService/Aggregates');
    const aggs = await Promise.all(coll.Members.map((m) => get(m['@odata.id'])));
    for (const a of aggs) {
      const ids = new Set((a.Elements || []).map((l) => l['@odata.id'])
        .filter((u) => u.startsWith(systemsPrefix)).map((u) => decodeURIComponent(u.slice(systemsPrefix.length))));
      S.aggregates.set(a.Id, ids);
      for (const sel of [$('f-aggregate'), $('bulk-target')]) {
        sel.append(el('option', { value: a.Id, textContent: `${a.Name || a.Id} (${ids.size})` }));
      }
    }
  } catch (e) {
    // no AggregationService, or not readable: no aggregates to choose
  }
}

// loadRefusals counts the refused power requests of the last hour in the
// audit log (Administrators only: others see a dash).
async function loadRefusals() {
  if (S.role !== 'Administrator') return;
  try {
    const log = await get('/redfish/v1/Managers/fishgate/LogServices/Audit/Entries');
    const since = Date.now() - 3600e3;
    const n = log.Members.filter((m) => / refused: /.test(m.Message) && Date.parse(m.Created) >= since).length;
    $('sum-refused').textContent = String(n);
  } catch (e) {
    // unreadable: the dash stays
  }
}

// ---- the fleet ----

function failureText(s) {
  const o = oem(s);
  if (o.LastFailedAction) return `${o.LastFailedAction.Time}: ${o.LastFailedAction.Message}`;
  return o.LastError || '';
}

function matches(s, q, power, backend, agg) {
  const o = oem(s);
  if (power === '?' ? ['On', 'Off', 'PoweringOn', 'PoweringOff'].includes(s.PowerState) : power && s.PowerState !== power) return false;
  if (backend && o.BackendKind !== backend) return false;
  if (agg && !(S.aggregates.get(agg) || new Set()).has(s.Id)) return false;
  if (!q) return true;
  const hay = `${s.Id} ${s.Name} ${s.PowerState} ${o.BackendKind} ${s.Status && s.Status.Health} ${failureText(s)}`.toLowerCase();
  return hay.includes(q);
}

const sorts = {
  id: (a, b) => a.Id.localeCompare(b.Id, undefined, { numeric: true }),
  power: (a, b) => (a.PowerState || '~').localeCompare(b.PowerState || '~'),
  health: (a, b) => rank(b) - rank(a),
  failure: (a, b) => failureText(b).localeCompare(failureText(a)),
  busy: (a, b) => busy(b) - busy(a),
};
const rank = (s) => ({ OK: 0, Warning: 1, Critical: 2 }[s.Status && s.Status.Health] ?? 3);
const busy = (s) => (oem(s).RunningTask ? 1 : 0) + (oem(s).QueuedTasks || []).length;

function refresh() {
  const q = $('f-text').value.trim().toLowerCase();
  const power = $('f-power').value;
  const backend = $('f-backend').value;
  const agg = $('f-aggregate').value;
  let shown = [];
  for (const id of S.ids) {
    const s = S.nodes.get(id);
    if (matches(s, q, power, backend, agg)) shown.push(s);
  }
  const by = $('f-sort').value;
  shown.sort((a, b) => sorts[by](a, b) || sorts.id(a, b));
  S.view = shown.map((s) => s.Id);
  list.setItems(S.view);
  $('fleet-count').textContent = `${S.view.length} of ${S.ids.length} nodes`;
  summarize();
}

function scheduleRefresh() {
  if (S.refreshQueued) return;
  S.refreshQueued = true;
  requestAnimationFrame(() => {
    S.refreshQueued = false;
    refresh();
  });
}

function summarize() {
  const c = { on: 0, off: 0, changing: 0, unknown: 0, running: 0, waiting: 0, failed: 0 };
  const since = Date.now() - 3600e3;
  for (const s of S.nodes.values()) {
    const o = oem(s);
    if (s.PowerState === 'On') c.on++;
    else if (s.PowerState === 'Off') c.off++;
    else if (s.PowerState === 'PoweringOn' || s.PowerState === 'PoweringOff') c.changing++;
    else c.unknown++;
    if (o.RunningTask) c.running++;
    c.waiting += (o.QueuedTasks || []).length;
    if (o.LastFailedAction && Date.parse(o.LastFailedAction.Time) >= since) c.failed++;
  }
  for (const [k, v] of Object.entries(c)) $(`sum-${k}`).textContent = String(v);
  $('bulk-selected').textContent = `${S.selected.size} selected`;
}

function makeRow() {
  const box = el('input', { type: 'checkbox' });
  box.addEventListener('change', () => {
    const id = box.closest('.row').dataset.node;
    if (box.checked) S.selected.add(id); else S.selected.delete(id);
    summarize();
  });
  const open = el('button', { type: 'button' });
  open.addEventListener('click', () => openNode(open.closest('.row').dataset.node));
  const cell = (cls) => el('span', { role: 'cell', className: cls });
  return el('div', { className: 'row', role: 'row' },
    el('span', { role: 'cell', className: 'c-sel' }, box),
    el('span', { role: 'cell', className: 'c-id' }, open),
    cell('c-power'), cell('c-desired'), cell('c-running'), cell('c-waiting'),
    cell('c-backend'), cell('c-health'), cell('c-failure'));
}

function fillRow(row, id) {
  const s = S.nodes.get(id);
  const o = oem(s);
  row.dataset.node = id;
  row.dataset.power = s.PowerState || '';
  row.dataset.health = (s.Status && s.Status.Health) || '';
  row.classList.toggle('current', id === S.current);
  const [sel, idc, power, desired, running, waiting, backend, health, failure] = row.children;
  const box = sel.firstChild;
  box.hidden = !S.canOperate;
  box.checked = S.selected.has(id);
  box.setAttribute('aria-label', `Select ${id}`);
  idc.firstChild.textContent = id;
  power.textContent = s.PowerState || 'unknown';
  desired.textContent = o.DesiredPowerState || '–';
  running.textContent = o.RunningTask ? `${o.RunningTask.ResetType}${o.RunningTask.Cancelling ? ' (cancelling)' : ''}` : '';
  waiting.textContent = (o.QueuedTasks || []).length ? String(o.QueuedTasks.length) : '';
  backend.textContent = o.BackendKind || '';
  health.textContent = (s.Status && s.Status.Health) || '';
  failure.textContent = failureText(s);
  failure.title = failure.textContent;
}

const list = new VirtualList({
  viewport: $('viewport'), spacer: $('spacer'), rows: $('rows'), rowHeight, make: makeRow, fill: fillRow,
});

// ---- live updates ----

function onEvent(payload) {
  for (const ev of payload.Events || []) {
    const origin = (ev.OriginOfCondition && ev.OriginOfCondition['@odata.id']) || '';
    let node = null;
    if (origin.startsWith(systemsPrefix)) {
      node = decodeURIComponent(origin.slice(systemsPrefix.length));
    } else if (origin.startsWith(tasksPrefix)) {
      const task = decodeURIComponent(origin.slice(tasksPrefix.length));
      if (S.bulk && S.bulk.id === task) refreshBulk();
      const dot = task.lastIndexOf('.');
      if (dot > 0) node = task.slice(0, dot); // a node's task id is <node>.<suffix>
    }
    if (!node) continue;
    const kept = S.events.get(node) || [];
    kept.unshift(ev);
    kept.length = Math.min(kept.length, eventsKept);
    S.events.set(node, kept);
    S.pending.add(node);
    if (node === S.current) scheduleNodeView();
  }
  if (S.pending.size && !S.flushTimer) S.flushTimer = setTimeout(flushPending, 50);
}

// flushPending reads again the Systems events named; many at once (a bulk
// reset) are read as whole pages instead. One read runs at a time: events
// arriving meanwhile wait for the next, so a storm of them costs a few
// reads, not one each.
async function flushPending() {
  S.flushTimer = 0;
  if (S.flushing) return;
  S.flushing = true;
  try {
    await readPending();
  } finally {
    S.flushing = false;
    if (S.pending.size && !S.flushTimer) S.flushTimer = setTimeout(flushPending, 50);
  }
}

async function readPending() {
  const ids = [...S.pending];
  S.pending.clear();
  if (ids.length > 100) {
    for (let skip = 0; skip < S.ids.length; skip += 1000) {
      const page = await get(`/redfish/v1/Systems?$expand=.&$skip=${skip}&$top=1000`).catch(() => null);
      if (!page) return;
      addSystems(page.Members);
    }
  } else {
    for (let i = 0; i < ids.length; i += 6) {
      await Promise.all(ids.slice(i, i + 6).map(async (id) => {
        try {
          const s = await get(systemsPrefix + encodeURIComponent(id));
          addSystems([s]);
        } catch (e) {
          if (e.status === 404 && S.nodes.delete(id)) S.ids = S.ids.filter((x) => x !== id);
        }
      }));
    }
  }
  scheduleRefresh();
  if (S.current && ids.includes(S.current)) renderNode();
}

// ---- the node view ----

function openNode(id) {
  S.current = id;
  for (const l of ['node-log', 'node-tasks']) delete $(l).dataset.sig;
  $('node').hidden = false;
  renderNode();
  loadNodeDetails();
  list.draw();
  $('node-title').focus();
}

function closeNode() {
  const id = S.current;
  S.current = null;
  $('node').hidden = true;
  list.draw();
  const btn = [...document.querySelectorAll('#rows .row')].find((r) => r.dataset.node === id);
  if (btn) btn.querySelector('.c-id button').focus();
}

function fact(dl, name, value) {
  dl.append(el('dt', { textContent: name }), el('dd', { textContent: value, dataset: { fact: name } }));
}

function renderNode() {
  const id = S.current;
  const s = S.nodes.get(id);
  if (!s) return;
  const o = oem(s);
  $('node-title').textContent = s.Name && s.Name !== id ? `${id} (${s.Name})` : id;
  $('node-title').tabIndex = -1;
  const dl = $('node-facts');
  dl.replaceChildren();
  fact(dl, 'Power', s.PowerState || 'unknown');
  fact(dl, 'Desired', o.DesiredPowerState || '–');
  fact(dl, 'Running', o.RunningTask ? o.RunningTask.ResetType : '–');
  fact(dl, 'Waiting', String((o.QueuedTasks || []).length));
  fact(dl, 'Backend', o.BackendKind || '');
  fact(dl, 'Health', (s.Status && s.Status.Health) || '');
  fact(dl, 'Last failure', failureText(s) || '–');

  const box = $('node-actions');
  box.hidden = !S.canOperate;
  const allowed = allowedResets(s);
  // The buttons are made again only when they change: a keyboard user's
  // focus stays on the button it is on while events arrive.
  const sig = `${id}|${S.canOperate}|${allowed.join()}`;
  if (box.dataset.sig !== sig) {
    box.dataset.sig = sig;
    box.replaceChildren();
  }
  if (S.canOperate && !box.children.length) {
    for (const [rt, label] of actions) {
      if (!allowed.includes(rt)) continue;
      const b = el('button', { type: 'button', textContent: label, dataset: { reset: rt } });
      if (rt === 'ForceOff' || rt === 'Nmi') b.classList.add('danger');
      b.addEventListener('click', () => reset(id, rt));
      box.append(b);
    }
  }
  const boot = s.Boot || {};
  fillSelect($('boot-target'), boot['BootSourceOverrideTarget@Redfish.AllowableValues'] || [], boot.BootSourceOverrideTarget);
  fillSelect($('boot-enabled'), boot['BootSourceOverrideEnabled@Redfish.AllowableValues'] || [], boot.BootSourceOverrideEnabled);
  $('boot-target').disabled = $('boot-enabled').disabled = !S.canOperate;
  $('boot-apply').hidden = !S.canOperate;
  renderEvents();
}

function fillSelect(sel, values, current) {
  if (document.activeElement === sel) return; // not while the user chooses
  sel.replaceChildren(...values.map((v) => el('option', { value: v, textContent: v })));
  sel.value = current || '';
}

function renderEvents() {
  const evs = S.events.get(S.current) || [];
  $('node-events').replaceChildren(...evs.map((e) => el('li', { textContent: `${e.EventTimestamp} ${e.Message}` })));
}

function scheduleNodeView() {
  clearTimeout(S.nodeTimer);
  S.nodeTimer = setTimeout(() => { renderEvents(); loadNodeDetails(); }, 100);
}

async function loadNodeDetails() {
  const id = S.current;
  if (!id) return;
  const enc = encodeURIComponent(id);
  try {
    const [log, coll] = await Promise.all([
      get(`${systemsPrefix}${enc}/LogServices/PowerActions/Entries`),
      get(`/bmc/${enc}/redfish/v1/TaskService/Tasks?$top=10`),
    ]);
    const tasks = await Promise.all(coll.Members.map((m) => get(m['@odata.id']).catch(() => null)));
    if (id !== S.current) return;
    const who = new Map();
    for (const e of log.Members) {
      const m = /task=(\S+) req=user=(\S+)/.exec(e.Message);
      if (m) who.set(m[1], m[2]);
    }
    const entries = log.Members.slice(0, 30);
    replaceIfChanged($('node-log'), entries.map((e) => e.Id).join(),
      () => entries.map((e) => el('li', { textContent: `${e.Created} ${e.Message}` })));
    const shown = tasks.filter(Boolean);
    replaceIfChanged($('node-tasks'),
      `${S.canOperate}|` + shown.map((t) => `${t.Id} ${t.TaskState} ${(t.Messages || []).length} ${who.get(t.Id) || ''}`).join(),
      () => shown.map((t) => taskItem(t, who.get(t.Id))));
  } catch (e) {
    if (e.status !== 401) say(`Could not read ${id}: ${e.message}`);
  }
}

// replaceIfChanged fills list with make()'s items unless what it shows,
// summed up by sig, is the same: an unchanged list keeps its elements (and
// the focus on one of its buttons).
function replaceIfChanged(list, sig, make) {
  if (list.dataset.sig === sig) return;
  list.dataset.sig = sig;
  list.replaceChildren(...make());
}

function taskItem(t, who) {
  const o = oem(t);
  const when = [t.StartTime || o.CreatedTime, t.EndTime].filter(Boolean).join(' → ');
  const li = el('li', { dataset: { task: t.Id, state: t.TaskState } },
    `${o.ResetType || t.Name} `, el('span', { className: 'state', textContent: t.TaskState }),
    ` ${t.TaskStatus || ''}${who ? ` · by ${who}` : ''} · ${when}`);
  if (S.canOperate && !terminal.has(t.TaskState)) {
    const b = el('button', { type: 'button', className: 'danger', textContent: 'Abort', dataset: { abort: t.Id } });
    b.setAttribute('aria-label', `Abort ${o.ResetType || ''} task ${t.Id}`);
    b.addEventListener('click', () => abort(t.Id));
    li.append(' ', b);
  }
  const msgs = (t.Messages || []).map((m) => el('li', { textContent: m.Message }));
  if (msgs.length) li.append(el('ul', {}, ...msgs));
  return li;
}

async function reset(id, rt) {
  say('');
  try {
    await api('POST', `${systemsPrefix}${encodeURIComponent(id)}/Actions/ComputerSystem.Reset`, { ResetType: rt });
  } catch (e) {
    say(`${rt} on ${id}: ${e.message}`);
    loadRefusals();
  }
  loadNodeDetails();
}

async function abort(task) {
  say('');
  try {
    await api('DELETE', tasksPrefix + encodeURIComponent(task));
  } catch (e) {
    say(`Abort ${task}: ${e.message}`);
  }
  loadNodeDetails();
}

async function onBoot(ev) {
  ev.preventDefault();
  const id = S.current;
  say('');
  try {
    const r = await api('PATCH', systemsPrefix + encodeURIComponent(id), {
      Boot: { BootSourceOverrideTarget: $('boot-target').value, BootSourceOverrideEnabled: $('boot-enabled').value },
    });
    addSystems([r.body]);
    renderNode();
    scheduleRefresh();
  } catch (e) {
    say(`Boot override on ${id}: ${e.message}`);
  }
}

// ---- bulk ----

async function onBulk(ev) {
  ev.preventDefault();
  say('');
  const body = {
    ResetType: $('bulk-reset').value,
    BatchSize: Number($('bulk-size').value),
    DelayBetweenBatchesInSeconds: Number($('bulk-delay').value),
  };
  const target = $('bulk-target').value;
  let path;
  if (target === 'selected') {
    if (!S.selected.size) {
      say('Select nodes first, or choose an aggregate.');
      return;
    }
    body.TargetURIs = [...S.selected].map((id) => ({ '@odata.id': systemsPrefix + id }));
    path = '/redfish/v1/AggregationService/Actions/AggregationService.Reset';
  } else {
    path = `/redfish/v1/AggregationService/Aggregates/${encodeURIComponent(target)}/Actions/Aggregate.Reset`;
  }
  try {
    const r = await api('POST', path, body);
    S.bulk = { id: r.body.Id, path: r.body['@odata.id'] };
    renderBulk(r.body);
    refreshBulk(); // it may have moved on before its events are followed
  } catch (e) {
    say(`Bulk ${body.ResetType}: ${e.message}`);
  }
}

async function refreshBulk() {
  if (!S.bulk) return;
  try {
    renderBulk(await get(S.bulk.path));
  } catch (e) {
    say(`Bulk task: ${e.message}`);
  }
}

function renderBulk(t) {
  const o = oem(t);
  const pct = t.PercentComplete ?? 0;
  $('bulk-progress').value = pct;
  const counts = o.Nodes !== undefined ? ` · ${o.Done}/${o.Nodes} done, ${o.Failed} failed` : '';
  const status = $('bulk-status');
  status.textContent = `${t.TaskState} ${pct} %${counts}`;
  status.dataset.state = t.TaskState;
  status.dataset.percent = String(pct);
}

function fillBulkResets() {
  const sel = $('bulk-reset');
  sel.replaceChildren(...actions.map(([rt, label]) => el('option', { value: rt, textContent: label })));
}

// ---- wiring ----

function main() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', onLogout);
  $('node-close').addEventListener('click', closeNode);
  $('node-boot').addEventListener('submit', onBoot);
  $('bulk').addEventListener('submit', onBulk);
  for (const id of ['f-text', 'f-power', 'f-backend', 'f-aggregate', 'f-sort']) {
    $(id).addEventListener('input', scheduleRefresh);
  }
  $('select-all').addEventListener('change', (ev) => {
    for (const id of S.view) {
      if (ev.target.checked) S.selected.add(id); else S.selected.delete(id);
    }
    list.draw();
    summarize();
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && S.current) closeNode();
  });
  fillBulkResets();
  whenUnauthorized(() => showLogin('Your session ended; log in again.'));
  if (session.token) enter(); else showLogin();
}

main();
