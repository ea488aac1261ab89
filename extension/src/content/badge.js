// One badge: a focusable button (colour + icon per level) and its tooltip. Built with DOM calls
// and textContent only: server text never becomes markup.
import { accessibleLabel, describe } from '../lib/describe.js';
import { levelInfo } from '../lib/levels.js';
import { icon } from './icons.js';

export const BADGE_SIZE = 22;
export const BADGE_INSET = 4; // from the image's top-left corner

export const BADGE_CSS = `
.wrap { position: absolute; top: 0; left: 0; pointer-events: auto; font: 12px/1.4 system-ui, sans-serif;
  color: #fff; text-align: left; direction: ltr; }
.wrap[hidden] { display: none; }
.wrap:hover, .wrap:focus-within { z-index: 1; } /* its tooltip above the other badges */
.badge { all: unset; box-sizing: border-box; display: block; width: ${BADGE_SIZE}px; height: ${BADGE_SIZE}px;
  border: 1.5px solid #fff; border-radius: 6px; background: var(--fill); color: var(--ink); cursor: pointer;
  box-shadow: 0 1px 3px rgba(0, 0, 0, .55); }
.badge.hollow { border: 1.5px dashed var(--ink); }
.badge svg { display: block; width: 100%; height: 100%; }
.badge:focus-visible { outline: 3px solid #ffd54f; outline-offset: 2px; }
.tip { display: none; position: absolute; top: ${BADGE_SIZE + 6}px; left: 0; width: max-content; max-width: 280px;
  padding: 8px 10px; border-radius: 6px; background: #1d1f21; color: #f5f5f5; box-shadow: 0 2px 10px rgba(0, 0, 0, .5); }
.wrap.flip .tip { left: auto; right: ${-BADGE_SIZE}px; }
.wrap:hover .tip, .wrap:focus-within .tip { display: block; }
.wrap.dismissed .tip { display: none; }
.tip .title { font-weight: 600; margin: 0 0 4px; }
.tip .line { margin: 0 0 4px; }
.tip .hint { margin: 0; color: #b0bec5; }
`;

let counter = 0;

/** A badge for `verdict` (compact, with reportUrl). `onOpen(url)` opens the report. */
export function createBadge(doc, verdict, onOpen) {
  const info = levelInfo(verdict.level);
  const wrap = doc.createElement('div');
  wrap.className = 'wrap';
  wrap.dataset.level = verdict.level;

  const button = doc.createElement('button');
  button.type = 'button';
  button.className = info.hollow ? 'badge hollow' : 'badge';
  button.style.setProperty('--fill', info.fill);
  button.style.setProperty('--ink', info.ink);
  button.setAttribute('aria-label', accessibleLabel(verdict));
  const tipId = `credence-tip-${(counter += 1)}`;
  button.setAttribute('aria-describedby', tipId);
  button.append(icon(doc, info.icon));

  const tip = doc.createElement('div');
  tip.className = 'tip';
  tip.id = tipId;
  tip.setAttribute('role', 'tooltip');
  const { title, evidence, score } = describe(verdict);
  const add = (cls, text) => {
    if (!text) return;
    const p = doc.createElement('p');
    p.className = cls;
    p.textContent = text;
    tip.append(p);
  };
  add('title', title);
  add('line', evidence);
  add('line', score);
  add('hint', verdict.reportUrl ? 'Click for the full report.' : null);

  // Enter and Space open the report themselves: not every browser turns them into a click here
  // (seen in Firefox); where one does, that click (detail 0) must not open it a second time.
  let keyAt = 0;
  const open = (event) => {
    event.preventDefault();
    event.stopPropagation(); // the page's own handlers (links around images) stay out of it
    if (verdict.reportUrl) onOpen(verdict.reportUrl);
  };
  button.addEventListener('click', (event) => {
    if (event.detail === 0 && Date.now() - keyAt < 1000) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    open(event);
  });
  button.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      keyAt = Date.now();
      open(event);
    } else if (event.key === 'Escape') {
      // Dismiss the tooltip without moving the pointer (WCAG 1.4.13).
      wrap.classList.add('dismissed');
      button.blur();
    }
  });
  wrap.addEventListener('pointerleave', () => wrap.classList.remove('dismissed'));
  button.addEventListener('focus', () => wrap.classList.remove('dismissed'));
  wrap.append(button, tip);
  return wrap;
}
