// One icon per level (24x24 SVG paths), so the badge is readable without telling colours apart.
const SVG = 'http://www.w3.org/2000/svg';

export const ICONS = Object.freeze({
  cross: [{ d: 'M7 7L17 17M17 7L7 17' }], // known fake
  warning: [{ d: 'M12 4.5L20 18.5H4Z', width: 2 }, { d: 'M12 9.5V13.5M12 15.8V16.2' }], // tampered
  sparkle: [{ d: 'M12 3.5L14.2 9.8L20.5 12L14.2 14.2L12 20.5L9.8 14.2L3.5 12L9.8 9.8Z', fill: true }], // AI declared
  wave: [{ d: 'M4.5 9.5q3.75-3.5 7.5 0t7.5 0M4.5 15q3.75-3.5 7.5 0t7.5 0' }], // likely synthetic
  check: [{ d: 'M6 12.5L10.3 16.8L18 8' }], // verified
  seal: [{ d: 'M12 5.5a6.5 6.5 0 1 1 0 13a6.5 6.5 0 1 1 0-13Z', width: 2 }, { d: 'M12 10.5v3', width: 3 }], // signed
  link: [{ d: 'M10.5 13.5a3.5 3.5 0 0 0 5 0l3-3a3.5 3.5 0 0 0-5-5l-1 1M13.5 10.5a3.5 3.5 0 0 0-5 0l-3 3a3.5 3.5 0 0 0 5 5l1-1', width: 2 }], // recovered
  dash: [{ d: 'M7 12H17' }], // no evidence
  slash: [{ d: 'M12 5.5a6.5 6.5 0 1 1 0 13a6.5 6.5 0 1 1 0-13ZM7.4 7.4L16.6 16.6', width: 2 }], // unavailable
  stream: [{ d: 'M4.5 7h15v10h-15Z', width: 2 }, { d: 'M10.5 9.8v4.4l3.8-2.2Z', fill: true }], // streamed video
  question: [{ d: 'M9 9.3a3 3 0 1 1 4.6 2.5c-1 .6-1.6 1.2-1.6 2.4M12 17.2v.3' }], // unknown (privacy mode)
});

const drawn = new WeakMap(); // document -> Map(name -> <svg>): built once, cloned for each badge

/** An <svg> drawing `name` in currentColor (a copy: a page of badges builds each icon once). */
export function icon(doc, name) {
  let icons = drawn.get(doc);
  if (!icons) drawn.set(doc, (icons = new Map()));
  if (!icons.has(name)) icons.set(name, build(doc, name));
  return icons.get(name).cloneNode(true);
}

function build(doc, name) {
  const svg = doc.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const part of ICONS[name] ?? ICONS.slash) {
    const path = doc.createElementNS(SVG, 'path');
    path.setAttribute('d', part.d);
    if (part.fill) {
      path.setAttribute('fill', 'currentColor');
    } else {
      path.setAttribute('fill', 'none');
      path.setAttribute('stroke', 'currentColor');
      path.setAttribute('stroke-width', String(part.width ?? 3));
      path.setAttribute('stroke-linecap', 'round');
      path.setAttribute('stroke-linejoin', 'round');
    }
    svg.append(path);
  }
  return svg;
}
