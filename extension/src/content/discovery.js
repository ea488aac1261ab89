// Finds the images a reader actually sees: <img> elements (their currentSrc, so srcset and
// <picture> resolve to the file shown), including ones added later and lazy ones once they come
// near the viewport; tiny and invisible images are skipped.

export const MIN_SIDE = 40; // CSS pixels and natural pixels; below this it is an icon or a tracker
const NEAR_VIEWPORT = '200px';
const SWEEP_MS = 2000;

// Tag test rather than instanceof: page and content script see different constructors.
export function isImg(node) {
  return node?.nodeType === 1 && node.localName === 'img';
}

/** The address of what is displayed. */
export function imageUrl(img) {
  return img.currentSrc || img.src || '';
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
  constructor({ doc = document, onImage, privacy = false }) {
    this.doc = doc;
    this.onImage = onImage;
    this.privacy = privacy;
    this.near = new Set(); // images in or near the viewport
    this.watched = new WeakSet();
    this.reported = new WeakMap(); // img -> url last reported
    this.onEvent = (event) => {
      if (isImg(event.target)) this.evaluate(event.target);
    };
  }

  start() {
    this.io = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          this.near.add(entry.target);
          this.evaluate(entry.target);
        } else {
          this.near.delete(entry.target);
        }
      }
    }, { rootMargin: NEAR_VIEWPORT });
    this.mo = new MutationObserver((records) => this.mutated(records));
    this.mo.observe(this.doc.documentElement, {
      childList: true, subtree: true, attributes: true, attributeFilter: ['src', 'srcset'],
    });
    // load/error do not bubble; capture sees every image finishing (lazy ones, srcset switches).
    this.doc.addEventListener('load', this.onEvent, true);
    this.doc.addEventListener('error', this.onEvent, true);
    for (const img of this.doc.images) this.watch(img);
    // Visibility changes through CSS alone fire no observer; look again at near, unreported ones.
    this.sweep = setInterval(() => {
      for (const img of this.near) {
        if (!img.isConnected) this.near.delete(img);
        else if (!this.reported.has(img)) this.evaluate(img);
      }
    }, SWEEP_MS);
  }

  stop() {
    this.io?.disconnect();
    this.mo?.disconnect();
    this.doc.removeEventListener('load', this.onEvent, true);
    this.doc.removeEventListener('error', this.onEvent, true);
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
        // A changed <source> changes what its <picture>'s <img> shows.
        const img = isImg(record.target) ? record.target : record.target.parentElement?.querySelector('img');
        if (img) this.evaluate(img);
        continue;
      }
      for (const node of record.addedNodes) {
        if (isImg(node)) this.watch(node);
        else if (node.querySelectorAll) for (const img of node.querySelectorAll('img')) this.watch(img);
      }
    }
  }

  /** Report the image if it is near the viewport, loaded, big and visible enough, and new or changed. */
  evaluate(img) {
    if (!this.near.has(img) || !img.complete) return; // lazy / loading: the load event comes back here
    const url = imageUrl(img);
    if (!url || !checkableUrl(url, { privacy: this.privacy })) return;
    if (this.reported.get(img) === url) return;
    if (!bigEnough(img.getBoundingClientRect(), img) || !looksVisible(img)) return;
    this.reported.set(img, url);
    this.onImage(img, url);
  }
}
