// All badges of a page live in one CLOSED shadow root, on a host element the extension guards:
// page CSS cannot reach inside, page scripts get `null` for host.shadowRoot, and if a page script
// removes the host or restyles it, the extension puts it back as it was.
// In fullscreen only the fullscreen element is drawn, so the host moves into it (a video player's
// box) and back out after; a bare <video> in fullscreen draws nothing over itself, badges included.
import { BADGE_CSS, BADGE_INSET, createBadge } from './badge.js';

export const HOST_TAG = 'credence-badges';
// Inline !important beats every page stylesheet rule, important or not, and CSS animations.
export const HOST_STYLE = [
  'all: initial', 'display: block', 'position: absolute', 'top: 0', 'left: 0', 'width: 0', 'height: 0',
  'margin: 0', 'padding: 0', 'border: 0', 'overflow: visible', 'z-index: 2147483647', 'visibility: visible',
  'opacity: 1', 'transform: none', 'filter: none', 'clip-path: none', 'mask: none', 'pointer-events: none',
  'contain: none',
].map((rule) => `${rule} !important`).join('; ');
const REPAIRS_PER_SECOND = 20; // a page fighting the guard slows it down, it never hangs the tab
const REPLACED = new Set(['VIDEO', 'IMG', 'CANVAS', 'IFRAME', 'OBJECT', 'EMBED']); // draw no children

export class Overlay {
  constructor(doc, { onOpen }) {
    this.doc = doc;
    this.onOpen = onOpen;
    this.badges = new Map(); // img -> badge element
    this.host = null;
    this.root = null;
    this.frame = 0;
    this.repairs = [];
    this.repairTimer = 0;
    this.schedule = () => {
      if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.layout(); });
    };
  }

  mount() {
    if (this.host) return;
    this.host = this.doc.createElement(HOST_TAG);
    this.host.setAttribute('style', HOST_STYLE);
    this.root = this.host.attachShadow({ mode: 'closed' });
    const style = this.doc.createElement('style');
    style.textContent = BADGE_CSS;
    this.root.append(style);
    this.home().append(this.host);

    this.guard = new MutationObserver(() => this.repairSoon());
    this.guard.observe(this.doc, { childList: true }); // the page swapped its root element
    this.guard.observe(this.doc.documentElement, { childList: true });
    this.guard.observe(this.host, { attributes: true });
    // Keep badges on their images: scrolling (any scroller), resizing, layout changes.
    addEventListener('scroll', this.schedule, { capture: true, passive: true });
    addEventListener('resize', this.schedule, { passive: true });
    this.onFullscreen = () => this.repair();
    this.doc.addEventListener('fullscreenchange', this.onFullscreen);
    this.resizes = new ResizeObserver(this.schedule);
    this.layoutChanges = new MutationObserver(this.schedule);
    this.layoutChanges.observe(this.doc.documentElement, { childList: true, subtree: true, attributes: true });
    this.tick = setInterval(this.schedule, 1000); // CSS transitions and animations fire nothing
  }

  /** Show (or replace) the badge of `img`. */
  show(img, verdict) {
    this.mount();
    this.remove(img);
    const badge = createBadge(this.doc, verdict, this.onOpen);
    this.badges.set(img, badge);
    this.root.append(badge);
    this.resizes.observe(img);
    this.place(img, badge, this.host.getBoundingClientRect());
  }

  remove(img) {
    const badge = this.badges.get(img);
    if (!badge) return;
    badge.remove();
    this.badges.delete(img);
    this.resizes?.unobserve(img);
  }

  has(img) {
    return this.badges.has(img);
  }

  destroy() {
    if (!this.host) return;
    this.guard.disconnect();
    this.layoutChanges.disconnect();
    this.resizes.disconnect();
    removeEventListener('scroll', this.schedule, { capture: true });
    removeEventListener('resize', this.schedule);
    this.doc.removeEventListener('fullscreenchange', this.onFullscreen);
    clearInterval(this.tick);
    clearTimeout(this.repairTimer);
    if (this.frame) cancelAnimationFrame(this.frame);
    this.host.remove();
    this.host = null;
    this.badges.clear();
  }

  layout() {
    if (!this.host) return;
    const origin = this.host.getBoundingClientRect();
    for (const [img, badge] of this.badges) {
      if (!img.isConnected) this.remove(img);
      else this.place(img, badge, origin);
    }
  }

  /** Top-left corner of the image, in the host's coordinates (works whatever the page's offsets). */
  place(img, badge, origin) {
    const rect = img.getBoundingClientRect();
    badge.hidden = rect.width === 0 || rect.height === 0;
    const x = Math.round(rect.left - origin.left + BADGE_INSET);
    const y = Math.round(rect.top - origin.top + BADGE_INSET);
    badge.style.transform = `translate(${x}px, ${y}px)`;
    badge.classList.toggle('flip', rect.left + 300 > innerWidth);
  }

  repairSoon() {
    if (!this.host || this.repairTimer) return;
    const now = performance.now();
    this.repairs = this.repairs.filter((t) => now - t < 1000);
    const delay = this.repairs.length >= REPAIRS_PER_SECOND ? 1000 : 0;
    this.repairTimer = setTimeout(() => { this.repairTimer = 0; this.repair(); }, delay);
  }

  /** Where the host belongs: the fullscreen element when one can show it, else the root element. */
  home() {
    const full = this.doc.fullscreenElement;
    return full && !REPLACED.has(full.tagName) ? full : this.doc.documentElement;
  }

  /** Put the host back where it belongs, as it was. */
  repair() {
    if (!this.host) return;
    const root = this.home();
    let changed = false;
    if (this.host.parentNode !== root) {
      root.append(this.host);
      this.guard.observe(root, { childList: true });
      this.layoutChanges.observe(root, { childList: true, subtree: true, attributes: true });
      changed = true;
    }
    for (const name of this.host.getAttributeNames()) {
      if (name !== 'style') {
        this.host.removeAttribute(name);
        changed = true;
      }
    }
    if (this.host.getAttribute('style') !== HOST_STYLE) {
      this.host.setAttribute('style', HOST_STYLE);
      changed = true;
    }
    if (changed) {
      this.repairs.push(performance.now());
      this.schedule();
    }
  }
}
