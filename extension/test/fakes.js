// Test doubles: an in-memory WebExtension API and a scripted Credence server behind `fetch`.
// Values pass through structuredClone, as real extension storage and messaging serialise them.

export class FakeArea {
  constructor() {
    this.data = new Map();
  }

  async get(keys) {
    if (keys === null || keys === undefined) return Object.fromEntries([...this.data].map(([k, v]) => [k, structuredClone(v)]));
    const list = typeof keys === 'string' ? [keys] : Array.isArray(keys) ? keys : Object.keys(keys);
    const out = {};
    for (const k of list) if (this.data.has(k)) out[k] = structuredClone(this.data.get(k));
    return out;
  }

  async set(items) {
    for (const [k, v] of Object.entries(items)) this.data.set(k, structuredClone(v));
  }

  async remove(keys) {
    for (const k of typeof keys === 'string' ? [keys] : keys) this.data.delete(k);
  }
}

export function fakeExt({ settings = {} } = {}) {
  const sent = [];
  const created = { tabs: [], windows: [], alarms: [] };
  const ext = {
    storage: { local: new FakeArea(), session: new FakeArea(), onChanged: { addListener() {} } },
    tabs: {
      sent,
      failFor: new Set(),
      async sendMessage(tabId, message, options) {
        if (ext.tabs.failFor.has(tabId)) throw new Error('Could not establish connection. Receiving end does not exist.');
        sent.push({ tabId, message: structuredClone(message), options });
        return { ok: true };
      },
      async create(props) {
        created.tabs.push(props);
      },
    },
    windows: {
      async create(props) {
        created.windows.push(props);
      },
    },
    alarms: {
      create(name, info) {
        created.alarms.push({ name, info });
      },
      clear(name) {
        created.alarms.push({ name, cleared: true });
      },
    },
    runtime: { getURL: (path) => `chrome-extension://abcdefghijklmnopabcdefghijklmnop/${path}`, id: 'test' },
    declarativeNetRequest: { // session rules, as the browser keeps them: ids must be unique
      rules: new Map(),
      async getSessionRules() {
        return [...ext.declarativeNetRequest.rules.values()].map((r) => structuredClone(r));
      },
      async updateSessionRules({ addRules = [], removeRuleIds = [] }) {
        const { rules } = ext.declarativeNetRequest;
        for (const id of removeRuleIds) rules.delete(id);
        for (const rule of addRules) {
          if (rules.has(rule.id)) throw new Error(`Rule with id ${rule.id} does not have a unique ID.`);
          rules.set(rule.id, structuredClone(rule));
        }
      },
    },
    contextMenus: {
      items: [],
      async removeAll() {
        ext.contextMenus.items = [];
      },
      create(item) {
        ext.contextMenus.items.push(item);
      },
    },
    created,
  };
  ext.storage.local.data.set('settings', { server: 'http://credence.test', ...settings });
  return ext;
}

/** Verdict bodies as the server sends them. */
export function serverVerdict(level, { sha256 = 'a'.repeat(64), evidence = [] } = {}) {
  return {
    level, label: level, badge: 'grey', summary: `summary of ${level}`, sha256, evidence,
    versions: { pipeline: '1' }, timings: {}, created_at: '2026-12-01T00:00:00Z',
  };
}

/**
 * A scripted Credence server and image host. `verdicts` maps image URL -> level when done;
 * URLs listed in `slow` stay pending until `finish(url)`. With `streams`, GET /checks/events pushes each
 * check's result when it is finished and ends the stream when all are (`endStreams()`: the server's
 * longest stream time is over); without, that path is a 404, as on a server older than streams.
 */
export function fakeServer({ verdicts = {}, slow = [], images = {}, shaVerdicts = {}, urlShas = {}, streams = false } = {}) {
  const requests = [];
  const pendingByCheck = new Map(); // check id -> url or sha
  const slowSet = new Set(slow);
  const finished = new Set();
  let nextId = 1;
  const json = (body, status = 200) => new Response(JSON.stringify(body), {
    status, headers: { 'Content-Type': 'application/json' },
  });
  // The SHA-256 of what Credence's fetcher got at `url` (`urlShas`: say it, to match or not the bytes served).
  const verdictFor = (url) => serverVerdict(verdicts[url] ?? 'no-evidence', { sha256: urlShas[url] ?? shaOf(url) });
  const open = new Set(); // streams: {ids (still pending), send, close}
  const resultOf = (id) => {
    const what = pendingByCheck.get(id);
    if (what === undefined) return { url: null, status: 'unknown', check_id: id, verdict: null };
    if (!finished.has(what)) return { url: what, status: 'pending', check_id: id, verdict: null };
    const verdict = what.startsWith('sha:') ? serverVerdict('no-evidence', { sha256: what.slice(4) }) : verdictFor(what);
    return { url: what, status: 'done', check_id: id, verdict };
  };
  const push = (stream) => { // what a stream's server loop does on each look at the database
    for (const id of [...stream.ids]) {
      const result = resultOf(id);
      if (result.status === 'pending') continue;
      stream.ids.delete(id);
      stream.send(`event: result\ndata: ${JSON.stringify(result)}\n\n`);
    }
    if (!stream.ids.size) stream.close('done');
  };
  const openStream = (ids, signal) => {
    const encoder = new TextEncoder();
    let stream;
    const body = new ReadableStream({
      start(controller) {
        stream = {
          ids: new Set(ids),
          send: (text) => controller.enqueue(encoder.encode(text)),
          close(kind) {
            open.delete(stream);
            stream.send(`event: ${kind}\ndata: ${JSON.stringify({ pending: [...stream.ids] })}\n\n`);
            controller.close();
          },
        };
        open.add(stream);
        signal?.addEventListener('abort', () => {
          open.delete(stream);
          try {
            controller.error(new DOMException('The operation was aborted.', 'AbortError'));
          } catch {
            // already closed
          }
        });
        stream.send(': stream open\n\n');
        push(stream);
      },
    });
    return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
  };

  async function fetch(input, init = {}) {
    const url = String(input);
    if (url.startsWith('data:')) return globalThis.fetch(url); // as browsers do, no network
    const method = init.method ?? 'GET';
    let body = '';
    if (init.body instanceof FormData) body = await new Response(init.body).text();
    else if (init.body) body = String(init.body);
    requests.push({ method, url, body, headers: { ...(init.headers ?? {}) }, credentials: init.credentials });
    if (images[url] !== undefined) {
      return new Response(images[url], { status: 200, headers: { 'Content-Type': 'image/jpeg' } });
    }
    const path = url.replace(/^https?:\/\/[^/]+/, '');
    if (method === 'GET' && path.startsWith('/api/v1/checks/events?')) {
      if (!streams) return json({ error: 'no such check' }, 404);
      return openStream(new URLSearchParams(path.split('?')[1]).get('ids').split(','), init.signal);
    }
    if (method === 'POST' && path === '/api/v1/checks') {
      const { urls } = JSON.parse(body);
      return json({
        results: urls.map((u) => {
          if (slowSet.has(u) && !finished.has(u)) {
            const id = `chk${nextId++}`;
            pendingByCheck.set(id, u);
            return { url: u, status: 'pending', check_id: id, verdict: null };
          }
          return { url: u, status: 'done', check_id: null, verdict: verdictFor(u) };
        }),
      });
    }
    if (method === 'GET' && path.startsWith('/api/v1/checks?ids=')) {
      const query = new URLSearchParams(path.split('?')[1]);
      const ids = query.get('ids').split(',');
      return json({ results: ids.map(resultOf) });
    }
    if (method === 'POST' && path === '/api/v1/lookup') {
      const { sha256 } = JSON.parse(body);
      return json({
        results: sha256.map((sha) => (shaVerdicts[sha]
          ? { url: null, status: 'done', check_id: null, verdict: serverVerdict(shaVerdicts[sha], { sha256: sha }), sha256: sha }
          : { url: null, status: 'unknown', check_id: null, verdict: null, sha256: sha })),
      });
    }
    if (method === 'POST' && path === '/api/v1/checks/upload') {
      const id = `up${nextId++}`;
      const sha = 'f'.repeat(64);
      pendingByCheck.set(id, `sha:${sha}`);
      return json({ results: [{ url: null, status: 'pending', check_id: id, verdict: null }] });
    }
    if (method === 'POST' && path === '/api/v1/reports') return json({ id: 'rep1', status: 'pending' }, 201);
    return json({ error: 'not found' }, 404);
  }

  return {
    fetch,
    requests,
    finish(what) {
      finished.add(what);
      for (const stream of [...open]) push(stream);
    },
    finishAll() {
      for (const what of pendingByCheck.values()) finished.add(what);
      for (const stream of [...open]) push(stream);
    },
    /** The longest stream time is over: each open stream says what is still pending and ends. */
    endStreams() {
      for (const stream of [...open]) stream.close('timeout');
    },
    /** Streams open now. */
    get openStreams() {
      return open.size;
    },
    posts(path) {
      return requests.filter((r) => r.method === 'POST' && r.url.endsWith(path));
    },
  };
}

function shaOf(url) {
  let h = 0;
  for (const c of url) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h.toString(16).padStart(8, '0').repeat(8);
}

/** Timers that never fire on their own: tests drive the service explicitly. */
export function manualTimers() {
  const timers = new Map();
  let next = 1;
  return {
    setTimer(fn, ms) {
      const id = next++;
      timers.set(id, { fn, ms });
      return id;
    },
    clearTimer(id) {
      timers.delete(id);
    },
    pending: timers,
  };
}
