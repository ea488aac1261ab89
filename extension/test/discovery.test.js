import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bigEnough, checkableUrl, imageUrl, isImg, looksVisible, MIN_SIDE } from '../src/content/discovery.js';

test('currentSrc wins over src (srcset and <picture> pick what is shown)', () => {
  assert.equal(imageUrl({ currentSrc: 'https://a/2x.jpg', src: 'https://a/fallback.jpg' }), 'https://a/2x.jpg');
  assert.equal(imageUrl({ currentSrc: '', src: 'https://a/x.jpg' }), 'https://a/x.jpg');
  assert.equal(imageUrl({ currentSrc: '', src: '' }), '');
});

test('http(s) always; data: and blob: only in privacy mode; nothing else', () => {
  assert.ok(checkableUrl('https://a.test/x.jpg'));
  assert.ok(checkableUrl('http://a.test/x.jpg'));
  assert.ok(!checkableUrl('data:image/png;base64,AA'));
  assert.ok(!checkableUrl('blob:https://a.test/1'));
  assert.ok(checkableUrl('data:image/png;base64,AA', { privacy: true }));
  assert.ok(checkableUrl('blob:https://a.test/1', { privacy: true }));
  for (const url of ['data:text/html,hi', 'file:///etc/passwd', 'chrome://settings', 'javascript:1', 'ftp://x/y.jpg']) {
    assert.ok(!checkableUrl(url, { privacy: true }), url);
  }
});

test('tiny images (on screen or in their own pixels) are skipped; broken ones count by their box', () => {
  const loaded = (w, h) => ({ complete: true, naturalWidth: w, naturalHeight: h });
  assert.ok(bigEnough({ width: 120, height: 90 }, loaded(640, 480)));
  assert.ok(!bigEnough({ width: 1, height: 1 }, loaded(1, 1)), 'tracking pixel');
  assert.ok(!bigEnough({ width: MIN_SIDE - 1, height: 200 }, loaded(640, 480)));
  assert.ok(!bigEnough({ width: 200, height: 200 }, loaded(16, 16)), 'icon scaled up');
  assert.ok(bigEnough({ width: 120, height: 90 }, { complete: true, naturalWidth: 0, naturalHeight: 0 }), 'broken image');
});

test('visibility: the browser check when present, computed style otherwise', () => {
  assert.equal(looksVisible({ checkVisibility: () => false }), false);
  assert.equal(looksVisible({ checkVisibility: () => true }), true);
  const style = (s) => () => ({ display: 'inline', visibility: 'visible', opacity: '1', ...s });
  assert.equal(looksVisible({}, style({})), true);
  assert.equal(looksVisible({}, style({ visibility: 'hidden' })), false);
  assert.equal(looksVisible({}, style({ opacity: '0' })), false);
});

test('isImg checks the tag, not a constructor from another world', () => {
  assert.ok(isImg({ nodeType: 1, localName: 'img' }));
  assert.ok(!isImg({ nodeType: 1, localName: 'picture' }));
  assert.ok(!isImg(null));
});
