import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DEFAULTS } from '../src/lib/defaults.js';
import { loadSettings, normalise, saveSettings, shouldScan, validServer, withSite } from '../src/lib/settings.js';
import { FakeArea } from './fakes.js';

test('defaults: privacy off, private windows skipped', () => {
  const s = normalise(undefined);
  assert.equal(s.server, 'http://127.0.0.1:8080');
  assert.equal(s.mode, 'all');
  assert.equal(s.skipPrivate, true);
  assert.equal(s.privacy, false);
  assert.ok(Object.isFrozen(DEFAULTS));
});

test('bad stored values fall back to defaults', () => {
  const s = normalise({ mode: 'sometimes', server: 'http://x.test///', sites: 'nope', privacy: 'yes' });
  assert.equal(s.mode, 'all');
  assert.equal(s.server, 'http://x.test');
  assert.deepEqual(s.sites, {});
  assert.equal(s.privacy, true);
});

test('scanning decision: modes, per-site switch, private windows', () => {
  const base = normalise({});
  assert.equal(shouldScan(base, 'a.test'), true);
  assert.equal(shouldScan(base, 'a.test', { incognito: true }), false);
  assert.equal(shouldScan({ ...base, skipPrivate: false }, 'a.test', { incognito: true }), true);
  assert.equal(shouldScan(withSite(base, 'a.test', false), 'a.test'), false);
  assert.equal(shouldScan(withSite(base, 'a.test', false), 'b.test'), true);
  const onlyOn = normalise({ mode: 'only-on' });
  assert.equal(shouldScan(onlyOn, 'a.test'), false);
  assert.equal(shouldScan(withSite(onlyOn, 'a.test', true), 'a.test'), true);
  assert.equal(shouldScan(normalise({ mode: 'off', sites: { 'a.test': true } }), 'a.test'), false);
});

test('the site switch stores only exceptions to the mode', () => {
  const s = normalise({});
  assert.deepEqual(withSite(withSite(s, 'a.test', false), 'a.test', true).sites, {});
  assert.deepEqual(withSite(normalise({ mode: 'only-on' }), 'a.test', true).sites, { 'a.test': true });
});

test('settings round-trip through storage.local', async () => {
  const storage = { local: new FakeArea() };
  assert.equal((await loadSettings(storage)).mode, 'all');
  await saveSettings(storage, { privacy: true, apiKey: ' cred_k ' });
  const s = await loadSettings(storage);
  assert.equal(s.privacy, true);
  assert.equal(s.apiKey, 'cred_k');
});

test('server URL validation', () => {
  assert.equal(validServer('https://credence.example.org/'), 'https://credence.example.org');
  assert.equal(validServer(' http://127.0.0.1:8080 '), 'http://127.0.0.1:8080');
  for (const bad of ['ftp://x', 'javascript:alert(1)', 'http://user:pw@x', 'http://x/?q=1', 'nonsense']) {
    assert.equal(validServer(bad), null, bad);
  }
});
