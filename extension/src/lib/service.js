// The service worker's logic: tabs ask for verdicts, batches go to the server, results go back.
// The browser stops the worker whenever it likes, so everything that must outlive one run of it
// (cache, pending checks and which tabs wait for them) is in extension storage and read on each
// event. Only the coalescing window lives in memory; content scripts re-ask after a while, which
// covers a worker stopped inside that window.
import { CredenceApi, ApiError } from './api.js';
import { Batcher } from './batcher.js';
import { compact, reportUrl } from './describe.js';
import { readBytes, sha256Hex } from './privacy.js';
import { loadSettings } from './settings.js';

export const WINDOW_MS = 150; // coalescing window for batches from all tabs (after the last new key)
export const MAX_WINDOW_MS = 600; // ... and at most this long after the first one
export const LONG_POLL_S = 2; // first answer may wait this long on the server
export const CACHE_TTL_MS = 60 * 60 * 1000;
export const GIVE_UP_MS = 5 * 60 * 1000;
export const POLL_ALARM = 'credence-poll';
const HASH_CONCURRENCY = 4;
const UPLOAD_CONCURRENCY = 4;

/** Delay before the n-th poll of a pending check: 0.5 s, doubling, at most 5 s. */
export function backoff(tries) {
  return Math.min(500 * 2 ** tries, 5000);
}

export function isWebUrl(url) {
  return /^https?:\/\//i.test(String(url));
}

export class Service {
  constructor({ ext, fetch = globalThis.fetch.bind(globalThis), now = () => Date.now(),
    setTimer = (fn, ms) => setTimeout(fn, ms), clearTimer = (id) => clearTimeout(id), windowMs = WINDOW_MS,
    maxWaitMs = MAX_WINDOW_MS }) {
    this.ext = ext;
    this.fetch = fetch;
    this.now = now;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    // storage.session is memory-only and per browser session: the right place for a cache.
    this.area = ext.storage.session ?? ext.storage.local;
    this.waiters = new Map(); // url or sha -> Map(key -> Set(tabId)), for keys inside a batch window
    this.bytes = new Map(); // sha -> {bytes, type}: privacy mode, kept only until the lookup answers
    this.lock = Promise.resolve();
    this.pollTimer = null;
    const timers = { windowMs, maxWaitMs, setTimer, clearTimer, now };
    this.urlBatcher = new Batcher({ ...timers, run: (urls) => this.flushUrls(urls) });
    this.shaBatcher = new Batcher({ ...timers, run: (shas) => this.flushLookup(shas) });
  }

  async settings() {
    return loadSettings(this.ext.storage);
  }

  async api() {
    const s = await this.settings();
    return new CredenceApi({ server: s.server, apiKey: s.apiKey, fetch: this.fetch });
  }

  /** Serialise read-modify-write of shared storage records within this worker. */
  exclusive(fn) {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => {});
    return next;
  }

  // ---- entry points -------------------------------------------------------------------------

  /** A tab wants verdicts for `items` ([{url, data?}]); answers arrive as 'verdicts' messages. */
  async check(tabId, items, { force = false } = {}) {
    const s = await this.settings();
    if (s.privacy) return this.checkPrivately(tabId, items, { force, settings: s });
    const urls = [...new Set(items.map((i) => i.url).filter(isWebUrl))];
    if (!urls.length) return;
    if (force) await this.area.remove(urls.map((u) => `v:${u}`));
    const cached = force ? {} : await this.fresh(urls.map((u) => `v:${u}`));
    const hits = urls.filter((u) => cached[`v:${u}`]);
    if (hits.length) {
      await this.deliver(new Map([[tabId, hits.map((u) => ({ key: u, verdict: cached[`v:${u}`] }))]]), s);
    }
    const misses = urls.filter((u) => !cached[`v:${u}`]);
    const stillPending = force ? new Set() : await this.joinPending(tabId, misses);
    const toSend = misses.filter((u) => !stillPending.has(u));
    for (const url of toSend) this.wait(url, url, tabId);
    this.urlBatcher.add(toSend);
    if (force) this.urlBatcher.flush();
  }

  /** Privacy mode: hash here, look up by hash; URLs and page addresses stay in the browser. */
  async checkPrivately(tabId, items, { force, settings }) {
    const webUrls = items.map((i) => i.url).filter(isWebUrl);
    const memo = force ? {} : await this.fresh(webUrls.map((u) => `h:${u}`));
    const known = await this.fresh(Object.values(memo).map((m) => `s:${m.sha}`));
    const ready = new Map([[tabId, []]]);
    const toHash = [];
    for (const item of items) {
      const sha = memo[`h:${item.url}`]?.sha;
      const verdict = sha && known[`s:${sha}`];
      if (verdict && !force) ready.get(tabId).push({ key: item.url, verdict });
      else toHash.push(item);
    }
    if (ready.get(tabId).length) await this.deliver(ready, settings);
    await runLimited(toHash, HASH_CONCURRENCY, async (item) => {
      let bytes;
      let type;
      try {
        ({ bytes, type } = await readBytes(item.data ?? item.url, { fetch: this.fetch }));
      } catch (error) {
        const verdict = localVerdict('unavailable', `The browser could not read this image: ${error.message}`);
        await this.deliver(new Map([[tabId, [{ key: item.url, verdict }]]]), settings);
        return;
      }
      const sha = await sha256Hex(bytes);
      if (isWebUrl(item.url)) await this.area.set({ [`h:${item.url}`]: { v: { sha }, t: this.now() } });
      this.bytes.set(sha, { bytes, type });
      this.wait(sha, item.url, tabId);
      this.shaBatcher.add([sha]);
    });
    if (force) this.shaBatcher.flush();
  }

  /** Worker (re)started or alarm fired: carry on polling whatever is pending. */
  async resume() {
    await this.poll();
  }

  // ---- batches --------------------------------------------------------------------------------

  wait(id, key, tabId) {
    if (!this.waiters.has(id)) this.waiters.set(id, new Map());
    const keys = this.waiters.get(id);
    if (!keys.has(key)) keys.set(key, new Set());
    keys.get(key).add(tabId);
  }

  takeWaiters(id) {
    const keys = this.waiters.get(id) ?? new Map();
    this.waiters.delete(id);
    return keys;
  }

  async flushUrls(urls) {
    const settings = await this.settings();
    const api = new CredenceApi({ server: settings.server, apiKey: settings.apiKey, fetch: this.fetch });
    let results;
    try {
      results = await api.checks(urls, { wait: LONG_POLL_S });
    } catch (error) {
      await this.fail(urls.map((u) => this.takeWaiters(u)), error, settings);
      return;
    }
    const out = new Map();
    const pending = [];
    const cache = {};
    results.forEach((result, index) => {
      const url = urls[index]; // results keep request order; result.url is the server's normal form
      const waiting = this.takeWaiters(url);
      if (result.status === 'done' && result.verdict) {
        // The check id links the report of media that has no SHA-256 (could not be fetched).
        const verdict = compact(result.verdict, result.check_id ? { checkId: result.check_id } : {});
        cache[`v:${url}`] = { v: verdict, t: this.now() };
        addOut(out, waiting, verdict);
      } else if (result.check_id) {
        pending.push({ checkId: result.check_id, keys: [url], tabs: tabsOf(waiting), sha: null });
      }
    });
    await this.area.set(cache);
    await this.deliver(out, settings);
    await this.addPending(pending);
  }

  async flushLookup(shas) {
    const settings = await this.settings();
    const api = new CredenceApi({ server: settings.server, apiKey: settings.apiKey, fetch: this.fetch });
    let results;
    try {
      results = await api.lookup(shas);
    } catch (error) {
      await this.fail(shas.map((sha) => this.takeWaiters(sha)), error, settings);
      shas.forEach((sha) => this.bytes.delete(sha));
      return;
    }
    const out = new Map();
    const uploads = [];
    for (const result of results) {
      const sha = result.sha256;
      const waiting = this.takeWaiters(sha);
      const held = this.bytes.get(sha);
      this.bytes.delete(sha);
      if (result.status === 'done' && result.verdict) {
        const verdict = compact(result.verdict);
        await this.area.set({ [`s:${sha}`]: { v: verdict, t: this.now() } });
        addOut(out, waiting, verdict);
      } else if (settings.uploadUnknown && held) {
        uploads.push({ sha, held, waiting });
      } else {
        addOut(out, waiting, localVerdict('unknown', null, sha));
      }
    }
    await this.deliver(out, settings); // the known ones now, not after the uploads
    // Uploads go a few at a time, each answer delivered as soon as it comes.
    await runLimited(uploads, UPLOAD_CONCURRENCY, ({ sha, held, waiting }) => this.upload(api, sha, held, waiting, settings));
  }

  /** Privacy mode, an image the server does not know: its bytes (no address) go up; its verdict comes back. */
  async upload(api, sha, held, waiting, settings) {
    let up;
    try {
      up = await api.upload(held.bytes, { type: held.type, wait: LONG_POLL_S });
    } catch (error) {
      await this.fail([waiting], error, settings);
      return;
    }
    if (up.status === 'done' && up.verdict) {
      const verdict = compact(up.verdict, { checkId: up.check_id });
      await this.area.set({ [`s:${sha}`]: { v: verdict, t: this.now() } });
      const out = new Map();
      addOut(out, waiting, verdict);
      await this.deliver(out, settings);
    } else {
      await this.addPending([{ checkId: up.check_id, keys: [...waiting.keys()], tabs: tabsOf(waiting), sha }]);
    }
  }

  // ---- pending checks, in storage ---------------------------------------------------------------

  async readPending() {
    return (await this.area.get('pending'))?.pending ?? {};
  }

  async addPending(entries) {
    if (!entries.length) return;
    await this.exclusive(async () => {
      const pending = await this.readPending();
      const now = this.now();
      for (const e of entries) {
        const old = pending[e.checkId];
        pending[e.checkId] = {
          keys: [...new Set([...(old?.keys ?? []), ...e.keys])],
          tabs: [...new Set([...(old?.tabs ?? []), ...e.tabs])],
          sha: e.sha ?? old?.sha ?? null,
          tries: old?.tries ?? 0,
          since: old?.since ?? now,
          next: now + backoff(0),
        };
      }
      await this.area.set({ pending });
    });
    this.schedulePoll(backoff(0));
  }

  /** Keys already pending on the server: add the tab to their waiters instead of asking again. */
  async joinPending(tabId, keys) {
    if (!keys.length) return new Set();
    return this.exclusive(async () => {
      const pending = await this.readPending();
      const joined = new Set();
      for (const entry of Object.values(pending)) {
        for (const key of entry.keys) {
          if (!keys.includes(key)) continue;
          joined.add(key);
          if (!entry.tabs.includes(tabId)) entry.tabs.push(tabId);
        }
      }
      if (joined.size) await this.area.set({ pending });
      if (joined.size) this.schedulePoll(0);
      return joined;
    });
  }

  schedulePoll(delayMs) {
    if (this.pollTimer !== null) this.clearTimer(this.pollTimer);
    this.pollTimer = this.setTimer(() => {
      this.pollTimer = null;
      this.poll().catch((error) => console.warn('Credence: poll failed', error));
    }, Math.max(0, delayMs));
  }

  /**
   * One round, when any check is due: ask about every pending one (oldest first, up to 100) in one
   * request, so checks started at different times end up polled together, not one request each.
   */
  async poll() {
    const now = this.now();
    const entries = Object.entries(await this.readPending());
    const isDue = (e) => (e.next <= now ? 0 : 1);
    // Due ones first (oldest first), then the rest fill the request: none is left waiting behind others.
    const due = entries.some(([, e]) => e.next <= now)
      ? entries.sort(([, a], [, b]) => isDue(a) - isDue(b) || a.since - b.since).slice(0, 100).map(([id]) => id)
      : [];
    let answers = [];
    if (due.length) {
      try {
        answers = await (await this.api()).status(due);
      } catch (error) {
        console.warn('Credence: status poll failed; backing off', error?.message ?? error);
      }
    }
    const settings = await this.settings();
    const out = new Map();
    const remaining = await this.exclusive(async () => {
      const pending = await this.readPending();
      const byId = new Map(answers.map((r) => [r.check_id, r]));
      const t = this.now();
      for (const id of due) {
        const entry = pending[id];
        if (!entry) continue;
        const answer = byId.get(id);
        let verdict = null;
        if (answer?.status === 'done' && answer.verdict) verdict = compact(answer.verdict, { checkId: id });
        else if (answer?.status === 'unknown' || t - entry.since > GIVE_UP_MS) {
          verdict = localVerdict('unavailable', 'Credence did not finish this check in time.');
        }
        if (verdict) {
          delete pending[id];
          const cacheable = verdict.local ? {} : entry.sha
            ? { [`s:${entry.sha}`]: { v: verdict, t } }
            : Object.fromEntries(entry.keys.map((k) => [`v:${k}`, { v: verdict, t }]));
          await this.area.set(cacheable);
          for (const tab of entry.tabs) {
            if (!out.has(tab)) out.set(tab, []);
            for (const key of entry.keys) out.get(tab).push({ key, verdict });
          }
        } else {
          entry.tries += 1; // also after a failed round: the server may be down, ask less often
          entry.next = t + backoff(entry.tries);
        }
      }
      await this.area.set({ pending });
      return pending;
    });
    await this.deliver(out, settings);
    const nexts = Object.values(remaining).map((e) => e.next);
    if (nexts.length) {
      this.schedulePoll(Math.min(...nexts) - this.now());
      // Backstop: if the worker is stopped, the alarm wakes it to carry on.
      this.ext.alarms?.create(POLL_ALARM, { periodInMinutes: 0.5 });
    } else {
      this.ext.alarms?.clear(POLL_ALARM);
    }
  }

  // ---- delivery -------------------------------------------------------------------------------

  /** Cached values younger than the TTL, by storage key. */
  async fresh(keys) {
    if (!keys.length) return {};
    const got = await this.area.get(keys);
    const t = this.now();
    const out = {};
    for (const [k, entry] of Object.entries(got ?? {})) if (entry && t - entry.t < CACHE_TTL_MS) out[k] = entry.v;
    return out;
  }

  /** Send each tab its results; a closed tab is not an error. */
  async deliver(byTab, settings) {
    await Promise.all([...byTab].map(async ([tabId, results]) => {
      if (!results.length || tabId === null || tabId === undefined) return;
      const withLinks = results.map(({ key, verdict, error }) => ({
        key,
        error: error ?? null,
        // The extension's own verdicts ("?", could not read) have no report on the server.
        verdict: verdict ? { ...verdict, reportUrl: verdict.local ? null : reportUrl(settings.server, verdict) } : null,
      }));
      try {
        await this.ext.tabs.sendMessage(tabId, { type: 'verdicts', results: withLinks });
      } catch {
        // the tab went away or navigated; its new page will ask again
      }
    }));
  }

  async fail(waitingList, error, settings) {
    const message = error instanceof ApiError ? error.message : String(error?.message ?? error);
    const out = new Map();
    for (const waiting of waitingList) addOut(out, waiting, null, message);
    await this.deliver(out, settings);
  }
}

/** A verdict made by the extension itself (never cached: the server may know better later). */
export function localVerdict(level, summary, sha256 = null) {
  return { level, label: null, summary: summary ?? '', sha256, top: null, local: true };
}

function tabsOf(waiting) {
  const tabs = new Set();
  for (const set of waiting.values()) for (const tab of set) tabs.add(tab);
  return [...tabs];
}

function addOut(out, waiting, verdict, error = null) {
  for (const [key, tabs] of waiting) {
    for (const tab of tabs) {
      if (!out.has(tab)) out.set(tab, []);
      out.get(tab).push({ key, verdict, error });
    }
  }
}

async function runLimited(items, limit, fn) {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    while (queue.length) await fn(queue.shift());
  });
  await Promise.all(workers);
}
