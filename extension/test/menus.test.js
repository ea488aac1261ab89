import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createMenus, MENU, onMenuClick, reportPageUrl } from '../src/lib/menus.js';
import { fakeExt } from './fakes.js';

test('image and video menu items', async () => {
  const ext = fakeExt();
  await createMenus(ext);
  assert.deepEqual(ext.contextMenus.items.map((i) => [i.id, i.contexts]), [
    [MENU.check, ['image']], [MENU.report, ['image']], [MENU.checkVideo, ['video']], [MENU.reportVideo, ['video']]]);
  assert.match(ext.contextMenus.items[0].title, /Check this image with Credence/);
  assert.match(ext.contextMenus.items[1].title, /Report as fake/);
  assert.match(ext.contextMenus.items[2].title, /Check this video with Credence/);
  assert.match(ext.contextMenus.items[3].title, /Report this video as fake/);
});

test('"Check this video" forces a check of the file it plays; a streamed one sends nothing', async () => {
  const ext = fakeExt();
  const calls = [];
  const service = { check: async (...args) => calls.push(args) };
  await onMenuClick(ext, service, { menuItemId: MENU.checkVideo, mediaType: 'video', srcUrl: 'https://a.test/c.mp4' },
    { id: 5 });
  await onMenuClick(ext, service, { menuItemId: MENU.checkVideo, mediaType: 'video', srcUrl: 'blob:https://a.test/1' },
    { id: 5 });
  await onMenuClick(ext, service, { menuItemId: MENU.reportVideo, mediaType: 'video', srcUrl: 'blob:https://a.test/1' },
    { id: 5 });
  assert.deepEqual(ext.tabs.sent.map((s) => s.message), [{ type: 'force-check', url: 'https://a.test/c.mp4' }]);
  assert.equal(calls.length, 0);
  assert.equal(ext.created.windows.length, 0);
});

test('"Check this image" asks the page\'s content script for a forced check', async () => {
  const ext = fakeExt();
  const calls = [];
  const service = { check: async (...args) => calls.push(args) };
  await onMenuClick(ext, service, { menuItemId: MENU.check, srcUrl: 'https://a.test/x.jpg', frameId: 0 }, { id: 5 });
  assert.deepEqual(ext.tabs.sent.map((s) => [s.tabId, s.message]), [[5, { type: 'force-check', url: 'https://a.test/x.jpg' }]]);
  assert.equal(calls.length, 0);
});

test('without a content script the worker checks it itself, forced', async () => {
  const ext = fakeExt();
  ext.tabs.failFor.add(5);
  const calls = [];
  const service = { check: async (...args) => calls.push(args) };
  await onMenuClick(ext, service, { menuItemId: MENU.check, srcUrl: 'https://a.test/x.jpg' }, { id: 5 });
  assert.deepEqual(calls, [[5, [{ url: 'https://a.test/x.jpg' }], { force: true, page: null }]]);
  // The frame's address, for the referrer of the extension's own read of the image.
  await onMenuClick(ext, service, { menuItemId: MENU.check, srcUrl: 'https://a.test/x.jpg',
    frameUrl: 'https://a.test/frame.html', pageUrl: 'https://a.test/' }, { id: 5 });
  assert.deepEqual(calls[1][2], { force: true, page: 'https://a.test/frame.html' });
});

test('"Report as fake" opens the note form for that image', async () => {
  const ext = fakeExt();
  await onMenuClick(ext, {}, { menuItemId: MENU.report, srcUrl: 'https://a.test/x y.jpg' }, { id: 5, incognito: true });
  const [win] = ext.created.windows;
  assert.equal(win.type, 'popup');
  assert.equal(win.url, reportPageUrl(ext, 'https://a.test/x y.jpg', true));
  const url = new URL(win.url);
  assert.equal(url.pathname, '/report/report.html');
  assert.equal(url.searchParams.get('url'), 'https://a.test/x y.jpg');
  assert.equal(url.searchParams.get('private'), '1');
});
