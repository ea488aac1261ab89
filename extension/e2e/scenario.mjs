// One end-to-end run in a real browser, the same for Chromium and Firefox: open the test page,
// watch badges appear (read from screenshot pixels, as a person sees them), add images, scroll to
// lazy ones, attack the badges from the page, open a report, and record what happened.
// Assertions live in tests/test_extension.py; this file only observes and reports.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { BADGE_GAP, BADGE_INSET, BADGE_SIZE } from '../src/content/badge.js';
import { fillCentre, levelsAt, markersAt } from './probe.mjs';

const WAIT_MS = 30000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function mark(config, name) {
  // The recording proxy in front of the server logs this, so the test knows what came before.
  await fetch(`${config.proxy}/__mark/${name}`).catch(() => {});
}

async function rectsOf(page, ids) {
  return page.evaluate((list) => Object.fromEntries(list.map((id) => {
    const r = document.getElementById(id).getBoundingClientRect();
    return [id, { left: r.left, top: r.top, width: r.width, height: r.height }];
  })), ids);
}

/**
 * Probe until every image shows its expected level (or time runs out); returns what was seen, of the
 * `probed` images (the expected ones by default) in the same screenshot.
 */
async function waitForLevels(browser, page, expected, timeoutMs = WAIT_MS, probed = Object.keys(expected)) {
  const ids = Object.keys(expected);
  const started = Date.now();
  let seen = {};
  while (Date.now() - started < timeoutMs) {
    seen = levelsAt(await browser.screenshot(page), await rectsOf(page, probed));
    if (ids.every((id) => seen[id] === expected[id])) break;
    await sleep(250);
  }
  return { seen, ms: Date.now() - started };
}

async function badgeCentre(page, id) {
  const r = (await rectsOf(page, [id]))[id];
  return { x: r.left + BADGE_INSET + BADGE_SIZE / 2, y: r.top + BADGE_INSET + BADGE_SIZE / 2 };
}

export async function mainRun(browser, run, config, out) {
  const page = await browser.open(run.pageUrl);
  const t0 = Date.now();

  // 1. Badges on what is in view, of the right level; tiny and hidden images get none.
  const first = await waitForLevels(browser, page, run.initial);
  out.initial = first.seen;
  out.timings.initial_ms = Date.now() - t0;
  out.skipped = levelsAt(await browser.screenshot(page), await rectsOf(page, run.skipped));

  // 2. Images added by a script, after the browser stopped the extension's worker (Chromium: as it
  // does when idle): the next message starts a fresh one, which works from storage alone.
  if (browser.stopWorker) out.workerRestarted = await browser.stopWorker(page);
  await mark(config, 'before-dynamic');
  await page.evaluate(() => window.addImages());
  out.dynamic = (await waitForLevels(browser, page, run.dynamic)).seen;
  out.timings.dynamic_ms = Date.now() - t0;
  if (browser.workers) out.workerStarts = browser.workers.started;

  // 3. Lazy images, once scrolled into view.
  await mark(config, 'before-lazy');
  await page.evaluate(() => document.getElementById('lazy').scrollIntoView({ block: 'center' }));
  out.lazy = (await waitForLevels(browser, page, run.lazy)).seen;
  out.timings.lazy_ms = Date.now() - t0;
  await page.evaluate(() => window.scrollTo(0, 0));
  await sleep(300);

  // 4. The artifact: the page with its badges and one tooltip open (mouse over a badge).
  // The most telling tooltip there is: a known fake's if the page has one.
  const hoverId = ['known-fake', 'no-evidence'].map((level) => Object.keys(run.initial).find((id) => run.initial[id] === level))
    .find(Boolean);
  const centre = await badgeCentre(page, hoverId);
  await browser.mouseMove(page, centre.x, centre.y);
  await sleep(300);
  writeFileSync(join(config.artifacts, run.screenshot), await browser.screenshot(page));
  await browser.mouseMove(page, 1270, 790);
  await sleep(200);

  // 5. Keyboard: Tab reaches a badge (the page sees only the host element focused), Enter opens the report.
  await mark(config, 'before-report');
  out.keyboardReport = await browser.waitForNewPage(/\/desk\/(media|checks)\//, async () => {
    await page.evaluate(() => document.activeElement?.blur());
    await browser.press(page, 'Tab');
    out.focused = await page.evaluate(() => document.activeElement?.localName ?? null);
    await browser.press(page, 'Enter');
  });
  // Back to the page; Escape dismisses the focused badge's tooltip and takes the focus away.
  await browser.bringToFront(page);
  await browser.press(page, 'Escape');
  out.focusedAfterEscape = await page.evaluate(() => document.activeElement?.localName ?? null);
  // Mouse: clicking the unavailable badge opens that check's report.
  const brokenId = Object.keys(run.initial).find((id) => run.initial[id] === 'unavailable');
  const brokenCentre = await badgeCentre(page, brokenId);
  out.clickReport = await browser.waitForNewPage(/\/desk\/(media|checks)\//, async () => {
    await browser.click(page, brokenCentre.x, brokenCentre.y);
  });
  await browser.bringToFront(page);
  await browser.mouseMove(page, 1270, 790);

  // 6. The page attacks its badges with everything its DOM lets it reach.
  await mark(config, 'before-attack');
  out.attack = await page.evaluate(() => window.attackBadges());
  await sleep(800);
  out.afterAttack = (await waitForLevels(browser, page, run.initial, 5000)).seen;
  out.afterAttackPage = await page.evaluate(() => window.inspectBadges());
  if (browser.inspectShadow) out.shadow = await browser.inspectShadow(page);
  await page.evaluate(() => window.endAttack());

  return page;
}

/** Privacy mode: badges still come, and the proxy log (checked by pytest) holds no URL. */
export async function privacyRun(browser, run, out) {
  const page = await browser.open(run.pageUrl);
  const t0 = Date.now();
  out.initial = (await waitForLevels(browser, page, run.initial)).seen;
  out.timings.initial_ms = Date.now() - t0;
  writeFileSync(join(run.artifacts, run.screenshot), await browser.screenshot(page));
}

/**
 * Privacy mode's uploads: the proxy holds the server's answer to one image's upload (`run.held`); the
 * others' badges must show while it is out, and its own once the scenario releases it.
 */
export async function uploadsRun(browser, run, config, out) {
  const page = await browser.open(run.pageUrl);
  const t0 = Date.now();
  const others = Object.fromEntries(Object.entries(run.expected).filter(([id]) => id !== run.held));
  out.beforeRelease = (await waitForLevels(browser, page, others, WAIT_MS, Object.keys(run.expected))).seen;
  out.timings.others_ms = Date.now() - t0;
  await mark(config, 'others-shown');
  await fetch(`${config.proxy}/__release`);
  out.after = (await waitForLevels(browser, page, run.expected)).seen;
  out.timings.all_ms = Date.now() - t0;
  writeFileSync(join(run.artifacts, run.screenshot), await browser.screenshot(page));
}

export function save(config, results) {
  writeFileSync(config.output, JSON.stringify(results, null, 2));
}

/** Probe until every element shows some badge (whatever level the server decides); returns what was seen. */
async function waitForBadges(browser, page, ids, timeoutMs = WAIT_MS) {
  const started = Date.now();
  let seen = {};
  while (Date.now() - started < timeoutMs) {
    seen = levelsAt(await browser.screenshot(page), await rectsOf(page, ids));
    if (ids.every((id) => !['none', 'offscreen'].includes(seen[id]))) break;
    await sleep(250);
  }
  return { seen, ms: Date.now() - started };
}

/** The spot of a video poster's badge: beside the video's (a box as levelsAt takes it). */
function posterSpot(rect) {
  return { ...rect, left: rect.left + BADGE_SIZE + BADGE_GAP };
}

/** {video, poster}: the levels drawn at video `id`'s badge spot and at its poster's, beside it. */
async function videoAndPoster(browser, page, id) {
  const rect = (await rectsOf(page, [id]))[id];
  const seen = levelsAt(await browser.screenshot(page), { video: rect, poster: posterSpot(rect) });
  return { video: seen.video, poster: seen.poster };
}

/**
 * Videos: badges on <video src>, <video> with <source> children, a blob: one and a MediaSource one
 * (these two "not checkable"); the poster of <video src> gets its own badge beside the video's until
 * the video plays; the badge stays on a playing video and follows it when it is resized and scrolled;
 * a video added later and a video whose source changes (its poster shown again) are checked.
 */
export async function videoRun(browser, run, config, out) {
  const page = await browser.open(run.pageUrl);
  const t0 = Date.now();
  const ids = ['vsrc', 'vsources', 'vblob', 'vmse'];
  out.initial = (await waitForBadges(browser, page, ids, 2 * WAIT_MS)).seen;
  out.timings.initial_ms = Date.now() - t0;
  out.states = await page.evaluate(() => window.videoStates());
  // The poster, shown until the video plays: its own badge beside the video's, the poster image's level.
  out.poster = await until(() => videoAndPoster(browser, page, 'vsrc'), (s) => s.poster === run.posterLevel, WAIT_MS);
  out.posterLabels = browser.inspectShadow ? (await browser.inspectShadow(page))[0]?.badges.filter((b) => b.poster) : null;
  writeFileSync(join(run.artifacts, run.screenshot.replace('extension-', 'extension-poster-')), await browser.screenshot(page));

  // Playing: the badge is still there over the moving picture; the poster's is gone.
  out.play = await page.evaluate(() => window.playVideo());
  out.playing = levelsAt(await browser.screenshot(page), await rectsOf(page, ['vsrc'])).vsrc;
  out.posterPlaying = await until(() => videoAndPoster(browser, page, 'vsrc'), (s) => s.poster === 'none', 5000);
  writeFileSync(join(run.artifacts, run.screenshot), await browser.screenshot(page));

  // Resized and scrolled: the badge follows the video's new corner.
  const before = (await rectsOf(page, ['vsrc'])).vsrc;
  await page.evaluate(() => {
    const v = document.getElementById('vsrc');
    v.width = 400;
    v.height = 225;
    v.style.marginLeft = '60px';
    window.scrollBy(0, 40);
  });
  const after = (await rectsOf(page, ['vsrc'])).vsrc;
  out.moved = await until(async () => {
    const png = await browser.screenshot(page);
    return { from: before, to: after, level: levelsAt(png, { vsrc: after }).vsrc, oldCorner: levelsAt(png, { vsrc: before }).vsrc };
  }, (m) => !['none', 'offscreen'].includes(m.level) && m.oldCorner === 'none', 5000);
  await page.evaluate(() => window.scrollTo(0, 0));

  // A video added by a script.
  await mark(config, 'before-dynamic');
  await page.evaluate(() => window.addVideo());
  out.dynamic = (await waitForBadges(browser, page, ['vdyn'], 2 * WAIT_MS)).seen;

  // The player switches to another file: the badge goes, and comes back with the new file's verdict.
  await mark(config, 'before-swap');
  await page.evaluate(() => window.swapSource());
  await sleep(300);
  out.swapped = (await waitForBadges(browser, page, ['vsrc'], 2 * WAIT_MS)).seen;
  out.swappedSrc = await page.evaluate(() => document.getElementById('vsrc').currentSrc);
  // A new load shows the poster again: its badge comes back (its verdict known, nothing sent).
  out.posterAfterSwap = await until(() => videoAndPoster(browser, page, 'vsrc'),
    (s) => s.poster === run.posterLevel, 10000);

  // The player's fullscreen button (a real click: fullscreen needs a user's gesture), then back.
  await page.evaluate(() => window.scrollTo(0, 0));
  const button = (await rectsOf(page, ['full'])).full;
  await browser.click(page, button.left + button.width / 2, button.top + button.height / 2);
  await sleep(800);
  out.fullscreen = await page.evaluate(() => ({ element: document.fullscreenElement?.id ?? null,
    ...(window.fullscreenError ? { error: window.fullscreenError } : {}) }));
  out.fullscreen.level = levelsAt(await browser.screenshot(page), await rectsOf(page, ['vsrc'])).vsrc;
  writeFileSync(join(run.artifacts, `fullscreen-${run.screenshot}`), await browser.screenshot(page));
  await page.evaluate(() => document.fullscreenElement && document.exitFullscreen());
  await sleep(800);
  out.fullscreen.after = levelsAt(await browser.screenshot(page), await rectsOf(page, ['vsrc'])).vsrc;
  // The popup's rows (where automation can open it) say which one is the poster.
  if (browser.readPopup) out.popup = await browser.readPopup(run.pageUrl);
  out.timings.total_ms = Date.now() - t0;
  return page;
}

/** Probe the page's own spots (window.spots(): shadow roots, iframes...) until they show `expected`. */
async function waitForSpots(browser, page, expected, timeoutMs = WAIT_MS) {
  const ids = Object.keys(expected);
  const started = Date.now();
  let seen = {};
  while (Date.now() - started < timeoutMs) {
    const spots = await page.evaluate(() => window.spots());
    seen = levelsAt(await browser.screenshot(page), Object.fromEntries(ids.map((id) => [id, spots[id]])));
    if (ids.every((id) => seen[id] === expected[id])) break;
    await sleep(250);
  }
  return { seen, ms: Date.now() - started };
}

/** Read `fn` until `test` passes or time runs out; returns the last reading (the test judges it). */
export async function until(fn, test, timeoutMs) {
  const started = Date.now();
  let value = await fn();
  while (!test(value) && Date.now() - started < timeoutMs) {
    await sleep(250);
    value = await fn();
  }
  return value;
}

/**
 * Hardening: badges on an open shadow root's image, in a same-origin and a cross-origin iframe, on a
 * CSS background and in a clipped slider (no orphan badge outside it); then a page covering a badge
 * from the top layer, and a page removing every node it did not create. Where the browser lets
 * automation read it (Chromium), the toolbar action and the popup are read too.
 */
export async function hardeningRun(browser, run, out) {
  const page = await browser.open(run.pageUrl);
  const t0 = Date.now();
  out.features = (await waitForSpots(browser, page, run.expected)).seen;
  out.timings.features_ms = Date.now() - t0;
  writeFileSync(join(run.artifacts, run.screenshot), await browser.screenshot(page));
  if (browser.action) {
    out.action = await until(() => browser.action(run.pageUrl), (a) => a.title.includes(`${Object.keys(run.expected).length - 1} images`), 5000);
  }

  // The slider moves: slide 1's badge moves into its visible part, slide 2 (now partly in) gets one.
  await page.evaluate(() => window.slide());
  out.slid = (await waitForSpots(browser, page, run.slid)).seen;

  // A fake green badge over a real one, from the top layer: the action says the page covers badges.
  await page.evaluate(() => window.cover());
  await sleep(1500);
  out.covered = levelsAt(await browser.screenshot(page), { cov: (await page.evaluate(() => window.spots())).cov }).cov;
  if (browser.action) out.actionCovered = await until(() => browser.action(run.pageUrl), (a) => a.text === '!', 5000);

  // A page removing every node it did not create: re-attached with backoff, then the action warns.
  const hostile = await browser.open(run.hostileUrl);
  await sleep(run.hostileWatchMs);
  out.hostileRemovals = await hostile.evaluate(() => window.removals);
  out.hostileSeen = levelsAt(await browser.screenshot(hostile), await hostile.evaluate(() => window.spots()));
  if (browser.action) {
    out.hostileAction = await until(() => browser.action(run.hostileUrl), (a) => a.text === '!', 5000);
    out.hostilePopup = await until(() => browser.readPopup(run.hostileUrl),
      (p) => p.groups.reduce((n, g) => n + g.count, 0) >= Object.keys(run.hostileExpected).length, 10000);
  }
  out.timings.total_ms = Date.now() - t0;
}

/**
 * Cloaking: a site that gives Credence's fetcher other bytes than the reader's browser (by User-Agent,
 * by cookie, by Referer). The badge says "you see different bytes" (its marker, read from pixels) and shows the
 * verdict of what the browser shows; an image served the same to both has no marker.
 */
export async function cloakRun(browser, run, out) {
  const page = await browser.open(run.pageUrl);
  const t0 = Date.now();
  const ids = Object.keys(run.expected);
  const want = (seen, marks) => ids.every((id) => seen[id] === run.expected[id] && marks[id] === run.marked.includes(id));
  let seen = {};
  let marks = {};
  while (Date.now() - t0 < 2 * WAIT_MS) {
    const png = await browser.screenshot(page);
    const rects = await rectsOf(page, ids);
    seen = levelsAt(png, rects);
    marks = markersAt(png, rects);
    if (want(seen, marks)) break;
    await sleep(250);
  }
  out.levels = seen;
  out.marked = ids.filter((id) => marks[id]);
  out.timings.flagged_ms = Date.now() - t0;
  // The image turned 90° clockwise: its own top-left corner is its box's top-right one.
  const box = (await rectsOf(page, ['rot'])).rot;
  const turnedCorner = { ...box, left: box.left + box.width - 2 * BADGE_INSET - BADGE_SIZE };
  out.rotated = levelsAt(await browser.screenshot(page), { turned: turnedCorner, box });
  // An image turned 30° by its two ancestors: the badge found in the pixels of its box, and the image's
  // own quad as the browser lays it out (its first point: the image's own top-left corner).
  const parentTurned = (await rectsOf(page, ['prot'])).prot;
  const png = await browser.screenshot(page);
  out.parentRotated = {
    box: parentTurned, quad: await browser.quad(page, '#prot'),
    badge: fillCentre(png, parentTurned, run.expected.plain), boxCorner: levelsAt(png, { prot: parentTurned }).prot,
  };
  // An image seen through perspective: the badge on the image, where the box's corner is not.
  const seenThrough = (await rectsOf(page, ['persp'])).persp;
  out.perspective = {
    box: seenThrough, quad: await browser.quad(page, '#persp'),
    badge: fillCentre(png, seenThrough, run.expected.plain), boxCorner: levelsAt(png, { persp: seenThrough }).persp,
  };
  out.cookie = await page.evaluate(() => document.cookie);
  if (browser.inspectShadow) out.shadow = await browser.inspectShadow(page);
  // The tooltip of a flagged badge, as a reader hovers it (the artifact).
  const r = (await rectsOf(page, [run.marked[0]]))[run.marked[0]];
  await browser.mouseMove(page, r.left + BADGE_INSET + BADGE_SIZE / 2, r.top + BADGE_INSET + BADGE_SIZE / 2);
  await sleep(300);
  writeFileSync(join(run.artifacts, run.screenshot), await browser.screenshot(page));
}
