// The Credence REST API as the extension uses it. `fetch` is injected so unit tests can record
// exactly what would go over the wire (privacy mode must never send a URL).

export class ApiError extends Error {
  constructor(status, message, details = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.details = details;
  }
}

export const MAX_BATCH = 100; // server's CREDENCE_MAX_URLS_PER_REQUEST default and GET ?ids= limit
export const MAX_STREAM_IDS = 200; // the server's limit on ids in one GET /checks/events
export const STREAM_IDLE_MS = 30000; // the server sends a heartbeat every 10 s: this long without a byte is a dead stream
const TIMEOUT_MS = 20000;

/**
 * Server-sent events from text chunks as they arrive (EventSource does not exist in MV3 service workers,
 * and cannot send an Authorization header): `push` returns the events each chunk completed.
 */
export class SseParser {
  constructor() {
    this.buffer = '';
    this.event = '';
    this.data = [];
  }

  push(chunk) {
    this.buffer += chunk;
    const out = [];
    for (;;) {
      const at = this.buffer.search(/[\r\n]/);
      if (at < 0) break;
      if (this.buffer[at] === '\r' && at === this.buffer.length - 1) break; // a \r\n may be split across chunks
      const line = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + (this.buffer.startsWith('\r\n', at) ? 2 : 1));
      const event = this.line(line);
      if (event) out.push(event);
    }
    return out;
  }

  line(line) {
    if (line === '') {
      const event = this.data.length ? { event: this.event || 'message', data: this.data.join('\n') } : null;
      this.event = '';
      this.data = [];
      return event;
    }
    if (line.startsWith(':')) return null; // a comment: the server's heartbeat
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    return null;
  }
}

export class CredenceApi {
  constructor({ server, apiKey = '', fetch = globalThis.fetch.bind(globalThis), timeoutMs = TIMEOUT_MS }) {
    this.server = String(server).replace(/\/+$/, '');
    this.apiKey = apiKey;
    this.fetch = fetch;
    this.timeoutMs = timeoutMs;
  }

  headers(extra = {}) {
    const headers = { ...extra };
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    return headers;
  }

  async request(method, path, { json, body, headers = {} } = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let response;
    try {
      response = await this.fetch(`${this.server}${path}`, {
        method,
        // No cookies, no cache: the server sees only what this function sends.
        credentials: 'omit',
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
        headers: this.headers(json !== undefined ? { 'Content-Type': 'application/json', ...headers } : headers),
        body: json !== undefined ? JSON.stringify(json) : body,
        signal: controller.signal,
      });
    } catch (error) {
      throw new ApiError(0, `Credence server unreachable at ${this.server} (${error?.message ?? error})`);
    } finally {
      clearTimeout(timer);
    }
    let payload = null;
    const text = await response.text();
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      payload = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, payload?.error ?? `HTTP ${response.status}`, payload?.details ?? null);
    }
    return payload;
  }

  /** POST /checks: up to 100 URLs; `wait` seconds of long-poll for pending ones. */
  async checks(urls, { wait = 0 } = {}) {
    if (urls.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} URLs per request`);
    const body = await this.request('POST', '/api/v1/checks', { json: { urls, wait } });
    return body.results;
  }

  /**
   * GET /checks?ids=...: status of up to 100 checks in one request; with `wait`, a long poll that the
   * server answers as soon as any of them is done (or after `wait` s, capped by its max_wait_s).
   */
  async status(ids, { wait = 0 } = {}) {
    if (ids.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} ids per request`);
    const query = ids.map(encodeURIComponent).join(',');
    const body = await this.request('GET', `/api/v1/checks?ids=${query}${wait > 0 ? `&wait=${wait}` : ''}`);
    return body.results;
  }

  /**
   * GET /checks/events?ids=...: the server pushes each check's result as it is done; `onResults` gets
   * (and is awaited for) those read together, so checks finishing in one moment make one delivery, not one
   * each (every delivery is a message to each tab and a redraw). The server ends the stream once all are done (`{end: 'done'}`) or after its longest stream time
   * (`{end: 'timeout', pending}`). `{end: 'cut'}`: it ended without saying why; `{end: 'closed'}`: `signal`
   * closed it. A server without streams answers 404: ApiError with `noStream`.
   */
  async events(ids, { onResults, signal = null, idleMs = STREAM_IDLE_MS } = {}) {
    if (ids.length > MAX_STREAM_IDS) throw new RangeError(`at most ${MAX_STREAM_IDS} ids per stream`);
    const controller = new AbortController();
    const closed = () => Boolean(signal?.aborted);
    signal?.addEventListener('abort', () => controller.abort(), { once: true });
    let timer = null;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), idleMs);
    };
    arm();
    try {
      let response;
      try {
        response = await this.fetch(`${this.server}/api/v1/checks/events?ids=${ids.map(encodeURIComponent).join(',')}`, {
          method: 'GET',
          credentials: 'omit',
          cache: 'no-store',
          referrerPolicy: 'no-referrer',
          headers: this.headers({ Accept: 'text/event-stream' }),
          signal: controller.signal,
        });
      } catch (error) {
        if (closed()) return { end: 'closed' };
        throw new ApiError(0, `Credence server unreachable at ${this.server} (${error?.message ?? error})`);
      }
      const type = response.headers.get('Content-Type') ?? '';
      if (!response.ok || !type.startsWith('text/event-stream')) {
        let payload = null;
        try {
          payload = JSON.parse(await response.text());
        } catch {
          payload = null;
        }
        const error = new ApiError(response.status, payload?.error ?? `HTTP ${response.status}`, payload?.details ?? null);
        // An older server (no such path: its GET /checks/<id> says 404) or a proxy that does not pass streams.
        error.noStream = response.status === 404 || response.status === 405 || response.ok;
        throw error;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return { end: 'cut' };
          arm();
          const results = [];
          let end = null;
          for (const { event, data } of parser.push(decoder.decode(value, { stream: true }))) {
            let body;
            try {
              body = JSON.parse(data);
            } catch {
              continue; // not ours to understand; the next event or the stream's end says more
            }
            if (event === 'result' && body?.check_id) results.push(body);
            else if (event === 'done' || event === 'timeout') {
              end = { end: event, pending: Array.isArray(body?.pending) ? body.pending : [] };
              break;
            }
          }
          if (results.length) await onResults(results);
          if (end) {
            reader.cancel().catch(() => {});
            return end;
          }
        }
      } catch (error) {
        if (closed()) return { end: 'closed' };
        if (error instanceof ApiError) throw error;
        throw new ApiError(0, `Credence stream broke (${error?.message ?? error})`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** POST /lookup: verdicts by SHA-256 only (privacy mode). */
  async lookup(digests) {
    if (digests.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} digests per request`);
    const body = await this.request('POST', '/api/v1/lookup', { json: { sha256: digests } });
    return body.results;
  }

  /** POST /checks/upload: the bytes only, under a neutral file name (the URL stays here). */
  async upload(bytes, { type = 'application/octet-stream', wait = 0 } = {}) {
    const form = new FormData();
    form.append('file', new Blob([bytes], { type }), 'image');
    if (wait) form.append('wait', String(wait));
    const body = await this.request('POST', '/api/v1/checks/upload', { body: form });
    return body.results[0];
  }

  /** POST /reports: "report as fake" goes to the review queue; needs a key with the reporter role. */
  async report(url, note) {
    if (!this.apiKey) throw new ApiError(401, 'Set an API key with the reporter role in the options first.');
    try {
      return await this.request('POST', '/api/v1/reports', { json: { url, note } });
    } catch (error) {
      throw explainReportError(error);
    }
  }
}

/** Report errors in words a reader can act on. */
export function explainReportError(error) {
  if (!(error instanceof ApiError)) return error;
  const why = {
    401: 'The server did not accept this API key.',
    403: 'This API key may not report: it needs the reporter role.',
    404: 'This Credence server does not take reports yet.',
    405: 'This Credence server does not take reports yet.',
    429: 'Too many reports for now; try again later.',
  }[error.status];
  return why ? new ApiError(error.status, `${why} (${error.message})`, error.details) : error;
}
