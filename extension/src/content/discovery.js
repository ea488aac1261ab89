// Finds the images and videos a reader actually sees: <img> elements (their currentSrc, so srcset
// and <picture> resolve to the file shown) and <video> elements (the file they play), including ones
// added later and lazy ones once they come near the viewport; tiny and invisible ones are skipped.
// A <video> is reported by the file it plays; its poster (an image the reader sees before playback)
// is reported apart, as a Poster of that video, while the video shows it.
// Also looked at: images inside open shadow roots (walked and observed like the document) and
// elements painted with a CSS background image (computed style, first url()) at least MIN_SIDE big.
// Each frame runs its own content script (manifest all_frames), so iframes are covered there.

export const MIN_SIDE = 40; // CSS pixels and natural pixels; below this it is an icon or a tracker
const NEAR_VIEWPORT = '200px';
const SWEEP_MS = 2000;
// Images near the viewport still loading are looked at together this often until they are complete,
// rather than on their `load` events: each event is a call into the content script (about 25 µs of
// CPU), 300 of them on a page of 300 images, where a look at the loading ones every 100 ms reads a
// property of each (issue 18). The same interval gathers the media events of videos.
const GATHER_MS = 100;
const MAX_POLL_MS = 1000; // an image that never completes (a stream in an <img>) is looked at ever less often
// Not `load` (above). `error` stays: a broken image is rare, and it is complete then. `play`,
// `playing` and `seeking` end a poster's showing; `emptied`/`loadstart` (a new load) start it again.
const MEDIA_EVENTS = ['error', 'emptied', 'loadstart', 'loadedmetadata', 'play', 'playing', 'seeking'];
const POSTER_ENDS = new Set(['play', 'playing', 'seeking']);
const POSTER_STARTS = new Set(['emptied', 'loadstart']);

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

/**
 * A video's poster image, badged apart from the video file (the reader sees it before playback, and
 * it can be an AI image of its own): one per video, the key of its badge and of its row.
 */
export class Poster {
  constructor(video) {
    this.video = video;
  }
}

const posters = new WeakMap(); // video -> its Poster

export function posterOf(video) {
  let poster = posters.get(video);
  if (!poster) posters.set(video, (poster = new Poster(video)));
  return poster;
}

export function isPoster(target) {
  return target instanceof Poster;
}

/** The element a badge's target is drawn on: the element itself, or a poster's video. */
export function elementOf(target) {
  return target instanceof Poster ? target.video : target;
}

/**
 * Does the video show its poster now? As the HTML spec draws it: with no video data yet
 * (HAVE_NOTHING), or paused at the start before playback or a seek since its last load (`started`:
 * a play, playing or seeking event was seen since then; a video that played before the content script
 * started is known by its position or its played ranges).
 */
export function showsPoster(video, started = false) {
  if (!video.getAttribute('poster') || !video.poster) return false;
  if (video.readyState === 0) return true;
  return !started && video.paused && video.currentTime === 0 && !(video.played?.length > 0);
}

/** A video the extension can check: one played from a web address. Streamed ones (blob:, MediaSource,
 * srcObject) and inline data: ones have no file the server could fetch; they are never sent. */
export function checkableVideoUrl(url) {
  return /^https?:\/\//i.test(url);
}

/** What an element shows: the image's file, the video's, or its CSS background image (`name`: its localName). */
export function mediaUrl(el, name = el.localName) {
  if (name === 'video') return videoUrl(el);
  if (name === 'img') return imageUrl(el);
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
  constructor({ doc = document, onImage, onGone = () => {}, onRoot = () => {}, privacy = false }) {
    this.doc = doc;
    this.onImage = onImage;
    this.onGone = onGone; // a poster the video no longer shows (it plays): its badge goes
    this.onRoot = onRoot; // an open shadow root was found (the overlay follows its scrolls)
    this.roots = new Set();
    this.styleQueue = new Set(); // subtrees whose CSS backgrounds are still to be read
    this.privacy = privacy;
    this.near = new Set(); // images in or near the viewport
    this.watched = new WeakSet();
    this.reported = new WeakMap(); // img (or Poster) -> url last reported
    this.started = new WeakSet(); // videos that played or seeked since their last load: no poster shown
    // Looked at together GATHER_MS later: images near the viewport that were still loading (until
    // they are complete) and elements that had a media event; the geometry reads of a burst share one
    // style and layout update instead of one each.
    this.queued = new Set(); // media events' elements
    this.loading = new Set(); // near images not complete yet
    this.queueTimer = 0;
    this.onEvent = (event) => {
      const { target, type } = event;
      if (!isImg(target) && !isVideo(target)) return;
      if (POSTER_ENDS.has(type)) this.started.add(target);
      else if (POSTER_STARTS.has(type)) this.started.delete(target);
      this.queued.add(target);
      this.soon();
    };
    // A new viewport size may make an <img srcset> or <picture> load another file, without any
    // attribute changing: look at the near images again (those switching are loading by then).
    this.onResize = () => {
      for (const el of this.near) if (isImg(el)) this.loading.add(el);
      this.soon();
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
          this.loading.delete(entry.target); // looked at again when it comes near
        }
      }
    }, { rootMargin: NEAR_VIEWPORT });
    this.mo = new MutationObserver((records) => this.mutated(records));
    addEventListener('resize', this.onResize, { passive: true });
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
      childList: true, subtree: true, attributes: true, attributeFilter: ['src', 'srcset', 'poster'],
    });
    // error and the media events do not bubble (nor leave a shadow root); capture sees every image
    // failing and every video (re)loading: a new source fires emptied/loadstart, then loadedmetadata
    // once currentSrc is known; play/playing/seeking end its poster. Images finishing are looked for
    // instead (evaluateQueued).
    for (const type of MEDIA_EVENTS) root.addEventListener(type, this.onEvent, true);
    if (root !== this.doc) this.onRoot(root);
    this.scan(root);
  }

  /** Watch the images and videos under `node` and observe the open shadow roots there. */
  scan(node) {
    if (isImg(node) || isVideo(node)) this.watch(node);
    if (node.shadowRoot) this.observeRoot(node.shadowRoot);
    if (!node.querySelectorAll) return;
    if (node.nodeType === 1) this.styleQueue.add(node);
    else if (node.nodeType === 11) for (const child of node.children) this.styleQueue.add(child);
    // Shadow hosts cannot be selected: one walk over the elements (cheap: no styles, no layout) finds
    // them and the images and videos. <img> and <video> cannot host a shadow root: not asked.
    const walker = this.doc.createTreeWalker(node, NodeFilter.SHOW_ELEMENT);
    for (let el = walker.nextNode(); el; el = walker.nextNode()) {
      const name = el.localName;
      if (name === 'img' || name === 'video') this.watch(el);
      else if (el.shadowRoot && !this.roots.has(el.shadowRoot)) this.observeRoot(el.shadowRoot);
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
      // Images and videos are left out by the selector rather than one by one (a page's images are
      // most of its elements, often).
      const all = [top, ...top.querySelectorAll(':not(img):not(video)')];
      for (const el of all) {
        if (isImg(el) || isVideo(el) || this.watched.has(el)) continue;
        const url = backgroundUrl(getComputedStyle(el).backgroundImage);
        if (!url || !checkableUrl(url, { privacy: this.privacy })) continue;
        backgrounds.set(el, url);
        this.watch(el);
      }
    }
  }

  soon(delay = GATHER_MS) {
    if (this.queueTimer) return;
    this.pollDelay = delay;
    this.queueTimer = setTimeout(() => this.evaluateQueued(), delay);
  }

  evaluateQueued() {
    this.queueTimer = 0;
    const queued = [...this.queued];
    this.queued.clear();
    for (const el of queued) this.evaluate(el);
    let done = 0;
    for (const img of this.loading) {
      if (!img.isConnected || !this.near.has(img)) this.loading.delete(img);
      else if (img.complete) {
        this.loading.delete(img);
        done += 1;
        this.evaluate(img);
      }
    }
    // The rest, next time: soon while images keep finishing, ever later while none does.
    if (this.loading.size) this.soon(done || queued.length ? GATHER_MS : Math.min(MAX_POLL_MS, this.pollDelay * 2));
  }

  stop() {
    clearTimeout(this.queueTimer);
    this.queueTimer = 0;
    this.queued.clear();
    this.loading.clear();
    removeEventListener('resize', this.onResize);
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
    if (!this.near.has(el)) return; // (only elements are watched, so near)
    const name = el.localName; // read once: each read is a call into the page's DOM
    const video = name === 'video';
    const img = name === 'img';
    if (img && !el.complete) {
      this.loading.add(el); // lazy / loading: looked at again until it is complete
      this.soon();
      return;
    }
    const url = mediaUrl(el, name);
    // Every video with something to play is reported: one without a web address (blob:, MediaSource,
    // a stream, data:) is badged "not checkable" by the page and nothing about it is sent.
    if (url && (video || checkableUrl(url, { privacy: this.privacy })) && this.reported.get(el) !== url) {
      if (bigEnough(rect ??= el.getBoundingClientRect(), el) && looksVisible(el)) {
        this.reported.set(el, url);
        this.onImage(el, url);
      }
    }
    if (video) this.evaluatePoster(el, rect);
  }

  /** A video's poster: reported while the video shows it (an image by its URL), gone once it plays. */
  evaluatePoster(video, rect) {
    const poster = posterOf(video);
    const before = this.reported.get(poster);
    const url = showsPoster(video, this.started.has(video)) ? video.poster : '';
    if (url === before) return;
    if (url && checkableUrl(url, { privacy: this.privacy })
      && bigEnough(rect ?? video.getBoundingClientRect(), video) && looksVisible(video)) {
      this.reported.set(poster, url);
      this.onImage(poster, url);
    } else if (before) {
      this.reported.delete(poster);
      this.onGone(poster);
    }
  }
}
