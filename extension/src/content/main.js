// The content script (one per frame): finds images and videos, asks the service worker about them
// (never the server directly), draws badges, and tells the service worker what this frame shows and
// whether the page fights its badges (the toolbar action and the popup show that, out of its reach).
// Streamed videos (blob:, MediaSource) get a "not checkable" badge made here: their address means
// nothing outside the page. A video's poster is checked as an image of its own (a Poster target),
// badged while the video shows it.
import { ext } from '../lib/browser.js';
import { loadSettings, SETTINGS_KEY, shouldScan } from '../lib/settings.js';
import { notCheckable } from '../lib/describe.js';
import { documentPolicy } from '../lib/referrer.js';
import { checkableUrl, checkableVideoUrl, Discovery, imageUrl, isPoster, isVideo } from './discovery.js';
import { Overlay } from './overlay.js';

// Gather what several passes find into one message: each costs the frame about 1 ms of script
// (docs/extension.md, benchmark). The service worker gathers further for the server anyway (its
// batch window, and its hold while a POST is out).
const SEND_DELAY_MS = 200;
const RETRY_MS = 15000; // no answer by then: the worker may have been stopped; ask again
const MAX_TRIES = 5;
const MAX_DATA_URL = 8 * 1024 * 1024;
const STATE_DELAY_MS = 1000; // the toolbar action and popup hear of changes at most this often
const MAX_THUMB_URL = 64 * 1024; // data: thumbnails in the popup up to this long
const WARNINGS = {
  removed: 'This page keeps removing Credence\'s badges.',
  covered: 'This page draws over Credence\'s badges.',
};

class Page {
  constructor() {
    this.settings = null;
    this.running = false;
    this.imagesByKey = new Map(); // key (the image URL) -> Set(img, video or Poster)
    this.keyOf = new WeakMap(); // img -> key
    this.posterKeys = new Set(); // keys shown as a video's poster (the popup says so)
    this.verdicts = new Map(); // key -> verdict
    this.asked = new Map(); // key -> {at, tries}
    this.outbox = new Set(); // keys waiting for the next message
    this.forced = new Set(); // keys checked from the context menu: badge them even if skipped
    this.lastError = null;
    this.sendTimer = 0;
    this.stateTimer = 0;
    // The worker holds what this frame reported; each report after the first sends only the rows that
    // changed (a page of 300 images sent all 300 once a second while verdicts came in; issue 18).
    this.rowIds = new Map(); // key -> the number its row has in the reports
    this.changed = new Set(); // keys whose row changed since the last report
    this.sendAll = true; // the next report sends every row (the first, or the worker lost the last)
    this.stateSeq = 0; // reports sent: each change says which one it follows
    this.warning = null; // set once: the toolbar action says it, the page is no longer fought over
    this.overlay = new Overlay(document, {
      onOpen: (url) => ext.runtime.sendMessage({ type: 'open-report', url }),
      onTrouble: (kind) => this.warn(kind),
    });
  }

  warn(kind) {
    if (this.warning) return;
    this.warning = WARNINGS[kind] ?? String(kind);
    this.report();
  }

  /**
   * Tell the service worker (and so the toolbar action and the popup) what this frame shows, soon:
   * every row when `all` (or when the worker may have lost the last report), else the changed ones.
   */
  report(all = false) {
    if (all) this.sendAll = true;
    if (this.stateTimer) return;
    this.stateTimer = setTimeout(() => {
      this.stateTimer = 0;
      this.sendState();
    }, STATE_DELAY_MS);
  }

  sendState() {
    const all = this.sendAll;
    const keys = all ? [...this.verdicts.keys()] : [...this.changed];
    this.sendAll = false;
    this.changed.clear();
    // What the action and the popup need, no more: this goes out about once a second on a busy page.
    const images = [];
    const removed = [];
    for (const key of keys) {
      const v = this.verdicts.get(key);
      if (!v) {
        if (this.rowIds.has(key)) removed.push(this.rowIds.get(key));
        continue;
      }
      const { url, level, summary, reportUrl, count, thumb, mismatch, poster } = this.row(key, v);
      images.push({
        id: this.rowId(key), url, level, summary, reportUrl, count,
        ...(thumb && thumb !== url ? { thumb } : {}), ...(mismatch ? { mismatch } : {}), ...(poster ? { poster } : {}),
      });
    }
    const base = this.stateSeq;
    this.stateSeq += 1;
    const state = { images, pending: this.asked.size, warning: this.warning, seq: this.stateSeq };
    ext.runtime.sendMessage({ type: 'frame-state', state, ...(all ? {} : { base, removed }) }).then(
      (answer) => {
        if (answer?.resend) this.report(true); // the worker does not hold the report this one follows
      },
      () => {
        this.sendAll = true; // not delivered: the next report sends everything
      },
    );
  }

  /** The number of `key`'s row in the reports (stable for the frame's life). */
  rowId(key) {
    let id = this.rowIds.get(key);
    if (id === undefined) this.rowIds.set(key, (id = this.rowIds.size + 1));
    return id;
  }

  get host() {
    return location.hostname;
  }

  scanning() {
    const incognito = Boolean(ext.extension?.inIncognitoContext);
    return shouldScan(this.settings, this.host, { incognito });
  }

  async refresh() {
    const previous = this.settings;
    this.settings = await loadSettings(ext.storage);
    const modeChanged = previous && (previous.privacy !== this.settings.privacy || previous.server !== this.settings.server);
    if (this.running && (!this.scanning() || modeChanged)) this.stop();
    if (!this.running && this.scanning()) this.run();
  }

  run() {
    this.running = true;
    this.discovery = new Discovery({
      onImage: (img, url) => this.found(img, url),
      onGone: (target) => this.lost(target),
      onRoot: (root) => this.overlay.watchRoot(root),
      privacy: this.settings.privacy,
    });
    this.discovery.start();
    this.retryTimer = setInterval(() => this.retry(), RETRY_MS / 3);
  }

  stop() {
    this.running = false;
    this.discovery?.stop();
    clearInterval(this.retryTimer);
    this.overlay.destroy();
    this.imagesByKey.clear();
    this.posterKeys.clear();
    this.verdicts.clear();
    this.asked.clear();
    this.outbox.clear();
    this.report(true);
  }

  found(img, key) {
    const old = this.keyOf.get(img);
    if (old && old !== key) {
      this.imagesByKey.get(old)?.delete(img);
      this.overlay.remove(img);
      this.changed.add(old); // its count
    }
    this.keyOf.set(img, key);
    if (!this.imagesByKey.has(key)) this.imagesByKey.set(key, new Set());
    this.imagesByKey.get(key).add(img);
    if (isPoster(img)) this.posterKeys.add(key);
    this.changed.add(key);
    if (isVideo(img) && !checkableVideoUrl(key)) {
      if (!this.verdicts.has(key)) this.verdicts.set(key, notCheckable(key));
      this.overlay.show(img, this.verdicts.get(key));
      return; // never asked about, never sent
    }
    const verdict = this.verdicts.get(key);
    if (verdict) {
      this.overlay.show(img, verdict);
      this.report();
    } else {
      this.ask(key);
    }
  }

  /** A video's poster no longer shown (the video plays): its badge goes; its row stays, counting one less. */
  lost(target) {
    const key = this.keyOf.get(target);
    if (!key) return;
    this.keyOf.delete(target);
    this.imagesByKey.get(key)?.delete(target);
    this.overlay.remove(target);
    this.changed.add(key);
    this.report();
  }

  ask(key, force = false) {
    if (!force && this.asked.has(key)) return;
    const tries = (this.asked.get(key)?.tries ?? 0) + 1;
    this.asked.set(key, { at: Date.now(), tries });
    if (force) {
      this.post([key], true); // the reader asked: now, on its own
      return;
    }
    this.outbox.add(key);
    if (!this.sendTimer) this.sendTimer = setTimeout(() => this.send(), SEND_DELAY_MS);
  }

  send() {
    clearTimeout(this.sendTimer);
    this.sendTimer = 0;
    const keys = [...this.outbox];
    this.outbox.clear();
    return this.post(keys, false);
  }

  async post(keys, force) {
    // Web addresses go as they are; only blob: ones wait to be read (a promise for each of 300 plain
    // addresses cost more than the message).
    const blobs = keys.filter((key) => key.startsWith('blob:'));
    const items = keys.filter((key) => !key.startsWith('blob:')).map((url) => this.withPolicy({ url }));
    if (blobs.length) items.push(...(await Promise.all(blobs.map((key) => this.item(key)))).filter(Boolean));
    if (!items.length) return;
    try {
      // The page's referrer policy: the extension's own read of each image sends the referrer the page's did.
      await ext.runtime.sendMessage({ type: 'check', items, force, policy: documentPolicy(document) });
    } catch (error) {
      this.lastError = String(error?.message ?? error); // the retry timer asks again
    }
  }

  /** An `<img referrerpolicy>` overrides the page's policy for its own load: the item says so. */
  withPolicy(item) {
    for (const target of this.imagesByKey.get(item.url) ?? []) {
      if (target.referrerPolicy) return { ...item, policy: target.referrerPolicy };
    }
    return item;
  }

  /** What the worker needs for one image. blob: URLs only mean something in this page: read them here. */
  async item(key) {
    if (!key.startsWith('blob:')) return { url: key };
    try {
      const blob = await (await fetch(key)).blob();
      if (blob.size > MAX_DATA_URL) return null;
      const data = await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(blob);
      });
      return { url: key, data };
    } catch {
      return null; // revoked or unreadable: nothing to check
    }
  }

  onVerdicts(results) {
    for (const { key, verdict, error } of results) {
      if (!verdict) {
        this.lastError = error;
        continue; // asked stays: retried later
      }
      this.lastError = null;
      if (!this.running && !this.forced.has(key)) continue; // switched off meanwhile: show nothing
      this.verdicts.set(key, verdict);
      this.asked.delete(key);
      this.changed.add(key);
      const images = new Set(this.imagesByKey.get(key) ?? []);
      if (this.forced.has(key)) {
        for (const img of this.allImages()) {
          if (imageUrl(img) !== key && img.src !== key) continue;
          images.add(img);
          this.keyOf.set(img, key);
          if (!this.imagesByKey.has(key)) this.imagesByKey.set(key, new Set());
          this.imagesByKey.get(key).add(img);
        }
      }
      for (const img of images) this.overlay.show(img, verdict);
    }
    this.report();
  }

  /** Every <img> of the document and of its open shadow roots. */
  *allImages() {
    yield* document.images;
    for (const root of this.discovery?.roots ?? []) if (root !== document) yield* root.querySelectorAll('img');
  }

  retry() {
    const now = Date.now();
    for (const [key, asked] of this.asked) {
      const wait = RETRY_MS * 2 ** (asked.tries - 1);
      if (asked.tries < MAX_TRIES && now - asked.at > wait) this.resend(key);
    }
  }

  resend(key) {
    const asked = this.asked.get(key);
    this.asked.set(key, { at: Date.now(), tries: asked.tries + 1 });
    this.outbox.add(key);
    if (!this.sendTimer) this.sendTimer = setTimeout(() => this.send(), SEND_DELAY_MS);
  }

  /** Context menu: check this image now, bypassing caches and the skip rules. */
  forceCheck(url) {
    if (!checkableUrl(url, { privacy: true })) return false;
    if (!url.startsWith('http') && !this.settings.privacy) return false;
    this.forced.add(url); // its answer badges every image showing it (onVerdicts)
    this.verdicts.delete(url);
    this.changed.add(url); // no row until its answer
    this.ask(url, true);
    return true;
  }

  /** One distinct image as the popup shows it: its level, its report link, how many show it. */
  row(key, v) {
    const shown = this.imagesByKey.get(key);
    return {
      url: key.startsWith('data:') ? `${key.slice(0, 40)}…` : key,
      level: v.level,
      label: v.label,
      summary: v.summary,
      reportUrl: v.reportUrl ?? null,
      count: shown?.size ?? 0,
      // Shown as a video's poster (and not also as an image of its own).
      poster: this.posterKeys.has(key) && ![...(shown ?? [])].some((target) => !isPoster(target)),
      mismatch: Boolean(v.mismatch), // the browser shows other bytes than Credence got at this address
      thumb: /^https?:/i.test(key) || (key.startsWith('data:image/') && key.length <= MAX_THUMB_URL) ? key : null,
    };
  }

  /** What the popup shows: one row per distinct image, with its level and report link. */
  state() {
    const images = [...this.verdicts].map(([key, v]) => this.row(key, v));
    return {
      host: this.host,
      scanning: this.running,
      privacy: Boolean(this.settings?.privacy),
      server: this.settings?.server ?? null,
      images,
      pending: this.asked.size,
      error: this.lastError,
      warning: this.warning,
    };
  }
}

let page = null;

export async function start() {
  if (page) return;
  page = new Page();
  ext.runtime.onMessage.addListener((message, sender, sendResponse) => {
    if (sender.id !== ext.runtime.id) return false;
    if (message?.type === 'verdicts') page.onVerdicts(message.results ?? []);
    else if (message?.type === 'page-state') sendResponse(page.state());
    else if (message?.type === 'force-check') sendResponse({ ok: page.forceCheck(message.url) });
    else if (message?.type === 'resend-state') page.report(true);
    return false;
  });
  ext.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && changes[SETTINGS_KEY]) page.refresh();
  });
  await page.refresh();
}
