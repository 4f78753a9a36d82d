// The EventService's SSE stream (DSP0266 §10.5) read with fetch, not
// EventSource: EventSource cannot send the X-Auth-Token header, and the page
// holds no cookie. The stream is parsed as the WHATWG event-stream format;
// after a cut it is opened again with Last-Event-ID, so no event between
// the two is lost (the gateway keeps them in its Redis stream).

export class EventStream {
  // onEvent(payload, id) gets every Redfish Event; onState(state) gets
  // "connecting", "live" or "reconnecting"; onUnauthorized() the end of
  // the session.
  constructor({ url, token, onEvent, onState, onUnauthorized }) {
    Object.assign(this, { url, token, onEvent, onState, onUnauthorized });
    this.lastId = '';
    this.stopped = false;
    this.ctrl = null;
  }

  start() {
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.ctrl) this.ctrl.abort();
  }

  async loop() {
    let backoff = 250;
    let first = true;
    while (!this.stopped) {
      this.onState(first ? 'connecting' : 'reconnecting');
      first = false;
      try {
        this.ctrl = new AbortController();
        const headers = { Accept: 'text/event-stream', 'X-Auth-Token': this.token() };
        if (this.lastId) headers['Last-Event-ID'] = this.lastId;
        const r = await fetch(this.url, { headers, signal: this.ctrl.signal, cache: 'no-store' });
        if (r.status === 401) {
          this.stopped = true;
          this.onUnauthorized();
          return;
        }
        if (r.ok && r.body) {
          this.onState('live');
          backoff = 250;
          await this.read(r.body);
        }
      } catch (e) {
        // a cut connection or a refused one: try again below
      }
      if (this.stopped) return;
      this.onState('reconnecting');
      await new Promise((res) => setTimeout(res, backoff));
      backoff = Math.min(backoff * 2, 4000);
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        this.block(buf.slice(0, end));
        buf = buf.slice(end + 2);
      }
    }
  }

  // block handles one event block: its id moves the resume position even
  // without data (the stream's first block).
  block(text) {
    let id = null;
    const data = [];
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
    }
    if (id !== null) this.lastId = id;
    if (!data.length) return;
    try {
      this.onEvent(JSON.parse(data.join('\n')), id);
    } catch (e) {
      console.warn('event not understood', e);
    }
  }
}
