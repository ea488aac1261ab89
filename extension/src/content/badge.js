// One badge: a focusable button (colour + icon per level) and its tooltip. Built with DOM calls
// and textContent only: server text never becomes markup.
import { accessibleLabel, describe } from '../lib/describe.js';
import { levelInfo } from '../lib/levels.js';
import { icon } from './icons.js';

export const BADGE_SIZE = 22;
export const BADGE_INSET = 4; // from the image's top-left corner
export const BADGE_GAP = 4; // between a video's badge and its poster's, beside it
export const MARK_FILL = '#ffd600'; // the "you see different bytes" marker on a badge's top-right corner
export const MARK_SIZE = 12;

export const BADGE_CSS = `
.wrap { position: absolute; top: 0; left: 0; pointer-events: auto; font: 12px/1.4 system-ui, sans-serif;
  color: #fff; text-align: left; direction: ltr; }
.wrap[hidden] { display: none; }
.wrap:hover, .wrap:focus-within { z-index: 1; } /* its tooltip above the other badges */
.badge { all: unset; box-sizing: border-box; display: block; width: ${BADGE_SIZE}px; height: ${BADGE_SIZE}px;
  border: 1.5px solid #fff; border-radius: 6px; background: var(--fill); color: var(--ink); cursor: pointer;
  box-shadow: 0 1px 3px rgba(0, 0, 0, .55); }
.badge.hollow { border: 1.5px dashed var(--ink); }
.badge svg { display: block; width: 100%; height: 100%; pointer-events: none; } /* the button is the target */
.badge:focus-visible { outline: 3px solid #ffd54f; outline-offset: 2px; }
.tip { display: none; position: absolute; top: ${BADGE_SIZE + 6}px; left: 0; width: max-content; max-width: 280px;
  padding: 8px 10px; border-radius: 6px; background: #1d1f21; color: #f5f5f5; box-shadow: 0 2px 10px rgba(0, 0, 0, .5); }
.wrap.flip .tip { left: auto; right: ${-BADGE_SIZE}px; }
.wrap:hover .tip, .wrap:focus-within .tip { display: block; }
.wrap.dismissed .tip { display: none; }
.tip .subject { margin: 0 0 4px; color: #b0bec5; font-weight: 600; }
.tip .title { font-weight: 600; margin: 0 0 4px; }
.tip .line { margin: 0 0 4px; }
.tip .hint { margin: 0; color: #b0bec5; }
.mark { display: none; position: absolute; top: -5px; left: ${BADGE_SIZE - 7}px; width: ${MARK_SIZE}px;
  height: ${MARK_SIZE}px; box-sizing: border-box; border: 1px solid #fff; border-radius: 50%; background: ${MARK_FILL};
  color: #1a1a1a; pointer-events: none; font: bold 9px/10px system-ui, sans-serif; text-align: center; }
.wrap.mismatch .mark { display: block; }
.wrap.mismatch .badge { outline: 2px dashed ${MARK_FILL}; outline-offset: 1px; }
.tip .mismatch { margin: 0 0 6px; color: ${MARK_FILL}; font-weight: 600; }
`;

let counter = 0;
const verdicts = new WeakMap(); // badge button -> the verdict it shows (its report, its tooltip's lines)
const posterButtons = new WeakSet(); // badge buttons of video posters (their tooltip says so)
const keyedAt = new WeakMap(); // badge button -> when Enter or Space last opened it
const templates = new WeakMap(); // document -> Map(level|mismatch -> a badge to clone)

/**
 * The tooltip of a badge, built the first time a pointer or the focus reaches it: a page of 300
 * badges needs none of the 300 until then (issue 18). The button's accessible label already says
 * all it says, so screen readers lose nothing before it exists.
 */
function ensureTip(wrap) {
  if (!wrap || wrap.querySelector('.tip')) return;
  const button = wrap.firstChild;
  const verdict = verdicts.get(button);
  if (!verdict) return;
  const doc = wrap.ownerDocument;
  const tip = doc.createElement('div');
  tip.className = 'tip';
  tip.id = `credence-tip-${(counter += 1)}`;
  tip.setAttribute('role', 'tooltip');
  const { title, evidence, score, mismatch, subject } = describe(verdict, { poster: posterButtons.has(button) });
  const add = (cls, text) => {
    if (!text) return;
    const p = doc.createElement('p');
    p.className = cls;
    p.textContent = text;
    tip.append(p);
  };
  add('subject', subject);
  add('mismatch', mismatch);
  add('title', title);
  add('line', evidence);
  add('line', score);
  add('hint', verdict.reportUrl ? 'Click for the full report.' : null);
  wrap.append(tip);
  button.setAttribute('aria-describedby', tip.id);
}

/**
 * One set of listeners on the badges' shadow root for all its badges, rather than four per badge
 * (a page of 300 images built and kept 1200 of them; issue 18). `onOpen(url)` opens a report.
 */
export function handleBadges(root, onOpen) {
  const buttonOf = (event) => event.target.closest?.('.badge') ?? null;
  const open = (event, button) => {
    event.preventDefault();
    event.stopPropagation(); // the page's own handlers (links around images) stay out of it
    const url = verdicts.get(button)?.reportUrl;
    if (url) onOpen(url);
  };
  root.addEventListener('click', (event) => {
    const button = buttonOf(event);
    if (!button) return;
    // Enter and Space open the report themselves: not every browser turns them into a click here
    // (seen in Firefox); where one does, that click (detail 0) must not open it a second time.
    if (event.detail === 0 && Date.now() - (keyedAt.get(button) ?? 0) < 1000) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    open(event, button);
  });
  root.addEventListener('keydown', (event) => {
    const button = buttonOf(event);
    if (!button) return;
    if (event.key === 'Enter' || event.key === ' ') {
      keyedAt.set(button, Date.now());
      open(event, button);
    } else if (event.key === 'Escape') {
      // Dismiss the tooltip without moving the pointer (WCAG 1.4.13).
      button.closest('.wrap')?.classList.add('dismissed');
      button.blur();
    }
  });
  // The tooltip is built as the pointer comes over its badge (before :hover shows it).
  root.addEventListener('pointerover', (event) => ensureTip(event.target.closest?.('.wrap')));
  // pointerleave and focus do not bubble: their bubbling twins, for the badge they concern.
  root.addEventListener('pointerout', (event) => {
    const wrap = event.target.closest?.('.wrap');
    if (wrap && !wrap.contains(event.relatedTarget)) wrap.classList.remove('dismissed');
  });
  root.addEventListener('focusin', (event) => {
    if (!buttonOf(event)) return;
    const wrap = event.target.closest('.wrap');
    ensureTip(wrap);
    wrap?.classList.remove('dismissed');
  });
}

/** The badge of a level, its tooltip left out: what every badge of that level starts as. */
function template(doc, level, mismatch) {
  let byKey = templates.get(doc);
  if (!byKey) templates.set(doc, (byKey = new Map()));
  const key = `${level}|${mismatch}`;
  let wrap = byKey.get(key);
  if (wrap) return wrap;
  const info = levelInfo(level);
  wrap = doc.createElement('div');
  wrap.className = 'wrap';
  wrap.dataset.level = level;
  if (mismatch) {
    // The bytes this browser shows are not those Credence checked at the address (cloaking).
    wrap.classList.add('mismatch');
    wrap.dataset.mismatch = 'true';
  }
  const button = doc.createElement('button');
  button.type = 'button';
  button.className = info.hollow ? 'badge hollow' : 'badge';
  button.style.setProperty('--fill', info.fill);
  button.style.setProperty('--ink', info.ink);
  button.append(icon(doc, info.icon));
  wrap.append(button);
  if (mismatch) {
    const mark = doc.createElement('span');
    mark.className = 'mark';
    mark.textContent = '≠';
    mark.setAttribute('aria-hidden', 'true');
    wrap.append(mark);
  }
  byKey.set(key, wrap);
  return wrap;
}

/**
 * A badge for `verdict` (compact, with reportUrl); its root's handleBadges makes it open the report.
 * A copy of its level's template (one call instead of a dozen per badge) with its own label; its
 * tooltip comes when it is first hovered or focused. `poster`: the badge of a video's poster image.
 */
export function createBadge(doc, verdict, { poster = false } = {}) {
  const wrap = template(doc, verdict.level, Boolean(verdict.mismatch)).cloneNode(true);
  const button = wrap.firstChild;
  button.setAttribute('aria-label', accessibleLabel(verdict, { poster }));
  verdicts.set(button, verdict);
  if (poster) {
    posterButtons.add(button);
    wrap.dataset.poster = 'true';
  }
  return wrap;
}
