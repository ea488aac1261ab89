// The popup's view of a page: images grouped by level, most important level first.
import { levelInfo, rank } from './levels.js';

/** [{level, short, items}] with items sorted by URL, groups by level priority. */
export function groupByLevel(images) {
  const groups = new Map();
  for (const image of images) {
    if (!groups.has(image.level)) groups.set(image.level, []);
    groups.get(image.level).push(image);
  }
  return [...groups]
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([level, items]) => ({
      level,
      short: levelInfo(level).short,
      items: items.sort((x, y) => String(x.url).localeCompare(String(y.url))),
    }));
}

/** A URL short enough for one popup line: host, the end of the path, the end of the query (rows
 * of URLs that differ only there must not look the same). */
export function shortUrl(url) {
  try {
    const u = new URL(url);
    const query = u.search.length > 17 ? `?…${u.search.slice(-16)}` : u.search;
    if (u.pathname.length <= 40) return `${u.host}${u.pathname}${query}`;
    const file = u.pathname.split('/').filter(Boolean).pop() ?? '';
    return `${u.host}/…/${file.length > 40 ? `${file.slice(0, 18)}…${file.slice(-18)}` : file}${query}`;
  } catch {
    return String(url).slice(0, 60);
  }
}
