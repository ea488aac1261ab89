import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { ICONS } from '../src/content/icons.js';
import { levelInfo, LEVELS, LOCAL_LEVELS, ORDER, rank } from '../src/lib/levels.js';

// The server's table is the source of truth: read it from server/verdicts.py.
const verdicts = readFileSync(new URL('../../server/verdicts.py', import.meta.url), 'utf8');
const serverLevels = [...verdicts.matchAll(/^\s+[A-Z_]+ = "([a-z-]+)"$/gm)].map((m) => m[1]);
const serverBadges = Object.fromEntries(
  [...verdicts.matchAll(/Level\.([A-Z_]+): \("([a-z]+)", "([^"]+)"\)/g)]
    .map(([, name, colour]) => [name.toLowerCase().replaceAll('_', '-'), colour]),
);

test('every server level, in the server priority order, with the server badge colour', () => {
  assert.ok(serverLevels.length >= 8);
  assert.deepEqual(ORDER.filter((l) => !LOCAL_LEVELS.includes(l)), serverLevels);
  for (const level of serverLevels) assert.equal(LEVELS[level].badge, serverBadges[level], level);
});

test('each level has its own colour and its own icon (usable without colour vision)', () => {
  const fills = ORDER.map((l) => LEVELS[l].fill);
  const icons = ORDER.map((l) => LEVELS[l].icon);
  assert.equal(new Set(fills).size, ORDER.length);
  assert.equal(new Set(icons).size, ORDER.length);
  for (const name of icons) assert.ok(ICONS[name], name);
});

test('unknown input shows as "could not check"; ranks follow priority', () => {
  assert.equal(levelInfo('nonsense'), LEVELS.unavailable);
  assert.ok(rank('known-fake') < rank('no-evidence'));
  assert.ok(rank('unavailable') < rank('nonsense'));
});

test('the extension\'s own levels come after every server level and never look like one', () => {
  for (const level of LOCAL_LEVELS) {
    assert.ok(!serverLevels.includes(level), level);
    assert.ok(rank(level) > rank('unavailable'), level);
    assert.equal(LEVELS[level].hollow, true, level);
  }
  assert.match(levelInfo('not-checkable').words, /streamed/);
});
