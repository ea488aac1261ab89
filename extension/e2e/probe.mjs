// Reads what a person sees: which level's badge colour fills the badge spot of each image.
import { BADGE_INSET, BADGE_SIZE, MARK_FILL, MARK_SIZE } from '../src/content/badge.js';
import { LEVELS } from '../src/lib/levels.js';
import { decodePng } from './png.mjs';

const TOLERANCE = 24; // per channel: antialiasing and colour management
const MIN_PIXELS = 60; // of BADGE_SIZE^2 = 484; a badge's fill covers well over 200

const FILLS = Object.entries(LEVELS).map(([level, info]) => [level, hex(info.fill)]);

function hex(colour) {
  const n = Number.parseInt(colour.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** {id: level | 'none'} for image rects {id: {left, top, width, height}} (viewport CSS px, DPR 1). */
export function levelsAt(png, rects) {
  const { width, height, data } = decodePng(png);
  const out = {};
  for (const [id, rect] of Object.entries(rects)) {
    const x0 = Math.round(rect.left + BADGE_INSET);
    const y0 = Math.round(rect.top + BADGE_INSET);
    if (x0 < 0 || y0 < 0 || x0 + BADGE_SIZE > width || y0 + BADGE_SIZE > height) {
      out[id] = 'offscreen';
      continue;
    }
    const counts = Object.fromEntries(FILLS.map(([level]) => [level, 0]));
    for (let y = y0; y < y0 + BADGE_SIZE; y += 1) {
      for (let x = x0; x < x0 + BADGE_SIZE; x += 1) {
        const o = (y * width + x) * 4;
        for (const [level, [r, g, b]] of FILLS) {
          if (Math.abs(data[o] - r) <= TOLERANCE && Math.abs(data[o + 1] - g) <= TOLERANCE
            && Math.abs(data[o + 2] - b) <= TOLERANCE) counts[level] += 1;
        }
      }
    }
    const [best, n] = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];
    out[id] = n >= MIN_PIXELS ? best : 'none';
  }
  return out;
}

/** {id: true | false}: does the badge of each image carry the "you see different bytes" marker? */
export function markersAt(png, rects) {
  const { width, height, data } = decodePng(png);
  const [r, g, b] = hex(MARK_FILL);
  const out = {};
  for (const [id, rect] of Object.entries(rects)) {
    // The marker: a disc over the badge's top-right corner (5 px above it, 7 px into it).
    const x0 = Math.round(rect.left + BADGE_INSET + BADGE_SIZE - 7);
    const y0 = Math.round(rect.top + BADGE_INSET - 5);
    let n = 0;
    for (let y = Math.max(0, y0); y < Math.min(height, y0 + MARK_SIZE); y += 1) {
      for (let x = Math.max(0, x0); x < Math.min(width, x0 + MARK_SIZE); x += 1) {
        const o = (y * width + x) * 4;
        if (Math.abs(data[o] - r) <= TOLERANCE && Math.abs(data[o + 1] - g) <= TOLERANCE
          && Math.abs(data[o + 2] - b) <= TOLERANCE) n += 1;
      }
    }
    out[id] = n >= 30; // of about 80 the disc fills; the glyph and border take the rest
  }
  return out;
}

/**
 * Where `level`'s badge is drawn inside `box` (viewport CSS px): the centre of the pixels of its fill
 * colour there, and how many there are ({x, y, n}; n = 0 when none).
 */
export function fillCentre(png, box, level) {
  const { width, height, data } = decodePng(png);
  const [r, g, b] = hex(LEVELS[level].fill);
  let n = 0;
  let sx = 0;
  let sy = 0;
  for (let y = Math.max(0, Math.floor(box.top)); y < Math.min(height, Math.ceil(box.top + box.height)); y += 1) {
    for (let x = Math.max(0, Math.floor(box.left)); x < Math.min(width, Math.ceil(box.left + box.width)); x += 1) {
      const o = (y * width + x) * 4;
      if (Math.abs(data[o] - r) <= TOLERANCE && Math.abs(data[o + 1] - g) <= TOLERANCE
        && Math.abs(data[o + 2] - b) <= TOLERANCE) {
        n += 1;
        sx += x + 0.5;
        sy += y + 0.5;
      }
    }
  }
  return n ? { x: sx / n, y: sy / n, n } : { x: null, y: null, n: 0 };
}
