// What the toolbar action and the popup show for a tab: the images every frame of it reported,
// merged, and whether any frame saw the page hide or cover the badges. The action and the popup are
// browser chrome, out of the page's reach: they are the reference a reader can trust.
import { levelInfo, rank } from './levels.js';

export const WARNING = "This page hides or covers Credence's badges: trust this list, not the page.";
const NEUTRAL = '#616161';
const WARN_FILL = '#f9a825';

/** One list for the whole tab: frames' images merged by URL (counts add up), warnings joined. */
export function mergeFrames(frames) {
  const byUrl = new Map();
  const warnings = new Set();
  let pending = 0;
  for (const state of Object.values(frames ?? {})) {
    if (!state) continue;
    pending += state.pending ?? 0;
    if (state.warning) warnings.add(state.warning);
    for (const image of state.images ?? []) {
      const seen = byUrl.get(image.url);
      if (seen) seen.count += image.count ?? 0;
      else byUrl.set(image.url, { ...image, count: image.count ?? 0 });
    }
  }
  return { images: [...byUrl.values()], warnings: [...warnings], pending };
}

/**
 * A frame's state once its 'frame-state' message is applied to the one the worker holds (`held`):
 * the message's own state when it carries every row; else (it names the report it follows, `base`)
 * the held rows with its changed ones put in (by row id) and its `removed` ids taken out. Null when
 * the held state is not the one it follows (lost, cleared by a navigation): the frame must send all.
 */
export function nextFrameState(held, message) {
  const { state } = message;
  if (message.base === undefined) return state;
  if (!held || held.seq !== message.base) return null;
  const rows = new Map((held.images ?? []).map((row) => [row.id, row]));
  for (const id of message.removed ?? []) rows.delete(id);
  for (const row of state.images ?? []) rows.set(row.id, row);
  return { ...state, images: [...rows.values()] };
}

/** Counts per level, most important level first: [[level, n], ...]. */
export function levelCounts(images) {
  const counts = new Map();
  for (const image of images) counts.set(image.level, (counts.get(image.level) ?? 0) + 1);
  return [...counts].sort(([a], [b]) => rank(a) - rank(b));
}

/**
 * The toolbar action for a merged tab state: badge text, colour and title. The colour is the worst
 * level's, the text how many images have it; a warning turns the text into "!".
 */
export function actionLook(merged) {
  const counts = levelCounts(merged.images);
  const words = counts.map(([level, n]) => `${n} ${levelInfo(level).short.toLowerCase()}`).join(', ');
  const total = merged.images.length;
  let title = total ? `Credence: ${total} image${total === 1 ? '' : 's'} checked: ${words}.`
    : 'Credence: no images checked on this page yet.';
  if (merged.pending) title += ` Checking ${merged.pending} more.`;
  if (merged.warnings.length) {
    return { text: '!', color: WARN_FILL, title: `Credence warning: ${WARNING} ${merged.warnings.join(' ')} ${title}` };
  }
  if (!counts.length) return { text: '', color: NEUTRAL, title };
  const [worst, n] = counts[0];
  const info = levelInfo(worst);
  return { text: String(n), color: info.hollow ? NEUTRAL : info.fill, title };
}
