// The Redfish API as the page uses it: a Redfish session (X-Auth-Token)
// kept in sessionStorage for this tab only, JSON in and out, errors as
// their Redfish message.

const tokenKey = 'fishgate.token';
const sessionKey = 'fishgate.session';
const userKey = 'fishgate.user';

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(tokenKey); },
  get user() { return sessionStorage.getItem(userKey); },
  get location() { return sessionStorage.getItem(sessionKey); },
  set(token, location, user) {
    sessionStorage.setItem(tokenKey, token);
    sessionStorage.setItem(sessionKey, location);
    sessionStorage.setItem(userKey, user);
  },
  clear() {
    sessionStorage.removeItem(tokenKey);
    sessionStorage.removeItem(sessionKey);
    sessionStorage.removeItem(userKey);
  },
};

// onUnauthorized is called when the API answers 401: the session ended.
let onUnauthorized = () => {};
export function whenUnauthorized(f) { onUnauthorized = f; }

// errorText is the most telling text of a Redfish error body.
function errorText(status, body) {
  const e = body && body.error;
  if (!e) return `HTTP ${status}`;
  const info = e['@Message.ExtendedInfo'] || [];
  const msgs = info.map((m) => m.Message).filter(Boolean);
  return msgs.length ? msgs.join(' ') : (e.message || `HTTP ${status}`);
}

// api sends one request; it resolves to {status, body, headers} for a 2xx
// answer and throws APIError otherwise.
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (session.token) headers['X-Auth-Token'] = session.token;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let parsed = null;
  if (r.status !== 204) {
    const text = await r.text();
    if (text) {
      try { parsed = JSON.parse(text); } catch { parsed = null; }
    }
  }
  if (r.status === 401 && session.token) {
    onUnauthorized();
  }
  if (!r.ok) throw new APIError(r.status, errorText(r.status, parsed));
  return { status: r.status, body: parsed, headers: r.headers };
}

export const get = (path) => api('GET', path).then((r) => r.body);

// login opens a Redfish session (DSP0266 §13.3.4).
export async function login(user, password) {
  session.clear();
  const r = await api('POST', '/redfish/v1/SessionService/Sessions', { UserName: user, Password: password });
  const token = r.headers.get('X-Auth-Token');
  if (!token) throw new APIError(r.status, 'the service answered without a session token');
  session.set(token, r.headers.get('Location') || (r.body && r.body['@odata.id']) || '', user);
}

// logout deletes the session; the token is forgotten whatever the answer.
export async function logout() {
  const where = session.location;
  try {
    if (where) await api('DELETE', where);
  } finally {
    session.clear();
  }
}
