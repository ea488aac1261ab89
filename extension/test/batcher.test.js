import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Batcher } from '../src/lib/batcher.js';

test('keys added within the window go out in one batch', async () => {
  const batches = [];
  const b = new Batcher({ run: async (keys) => batches.push(keys), windowMs: 20 });
  b.add(['a', 'b']);
  b.add(['c', 'a']);
  assert.equal(batches.length, 0, 'waits for the window');
  await new Promise((r) => setTimeout(r, 60));
  await b.idle();
  assert.deepEqual(batches, [['a', 'b', 'c']]);
});

test('a full batch goes at once; the remainder waits for the window', async () => {
  const batches = [];
  const b = new Batcher({ run: async (keys) => batches.push(keys.length), windowMs: 10_000, max: 100 });
  b.add(Array.from({ length: 230 }, (_, i) => i));
  await Promise.resolve();
  await Promise.all(b.running);
  assert.deepEqual(batches, [100, 100]);
  await b.idle();
  assert.deepEqual(batches, [100, 100, 30]);
});

test('a key in flight is not sent again; a failing batch does not stop the next', async () => {
  const seen = [];
  let release;
  const gate = new Promise((r) => { release = r; });
  const b = new Batcher({
    run: async (keys) => {
      seen.push(keys);
      if (seen.length === 1) {
        await gate;
        throw new Error('server down');
      }
    },
    windowMs: 1,
  });
  b.add(['x']);
  b.flush();
  assert.equal(b.add(['x']), 0, 'in flight');
  release();
  await b.idle();
  assert.equal(b.add(['x']), 1, 'after the batch, it may be asked again');
  await b.idle();
  assert.deepEqual(seen, [['x'], ['x']]);
});

test('a page adding keys one by one keeps the window open, up to maxWaitMs after the first', () => {
  const timers = [];
  let clock = 0;
  const batches = [];
  const b = new Batcher({
    run: (keys) => batches.push(keys), windowMs: 150, maxWaitMs: 600, now: () => clock,
    setTimer: (fn, ms) => { timers.push({ fn, ms, live: true }); return timers.length - 1; },
    clearTimer: (id) => { timers[id].live = false; },
  });
  b.add(['a']);
  clock = 100;
  b.add(['b']);
  clock = 200;
  b.add(['b']); // nothing new: the window is not extended
  clock = 500;
  b.add(['c']);
  const live = timers.filter((t) => t.live);
  assert.equal(live.length, 1);
  assert.deepEqual(timers.map((t) => t.ms), [150, 150, 100], 'the last one ends 600 ms after the first key');
});

test('with holdMs, a partial batch waits while another is out: sent when it returns, or when the hold ends', async () => {
  const timers = [];
  let clock = 0;
  const batches = [];
  let release;
  const b = new Batcher({
    run: (keys) => { batches.push(keys); return new Promise((r) => { release = r; }); },
    windowMs: 150, maxWaitMs: 600, holdMs: 3000, now: () => clock,
    setTimer: (fn, ms) => { timers.push({ fn, ms, live: true }); return timers.length - 1; },
    clearTimer: (id) => { timers[id].live = false; },
  });
  const fire = async () => {
    const t = timers.filter((x) => x.live).at(-1);
    t.live = false;
    t.fn();
    await new Promise((r) => setTimeout(r, 0));
  };
  b.add(['a', 'b']);
  await fire(); // nothing out: the first batch goes when its window ends
  assert.deepEqual(batches, [['a', 'b']]);
  clock = 500;
  b.add(['c']);
  await fire(); // the window ends while the first batch is out: held
  assert.equal(batches.length, 1);
  assert.equal(timers.filter((x) => x.live).at(-1).ms, 3000, 'the hold ends 3 s after its first key');
  release();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(batches, [['a', 'b'], ['c']], 'sent as soon as the one out returned');
  clock = 1000;
  b.add(['d']);
  clock = 4500;
  await fire(); // still out (c), but held longer than holdMs: goes now
  assert.deepEqual(batches.at(-1), ['d']);
});
