import assert from 'node:assert/strict';
import { test } from 'node:test';

import { actionLook, levelCounts, mergeFrames, nextFrameState, WARNING } from '../src/lib/tabstate.js';

const img = (url, level, count = 1) => ({ url, level, count });

test('frames merge by URL; counts add up; warnings are kept once', () => {
  const merged = mergeFrames({
    0: { images: [img('https://a/1.jpg', 'no-evidence'), img('https://a/2.jpg', 'ai-declared')], pending: 1 },
    7: { images: [img('https://a/1.jpg', 'no-evidence', 2)], warning: 'removed', pending: 2 },
    9: { images: [], warning: 'removed' },
  });
  assert.deepEqual(merged.images.map((i) => [i.url, i.count]), [['https://a/1.jpg', 3], ['https://a/2.jpg', 1]]);
  assert.deepEqual(merged.warnings, ['removed']);
  assert.equal(merged.pending, 3);
});

test('the action shows the worst level: its colour, its count, every count in the title', () => {
  const images = [img('1', 'no-evidence'), img('2', 'no-evidence'), img('3', 'known-fake'), img('4', 'verified')];
  assert.deepEqual(levelCounts(images), [['known-fake', 1], ['verified', 1], ['no-evidence', 2]]);
  const look = actionLook({ images, warnings: [], pending: 0 });
  assert.equal(look.text, '1');
  assert.equal(look.color, '#c62828');
  assert.equal(look.title, 'Credence: 4 images checked: 1 known fake, 1 verified credentials, 2 no evidence either way.');
});

test('a page that hides or covers badges turns the action into a warning', () => {
  const look = actionLook({ images: [img('1', 'ai-declared')], warnings: ['This page draws over them.'], pending: 0 });
  assert.equal(look.text, '!');
  assert.ok(look.title.startsWith(`Credence warning: ${WARNING} This page draws over them. Credence: 1 image`), look.title);
  assert.ok(look.title.includes('1 declared ai-made'), look.title);
});

test('nothing checked yet: no badge text', () => {
  assert.deepEqual(actionLook({ images: [], warnings: [], pending: 0 }),
    { text: '', color: '#616161', title: 'Credence: no images checked on this page yet.' });
});

test('a frame reports every row once, then only the rows that changed', () => {
  const row = (id, url, level, count = 1) => ({ id, url, level, count });
  const first = nextFrameState(undefined, {
    state: { images: [row(1, 'a', 'no-evidence'), row(2, 'b', 'verified')], pending: 3, warning: null, seq: 1 },
  });
  assert.deepEqual(first.images.map((r) => r.url), ['a', 'b']);
  // Row 2 changed (a second image shows it), row 1 went (its verdict was dropped), row 3 is new.
  const next = nextFrameState(first, {
    base: 1, removed: [1],
    state: { images: [row(2, 'b', 'verified', 2), row(3, 'c', 'known-fake')], pending: 0, warning: 'w', seq: 2 },
  });
  assert.deepEqual(next.images.map((r) => [r.url, r.count]), [['b', 2], ['c', 1]]);
  assert.equal(next.pending, 0);
  assert.equal(next.warning, 'w');
  assert.equal(next.seq, 2);
  assert.deepEqual(mergeFrames({ 0: next }).images.map((r) => r.url), ['b', 'c']);
  // A change that does not follow the held report (one was lost, or a navigation cleared the tab): none.
  assert.equal(nextFrameState(next, { base: 1, removed: [], state: { images: [], seq: 3 } }), null);
  assert.equal(nextFrameState(undefined, { base: 2, removed: [], state: { images: [], seq: 3 } }), null);
  // Every row again replaces what was held.
  assert.deepEqual(nextFrameState(next, { state: { images: [row(4, 'd', 'tampered')], seq: 9 } }).images.map((r) => r.url), ['d']);
});
