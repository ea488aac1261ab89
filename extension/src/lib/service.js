// The service worker's logic: tabs ask for verdicts, batches go to the server, results go back.
// The browser stops the worker whenever it likes, so everything that must outlive one run of it
// (cache, pending checks and which tabs wait for them) is in extension storage and read on each
// event. Only the coalescing window lives in memory; content scripts re-ask after a while, which
// covers a worker stopped inside that window.
import { CredenceApi, ApiError, MAX_STREAM_IDS } from './api.js';
import { Batcher } from './batcher.js';
import { compact, reportUrl } from './describe.js';
import { readBytes, sha256Hex } from './privacy.js';
import { referrerFor, referrerRule } from './referrer.js';
import { loadSettings } from './settings.js';

export const WINDOW_MS = 150; // coalescing window for batches from all tabs (after the last new key)
export const MAX_WINDOW_MS = 600; // ... and at most this long after the first one
export const LONG_POLL_S = 2; // a POST /checks (or upload) may wait this long on the server
export const FOLLOW_WAIT_S = 5; // a follow-up GET /checks?ids= waits until any is done (server caps it, 5 s by default)
export const FOLLOW_GAP_MS = 2500; // between the starts of two follow-ups: verdicts gather, requests stay few ...
export const MAX_FOLLOW_GAP_MS = 8000; // ... half the oldest pending check's age, up to this
export const STREAM_DELIVER_MS = 1000; // verdicts pushed within this of the last delivery go out together
export const STREAM_GATHER_MS = 500; // new pending checks: gather this long before a stream (re)opens with them ...
export const MAX_STREAM_GATHER_MS = 5000; // ... and until the batches out are answered, but no longer than this
export const CACHE_TTL_MS = 60 * 60 * 1000;
export const GIVE_UP_MS = 5 * 60 * 1000;
export const POLL_ALARM = 'credence-poll';
const HASH_CONCURRENCY = 4;
// Comparing the bytes shown (verifySeen) reads and hashes every image again: it waits while checks are out
// (batches, the stream), so the page's own verdicts and their badges do not wait behind it, looking again
// every VERIFY_RETRY_MS, and at most VERIFY_HOLD_MS.
export const VERIFY_RETRY_MS = 700;
export const VERIFY_HOLD_MS = 10000;
const UPLOAD_CONCURRENCY = 4;
const MAX_REFERRERS = 5000; // image URL -> the referrer its page sent, for reads after the check

/** Delay after the n-th failed follow-up in a row (server down): 0.5 s, doubling, at most 5 s. */
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
    this.following = null; // the one outstanding stream (or long-poll), if any
    this.followAgain = false; // checks were added while it was out: follow them as soon as it returns
    this.stream = null; // {ids, controller} of the open stream
    this.gatherTimer = null;
    this.gatherSince = 0;
    this.streamless = null; // the server that answered 404 for streams (older): long polls for it
    this.failures = 0;
    this.lastAsked = new Set();
    this.verifying = new Map(); // url -> {verdict, tabs}: URL mode, bytes the reader sees vs those checked
    this.verifyQueue = [];
    this.verifyRuns = new Set();
    this.verifyTimer = null; // comparisons held while checks are out: the next look
    this.verifyHeldSince = 0;
    this.referrers = new Map(); // url -> the Referer the page's load of it sent (newest page wins)
    this.dnr = ext.declarativeNetRequest ?? null;
    this.ruleId = 0;
    this.rulesCleared = null;
    const timers = { windowMs, maxWaitMs, setTimer, clearTimer, now };
    // A POST out holds the next partial one until it returns (it waits LONG_POLL_S on the server).
    const onIdle = () => this.batchesBack();
    this.urlBatcher = new Batcher({ ...timers, holdMs: LONG_POLL_S * 1000 + 1000, run: (urls) => this.flushUrls(urls),
      onIdle });
    this.shaBatcher = new Batcher({ ...timers, run: (shas) => this.flushLookup(shas), onIdle });
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

  /**
   * A tab wants verdicts for `items` ([{url, data?, policy?}]); answers arrive as 'verdicts' messages.
   * `page` (the frame's address) and `policy` (its referrer policy, an item's own first) give the
   * referrer the page's load of each image sent, which the extension's reads of the bytes send too.
   */
  async check(tabId, items, { force = false, page = null, policy = '' } = {}) {
    const s = await this.settings();
    if (page) for (const item of items) this.remember(item.url, referrerFor(item.url, page, item.policy || policy));
    if (s.privacy) return this.checkPrivately(tabId, items, { force, settings: s });
    const urls = [...new Set(items.map((i) => i.url).filter(isWebUrl))];
    if (!urls.length) return;
    if (force) await this.area.remove(urls.map((u) => `v:${u}`));
    const cached = force ? {} : await this.fresh(urls.map((u) => `v:${u}`));
    const hits = urls.filter((u) => cached[`v:${u}`]);
    if (hits.length) {
      await this.deliver(new Map([[tabId, hits.map((u) => ({ key: u, verdict: cached[`v:${u}`] }))]]), s);
      this.verifySeen(hits.map((u) => ({ url: u, verdict: cached[`v:${u}`], tabs: [tabId] })), s);
    }
    const misses = urls.filter((u) => !cached[`v:${u}`]);
    const stillPending = force ? new Set() : await this.joinPending(tabId, misses);
    const toSend = misses.filter((u) => !stillPending.has(u));
    for (const url of toSend) this.wait(url, url, tabId);
    this.urlBatcher.add(toSend);
    if (force) this.urlBatcher.flush({ now: true });
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
        ({ bytes, type } = await this.read(item.data ?? item.url));
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
    if (force) this.shaBatcher.flush({ now: true });
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
    const seen = [];
    results.forEach((result, index) => {
      const url = urls[index]; // results keep request order; result.url is the server's normal form
      const waiting = this.takeWaiters(url);
      if (result.status === 'done' && result.verdict) {
        // The check id links the report of media that has no SHA-256 (could not be fetched).
        const verdict = compact(result.verdict, result.check_id ? { checkId: result.check_id } : {});
        cache[`v:${url}`] = { v: verdict, t: this.now() };
        addOut(out, waiting, verdict);
        seen.push({ url, verdict, tabs: tabsOf(waiting) });
      } else if (result.check_id) {
        const referrer = this.referrers.get(url);
        pending.push({ checkId: result.check_id, keys: [url], tabs: tabsOf(waiting), sha: null,
          ...(referrer ? { referrers: { [url]: referrer } } : {}) });
      }
    });
    await this.area.set(cache);
    await this.deliver(out, settings);
    this.verifySeen(seen, settings);
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
          // Kept with the check: a worker restarted before it is done still reads as the page did.
          ...(e.referrers ?? old?.referrers ? { referrers: { ...old?.referrers, ...e.referrers } } : {}),
          ...(e.mismatch ?? old?.mismatch ? { mismatch: e.mismatch ?? old.mismatch } : {}),
          since: old?.since ?? now,
        };
      }
      await this.area.set({ pending });
    });
    this.follow();
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
      if (joined.size) this.follow();
      return joined;
    });
  }

  /** Make sure pending checks are followed: now, or with the follow-up already out or scheduled. */
  follow() {
    if (this.stream) this.gather();
    else if (this.following) this.followAgain = true;
    else if (this.pollTimer === null) this.gather();
  }

  /**
   * New pending checks: follow them, but not batch by batch. Wait STREAM_GATHER_MS, and while batches
   * are still out or queued (their own `wait` answers what finishes meanwhile) until they are answered, at
   * most MAX_STREAM_GATHER_MS; then open a stream, or close the open one to open one with them all (ids it
   * already follows change nothing). A page's first batches then share one stream instead of one each.
   */
  gather() {
    if (this.gatherTimer !== null) return;
    if (!this.gatherSince) this.gatherSince = this.now();
    this.gatherTimer = this.setTimer(() => this.gatherLook(), STREAM_GATHER_MS);
  }

  /** The gathering's look: follow what was gathered now, or gather on (regather). */
  gatherLook() {
    if (this.gatherTimer !== null) this.clearTimer(this.gatherTimer);
    this.gatherTimer = null;
    this.regather().catch((error) => console.warn('Credence: could not reopen the stream', error));
  }

  /**
   * Every batch is back: a gathering that has waited its STREAM_GATHER_MS already, and went on only for
   * them, follows now rather than at its next look (up to STREAM_GATHER_MS later).
   */
  batchesBack() {
    if (this.gatherTimer === null || this.urlBatcher.busy || this.shaBatcher.busy) return;
    if (this.now() - this.gatherSince < STREAM_GATHER_MS) return;
    this.gatherLook();
  }

  async regather() {
    const busy = this.urlBatcher.busy || this.shaBatcher.busy;
    if (busy && this.now() - this.gatherSince < MAX_STREAM_GATHER_MS) {
      this.gather();
      return;
    }
    const stream = this.stream;
    if (!stream) {
      this.gatherSince = 0;
      if (!this.following && this.pollTimer === null) this.schedulePoll(0);
      return;
    }
    const pending = await this.readPending();
    const unfollowed = Object.keys(pending).some((id) => !stream.ids.has(id));
    this.gatherSince = 0;
    if (unfollowed && this.stream === stream) stream.controller.abort(); // its end opens the next one with all
  }

  schedulePoll(delayMs) {
    if (this.following) {
      this.followAgain = true; // the outstanding long-poll schedules the next one when it returns
      return;
    }
    if (this.pollTimer !== null) this.clearTimer(this.pollTimer);
    this.pollTimer = this.setTimer(() => {
      this.pollTimer = null;
      this.poll().catch((error) => console.warn('Credence: follow-up failed', error));
    }, Math.max(0, delayMs));
  }

  /**
   * Follow pending checks: one stream at a time (`GET /checks/events`, see followStream), or with a server
   * that has none, one long-poll (followLong). Calls while one is out return it (tests, the alarm, a
   * restarted worker).
   */
  poll() {
    if (this.following) return this.following;
    if (this.pollTimer !== null) {
      this.clearTimer(this.pollTimer);
      this.pollTimer = null;
    }
    if (this.gatherTimer !== null) { // this one follows what was being gathered
      this.clearTimer(this.gatherTimer);
      this.gatherTimer = null;
      this.gatherSince = 0;
    }
    this.followAgain = false;
    this.following = this.followOnce().finally(() => {
      this.following = null;
    });
    return this.following;
  }

  async followOnce() {
    const api = await this.api();
    if (this.streamless !== api.server) return this.followStream(api);
    return this.followLong(api);
  }

  /** The pending check ids to ask about next, at most `max`. */
  async nextIds(max) {
    const entries = Object.entries(await this.readPending());
    // Oldest first (they finish first), but those not asked about last time go before those that were:
    // with more than `max` pending, none waits behind others for ever.
    const asked = (id) => (this.lastAsked.has(id) ? 1 : 0);
    const ids = entries.sort(([x, a], [y, b]) => asked(x) - asked(y) || a.since - b.since)
      .slice(0, max).map(([id]) => id);
    this.lastAsked = new Set(ids);
    return ids;
  }

  /**
   * One stream (`GET /checks/events?ids=...`, at most MAX_STREAM_IDS): the server pushes each verdict as
   * it is done (delivered as below), and ends the stream when all are done or after its longest stream
   * time; then the next one opens with what is still pending (and what was added meanwhile, see
   * `gather`). A page's checks then cost a stream or two, not a long poll per finished check.
   */
  async followStream(api) {
    const ids = await this.nextIds(MAX_STREAM_IDS);
    if (!ids.length) {
      this.ext.alarms?.clear(POLL_ALARM);
      return;
    }
    const stream = { ids: new Set(ids), controller: new AbortController() };
    this.stream = stream;
    if (this.followAgain) this.gather(); // added between reading the pending ones and opening the stream
    this.followAgain = false;
    // Backstop: if the worker is stopped with the stream open, the alarm wakes it to carry on.
    this.ext.alarms?.create(POLL_ALARM, { periodInMinutes: 0.5 });
    // Each delivery is a message to every waiting tab and a redraw there; the server pushes verdicts as they are
    // recorded, at most every 0.25 s. The first go at once, later ones at most once per STREAM_DELIVER_MS (a badge
    // waits at most that), and what is held goes out as soon as the stream ends.
    let held = [];
    let lastAt = -Infinity;
    let timer = null;
    let delivering = Promise.resolve();
    const deliver = () => {
      if (timer !== null) this.clearTimer(timer);
      timer = null;
      const answers = held;
      held = [];
      if (answers.length) {
        lastAt = this.now();
        delivering = delivering.then(() => this.settle(answers.map((a) => a.check_id), answers));
      }
      return delivering;
    };
    let outcome = null;
    try {
      outcome = await api.events(ids, {
        signal: stream.controller.signal,
        onResults: async (answers) => {
          held.push(...answers);
          const wait = lastAt + STREAM_DELIVER_MS - this.now();
          if (wait <= 0) await deliver();
          else if (timer === null) {
            timer = this.setTimer(() => deliver().catch((e) => console.warn('Credence: delivery failed', e)), wait);
          }
        },
      });
    } catch (error) {
      if (error?.noStream) {
        this.streamless = api.server; // an older server: long polls for it from now on
        this.stream = null;
        return this.followLong(api);
      }
      this.failures += 1;
      console.warn('Credence: stream failed; backing off', error?.message ?? error);
    } finally {
      if (this.stream === stream) this.stream = null;
      await deliver().catch((e) => console.warn('Credence: delivery failed', e));
    }
    const settled = outcome && outcome.end !== 'cut';
    if (settled) this.failures = 0;
    else if (outcome) this.failures += 1; // ended without a word (a proxy cut it): as a failure, or it could spin
    const { remaining } = await this.settle(ids, []); // checks that never finish give up
    if (Object.keys(remaining).length) {
      this.following = null;
      this.schedulePoll(settled ? 0 : backoff(this.failures - 1));
    } else {
      this.ext.alarms?.clear(POLL_ALARM);
    }
  }

  /**
   * One long-poll (`GET /checks?ids=...&wait=`) about the oldest 100, answered by the server as soon as
   * any is done. The next one starts FOLLOW_GAP_MS after this one started (at once if it took longer),
   * so verdicts that finish close together come in one answer.
   */
  async followLong(api) {
    const started = this.now();
    const ids = await this.nextIds(100);
    let answers = null;
    if (ids.length) {
      try {
        answers = await api.status(ids, { wait: FOLLOW_WAIT_S });
        this.failures = 0;
      } catch (error) {
        this.failures += 1;
        console.warn('Credence: follow-up failed; backing off', error?.message ?? error);
      }
    }
    const { remaining, delivered } = await this.settle(ids, answers ?? []);
    if (Object.keys(remaining).length) {
      // A slow server (checks long pending) is asked less often; a reader waits at most half again as long.
      const oldest = Math.min(...Object.values(remaining).map((e) => e.since));
      const gap = answers === null ? backoff(this.failures - 1)
        : Math.min(MAX_FOLLOW_GAP_MS, Math.max(FOLLOW_GAP_MS, (this.now() - oldest) / 2));
      // Checks added while this one was out, and nothing came back: no reason to wait for them.
      const delay = this.followAgain && !delivered && answers !== null ? 0 : started + gap - this.now();
      this.following = null;
      this.schedulePoll(delay);
      // Backstop: if the worker is stopped, the alarm wakes it to carry on.
      this.ext.alarms?.create(POLL_ALARM, { periodInMinutes: 0.5 });
    } else {
      this.ext.alarms?.clear(POLL_ALARM);
    }
  }

  /**
   * Answers about `ids` (each `{check_id, status, verdict}`): a done one is delivered to its tabs and
   * cached, an unknown one or one pending longer than GIVE_UP_MS is "could not check"; both leave the
   * pending record. Returns what is still pending and how many tabs got something.
   */
  async settle(ids, answers) {
    const settings = await this.settings();
    const out = new Map();
    const seen = [];
    const remaining = await this.exclusive(async () => {
      const pending = await this.readPending();
      const byId = new Map(answers.map((r) => [r.check_id, r]));
      const t = this.now();
      for (const id of ids) {
        const entry = pending[id];
        if (!entry) continue;
        const answer = byId.get(id);
        let verdict = null;
        // An upload of the bytes the reader sees (their address gave Credence others): say so on its verdict.
        const seenExtra = entry.mismatch ? { mismatch: entry.mismatch, seen: true } : {};
        if (answer?.status === 'done' && answer.verdict) verdict = compact(answer.verdict, { checkId: id, ...seenExtra });
        else if (answer?.status === 'unknown' || t - entry.since > GIVE_UP_MS) {
          verdict = localVerdict('unavailable', 'Credence did not finish this check in time.');
        }
        if (!verdict) continue;
        delete pending[id];
        const cacheable = verdict.local ? {} : entry.sha
          ? { [`s:${entry.sha}`]: { v: verdict, t } }
          : Object.fromEntries(entry.keys.map((k) => [`v:${k}`, { v: verdict, t }]));
        await this.area.set(cacheable);
        // A restarted worker has only what the check kept; a running one may know a newer page's.
        if (!entry.sha) for (const url of entry.keys) if (!this.referrers.has(url)) this.remember(url, entry.referrers?.[url]);
        if (!entry.sha) for (const url of entry.keys) seen.push({ url, verdict, tabs: entry.tabs });
        for (const tab of entry.tabs) {
          if (!out.has(tab)) out.set(tab, []);
          for (const key of entry.keys) out.get(tab).push({ key, verdict });
        }
      }
      await this.area.set({ pending });
      return pending;
    });
    await this.deliver(out, settings);
    this.verifySeen(seen, settings);
    return { remaining, delivered: out.size };
  }

  // ---- what the reader sees (URL mode) -------------------------------------------------------

  /**
   * Compare the bytes the reader's browser gets at each address (its cookies, its User-Agent) with
   * those Credence checked there, in the background, a few at a time; a server that cloaks (serves
   * Credence's fetcher something else) then shows as a mismatch. Verdicts already compared are skipped.
   */
  verifySeen(items, settings) {
    if (settings.privacy) return; // privacy mode checks the browser's bytes already
    for (const { url, verdict, tabs } of items) {
      if (!verdict || verdict.local || verdict.seen || !verdict.sha256 || !isWebUrl(url)) continue;
      const known = this.verifying.get(url);
      if (known) {
        for (const tab of tabs) known.tabs.add(tab);
        continue;
      }
      this.verifying.set(url, { verdict, tabs: new Set(tabs) });
      this.verifyQueue.push(url);
    }
    this.startVerify(settings);
  }

  /** Checks still out: batches queued or sent, a stream or long poll, one about to open. */
  get checksOut() {
    return this.urlBatcher.busy || this.shaBatcher.busy || this.following !== null || this.pollTimer !== null
      || this.gatherTimer !== null;
  }

  /** Start queued comparisons, a few at a time, unless held (see VERIFY_HOLD_MS; `now`: not held). */
  startVerify(settings, now = false) {
    if (!this.verifyQueue.length) return;
    if (!now && this.checksOut) {
      this.verifyHeldSince ||= this.now();
      if (this.now() - this.verifyHeldSince < VERIFY_HOLD_MS) {
        this.verifyTimer ??= this.setTimer(() => {
          this.verifyTimer = null;
          this.startVerify(settings);
        }, VERIFY_RETRY_MS);
        return;
      }
    }
    this.verifyHeldSince = 0;
    while (this.verifyRuns.size < HASH_CONCURRENCY && this.verifyQueue.length) {
      const url = this.verifyQueue.shift();
      const run = this.verifyOne(url, settings)
        .catch((error) => console.warn('Credence: could not compare the bytes shown', error))
        .finally(() => {
          this.verifying.delete(url);
          this.verifyRuns.delete(run);
          this.startVerify(settings, true); // once started, the queue goes on
        });
      this.verifyRuns.add(run);
    }
  }

  /** Resolves when every comparison queued so far has finished, held ones started now (tests). */
  async verified() {
    while (this.verifyRuns.size || this.verifyQueue.length) {
      if (!this.verifyRuns.size) this.startVerify(await this.settings(), true);
      await Promise.all([...this.verifyRuns]);
    }
  }

  async verifyOne(url, settings) {
    const { verdict } = this.verifying.get(url);
    let read;
    try {
      read = await this.read(url);
    } catch {
      return; // the browser cannot read them (no CORS way, too big): nothing to compare, the verdict stands
    }
    const seenSha = await sha256Hex(read.bytes);
    if (seenSha === verdict.sha256) {
      await this.area.set({ [`v:${url}`]: { v: { ...verdict, seen: true }, t: this.now() } });
      return;
    }
    const mismatch = { checkedSha: verdict.sha256, checkedLevel: verdict.level, checkedLabel: verdict.label, seenSha };
    const tabs = () => [...this.verifying.get(url).tabs];
    const send = (v) => this.deliver(new Map(tabs().map((tab) => [tab, [{ key: url, verdict: v }]])), settings);
    const api = new CredenceApi({ server: settings.server, apiKey: settings.apiKey, fetch: this.fetch });
    let shown = null;
    try { // known bytes first: only their fingerprint goes out
      const [known] = await api.lookup([seenSha]);
      if (known?.status === 'done' && known.verdict) shown = compact(known.verdict, { mismatch, seen: true });
    } catch {
      // unknown then; an upload may still tell
    }
    if (!shown && settings.uploadSeen) {
      await send({ ...localVerdict('unknown', 'Credence is checking the bytes you see.', seenSha), mismatch });
      try {
        const up = await api.upload(read.bytes, { type: read.type, wait: LONG_POLL_S });
        if (up.status === 'done' && up.verdict) shown = compact(up.verdict, { checkId: up.check_id, mismatch, seen: true });
        else if (up.check_id) {
          await this.addPending([{ checkId: up.check_id, keys: [url], tabs: tabs(), sha: null, mismatch }]);
          return;
        }
      } catch {
        // said below: what the reader sees is not checked
      }
    }
    if (shown) await this.area.set({ [`v:${url}`]: { v: shown, t: this.now() } });
    else shown = { ...localVerdict('unknown', 'What you see was not checked.', seenSha), mismatch };
    await send(shown);
  }

  // ---- reading the bytes as the page did: its referrer ----------------------------------------------

  /** Note the referrer a page sent for `url` (none: forget any older one). */
  remember(url, referrer) {
    this.referrers.delete(url);
    if (!referrer) return;
    this.referrers.set(url, referrer);
    if (this.referrers.size > MAX_REFERRERS) this.referrers.delete(this.referrers.keys().next().value);
  }

  /**
   * The bytes at `url` (readBytes), sent with the referrer its page sent. A `fetch` cannot set `Referer`
   * (a forbidden header), so a declarativeNetRequest session rule sets it on this one read of the
   * extension's own (see referrerRule) and is removed after. Where the rule cannot be added, no referrer.
   */
  async read(url) {
    const referrer = isWebUrl(url) ? this.referrers.get(url) : null;
    let id = null;
    if (referrer && this.dnr) {
      try {
        await this.clearRules();
        id = ++this.ruleId;
        const host = new URL(this.ext.runtime.getURL('')).host;
        await this.dnr.updateSessionRules({ addRules: [referrerRule(id, url, referrer, host)] });
      } catch (error) {
        console.warn('Credence: cannot send the page\'s referrer', error?.message ?? error);
        id = null;
      }
    }
    try {
      return await readBytes(url, { fetch: this.fetch });
    } finally {
      if (id !== null) await this.dnr.updateSessionRules({ removeRuleIds: [id] }).catch(() => {});
    }
  }

  /** Session rules outlive a stopped worker: a new one removes those of the old (all are these). */
  clearRules() {
    this.rulesCleared ??= this.dnr.getSessionRules()
      .then((rules) => rules.length && this.dnr.updateSessionRules({ removeRuleIds: rules.map((r) => r.id) }))
      .catch((error) => {
        this.rulesCleared = null; // tried again on the next read
        throw error;
      });
    return this.rulesCleared;
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
