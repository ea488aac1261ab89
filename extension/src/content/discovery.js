// Finds the images and videos a reader actually sees: <img> elements (their currentSrc, so srcset
// and <picture> resolve to the file shown) and <video> elements (the file they play), including ones
// added later and lazy ones once they come near the viewport; tiny and invisible ones are skipped.
// A video's poster is not its source: only the video file is reported for a <video>.
// Also looked at: images inside open shadow roots (walked and observed like the document) and
// elements painted with a CSS background image (computed style, first url()) at least MIN_SIDE big.
// Each frame runs its own content script (manifest all_frames), so iframes are covered there.

export const MIN_SIDE = 40; // CSS pixels and natural pixels; below this it is an icon or a tracker
const NEAR_VIEWPORT = '200px';
const SWEEP_MS = 2000;
// Image loads come one task each: they are looked at together this long after the first (a page's
// burst of loads costs a few passes, timers and messages instead of one each; issue 18).
const GATHER_MS = 100;
const MEDIA_EVENTS = ['load', 'error', 'emptied', 'loadstart', 'loadedmetadata'];

// Tag test rather than instanceof: page and content script see different constructors.
export function isImg(node) {
  return node?.nodeType === 1 && node.localName === 'img';
}

export function isVideo(node) {
  return node?.nodeType === 1 && node.localName === 'video';
}

/** The address of what is displayed. */
export function imageUrl(img) {
  return img.currentSrc || img.src || '';
}

/** The first url() of a computed background-image value ('' for none, gradients only). */
export function backgroundUrl(value) {
  const match = /url\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^)\s]*))\s*\)/.exec(String(value ?? ''));
  if (!match) return '';
  return (match[1] ?? match[2] ?? match[3] ?? '').replace(/\\(.)/g, '$1');
}

const backgrounds = new WeakMap(); // element -> its CSS background image's URL

// A video fed by a MediaStream or a MediaSource object (srcObject) has no address at all.
export const STREAM_KEY = 'stream:srcObject';

/**
 * The file a video plays: currentSrc once the browser has chosen, else its src attribute, else the
 * first <source> child it can play (preload="none" videos may not have chosen yet). blob: addresses
 * (URL.createObjectURL of a Blob or a MediaSource) come back as they are: the caller must not send them.
 */
export function videoUrl(video) {
  if (video.currentSrc) return video.currentSrc;
  let stream = null;
  try {
    stream = video.srcObject;
  } catch {
    stream = null; // some wrappers refuse access; then there is no stream to report
  }
  if (stream) return STREAM_KEY;
  if (video.getAttribute('src')) return video.src;
  for (const source of video.children) {
    if (source.localName !== 'source' || !source.getAttribute('src')) continue;
    const type = source.getAttribute('type');
    if (!type || video.canPlayType(type) !== '') return source.src;
  }
  return '';
}

/** A video the extension can check: one played from a web address. Streamed ones (blob:, MediaSource,
 * srcObject) and inline data: ones have no file the server could fetch; they are never sent. */
export function checkableVideoUrl(url) {
  return /^https?:\/\//i.test(url);
}

/** What an element shows: the image's file, the video's, or its CSS background image. */
export function mediaUrl(el) {
  if (isVideo(el)) return videoUrl(el);
  if (isImg(el)) return imageUrl(el);
  return backgrounds.get(el) ?? '';
}

/** http(s) always; data: and blob: only in privacy mode, where the bytes are read in the browser. */
export function checkableUrl(url, { privacy = false } = {}) {
  if (/^https?:\/\//i.test(url)) return true;
  return privacy && (/^data:image\//i.test(url) || /^blob:/i.test(url));
}

/** Big enough on screen and, once decoded, in its own pixels. Broken images count by their box. */
export function bigEnough(rect, img) {
  if (rect.width < MIN_SIDE || rect.height < MIN_SIDE) return false;
  if (img.complete && img.naturalWidth > 0 && (img.naturalWidth < MIN_SIDE || img.naturalHeight < MIN_SIDE)) {
    return false;
  }
  return true;
}

/** Rendered and not see-through, ancestors included where the browser can tell. */
export function looksVisible(img, getStyle = globalThis.getComputedStyle) {
  if (typeof img.checkVisibility === 'function') {
    return img.checkVisibility({ opacityProperty: true, visibilityProperty: true, contentVisibilityAuto: true });
  }
  const style = getStyle(img);
  return style.display !== 'none' && style.visibility !== 'hidden' && Number(style.opacity) > 0.05;
}

export class Discovery {
  /** `onImage(img, url)` is called once per image and again when what it shows changes. */
  constructor({ doc = document, onImage, onRoot = () => {}, privacy = false }) {
    this.doc = doc;
    this.onImage = onImage;
    this.onRoot = onRoot; // an open shadow root was found (the overlay follows its scrolls)
    this.roots = new Set();
    this.styleQueue = new Set(); // subtrees whose CSS backgrounds are still to be read
    this.privacy = privacy;
    this.near = new Set(); // images in or near the viewport
    this.watched = new WeakSet();
    this.reported = new WeakMap(); // img -> url last reported
    // Media events come one task each (300 image loads, 300 tasks): evaluated together GATHER_MS
    // later, the geometry reads of a burst share one style and layout update instead of one each.
    this.queued = new Set();
    this.queueTimer = 0;
    this.onEvent = (event) => {
      if (!isImg(event.target) && !isVideo(event.target)) return;
      this.queued.add(event.target);
      if (!this.queueTimer) this.queueTimer = setTimeout(() => this.evaluateQueued(), GATHER_MS);
    };
  }

  start() {
    this.io = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          this.near.add(entry.target);
          this.evaluate(entry.target, entry.boundingClientRect); // no layout of its own
        } else {
          this.near.delete(entry.target);
        }
      }
    }, { rootMargin: NEAR_VIEWPORT });
    this.mo = new MutationObserver((records) => this.mutated(records));
    this.observeRoot(this.doc);
    // Visibility changes through CSS alone fire no observer; look again at near, unreported ones
    // (one timer for the page), and read the CSS backgrounds of what was added meanwhile.
    this.sweep = setInterval(() => {
      this.readBackgrounds();
      for (const img of this.near) {
        if (!img.isConnected) this.near.delete(img);
        else if (!this.reported.has(img)) this.evaluate(img);
      }
    }, SWEEP_MS);
    this.readBackgrounds();
  }

  /** The document or an open shadow root: observe it, watch its media, walk into nested roots. */
  observeRoot(root) {
    if (this.roots.has(root)) return;
    this.roots.add(root);
    this.mo.observe(root === this.doc ? this.doc.documentElement : root, {
      childList: true, subtree: true, attributes: true, attributeFilter: ['src', 'srcset'],
    });
    // load/error and the media events do not bubble (nor leave a shadow root); capture sees every
    // image finishing (lazy ones, srcset switches) and every video (re)loading: a new source fires
    // emptied/loadstart, then loadedmetadata once currentSrc is known.
    for (const type of MEDIA_EVENTS) root.addEventListener(type, this.onEvent, true);
    if (root !== this.doc) this.onRoot(root);
    this.scan(root);
  }

  /** Watch the images and videos under `node` and observe the open shadow roots there. */
  scan(node) {
    if (isImg(node) || isVideo(node)) this.watch(node);
    if (node.shadowRoot) this.observeRoot(node.shadowRoot);
    if (!node.querySelectorAll) return;
    for (const el of node.querySelectorAll('img, video')) this.watch(el);
    if (node.nodeType === 1) this.styleQueue.add(node);
    else if (node.nodeType === 11) for (const child of node.children) this.styleQueue.add(child);
    // Shadow hosts cannot be selected; walk the elements once (cheap: no styles, no layout).
    const walker = this.doc.createTreeWalker(node, NodeFilter.SHOW_ELEMENT);
    for (let el = walker.nextNode(); el; el = walker.nextNode()) {
      if (el.shadowRoot && !this.roots.has(el.shadowRoot)) this.observeRoot(el.shadowRoot);
    }
  }

  /** Elements painted with a CSS background image: read computed styles of what was added, in one go. */
  readBackgrounds() {
    const queue = this.styleQueue.size ? [...this.styleQueue] : [];
    this.styleQueue.clear();
    if (!this.bgStarted) {
      this.bgStarted = true;
      queue.push(this.doc.documentElement);
    }
    for (const top of queue) {
      if (!top.isConnected) continue;
      const all = [top, ...top.querySelectorAll('*')];
      for (const el of all) {
        if (isImg(el) || isVideo(el) || this.watched.has(el)) continue;
        const url = backgroundUrl(getComputedStyle(el).backgroundImage);
        if (!url || !checkableUrl(url, { privacy: this.privacy })) continue;
        backgrounds.set(el, url);
        this.watch(el);
      }
    }
  }

  evaluateQueued() {
    this.queueTimer = 0;
    const queued = [...this.queued];
    this.queued.clear();
    for (const el of queued) this.evaluate(el);
  }

  stop() {
    clearTimeout(this.queueTimer);
    this.queueTimer = 0;
    this.queued.clear();
    this.io?.disconnect();
    this.mo?.disconnect();
    for (const root of this.roots) for (const type of MEDIA_EVENTS) root.removeEventListener(type, this.onEvent, true);
    this.roots.clear();
    clearInterval(this.sweep);
    this.near.clear();
  }

  watch(img) {
    if (this.watched.has(img)) return;
    this.watched.add(img);
    this.io.observe(img);
  }

  mutated(records) {
    for (const record of records) {
      if (record.type === 'attributes') {
        // A changed <source> changes what its <picture>'s <img> or its <video> shows.
        const { target } = record;
        const parent = target.parentElement;
        const el = isImg(target) || isVideo(target) ? target
          : (isVideo(parent) ? parent : parent?.querySelector('img'));
        if (el) this.evaluate(el);
        continue;
      }
      if (isVideo(record.target)) this.evaluate(record.target); // <source> children added or removed
      for (const node of record.addedNodes) this.scan(node);
    }
  }

  /** Report the element if it is near the viewport, loaded (images), big and visible enough, and new or changed. */
  evaluate(el, rect = null) {
    if (!this.near.has(el)) return;
    const video = isVideo(el);
    if (isImg(el) && !el.complete) return; // lazy / loading: the load event comes back here
    const url = mediaUrl(el);
    // Every video with something to play is reported: one without a web address (blob:, MediaSource,
    // a stream, data:) is badged "not checkable" by the page and nothing about it is sent.
    if (!url || (!video && !checkableUrl(url, { privacy: this.privacy }))) return;
    if (this.reported.get(el) === url) return;
    if (!bigEnough(rect ?? el.getBoundingClientRect(), el) || !looksVisible(el)) return;
    this.reported.set(el, url);
    this.onImage(el, url);
  }
}
