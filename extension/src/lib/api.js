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
const TIMEOUT_MS = 20000;

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
