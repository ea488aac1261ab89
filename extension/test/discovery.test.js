import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  bigEnough, checkableUrl, checkableVideoUrl, Discovery, elementOf, imageUrl, isImg, isPoster, isVideo, looksVisible, mediaUrl,
  MIN_SIDE, posterOf, showsPoster, STREAM_KEY, videoUrl,
} from '../src/content/discovery.js';

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

// A <video> as the content script sees it: attributes, resolved properties, <source> children.
function video({ currentSrc = '', src = '', srcObject = null, sources = [], playable = ['video/webm', 'video/mp4'],
  poster = '', readyState = 1, paused = true, currentTime = 0, played = 0 } = {}) {
  return {
    nodeType: 1,
    localName: 'video',
    currentSrc,
    src,
    srcObject,
    poster,
    readyState,
    paused,
    currentTime,
    played: { length: played },
    checkVisibility: () => true,
    getBoundingClientRect: () => ({ width: 320, height: 180 }),
    getAttribute: (name) => (name === 'src' && src ? src : name === 'poster' && poster ? poster : null),
    canPlayType: (type) => (playable.includes(type.split(';')[0]) ? 'maybe' : ''),
    children: sources.map(({ src: s, type }) => ({
      localName: 'source', src: s, getAttribute: (name) => (name === 'src' ? s : name === 'type' ? type ?? null : null),
    })),
  };
}

test('a video reports the file it plays: currentSrc, else src, else the first playable <source>', () => {
  assert.equal(videoUrl(video({ currentSrc: 'https://a/chosen.webm', src: 'https://a/x.mp4' })), 'https://a/chosen.webm');
  assert.equal(videoUrl(video({ src: 'https://a/x.mp4' })), 'https://a/x.mp4');
  const sources = [{ src: 'https://a/x.mkv', type: 'video/x-matroska' }, { src: 'https://a/x.webm', type: 'video/webm' },
    { src: 'https://a/y.mp4' }];
  assert.equal(videoUrl(video({ sources })), 'https://a/x.webm', 'unplayable types are skipped');
  assert.equal(videoUrl(video({ sources: [{ src: 'https://a/any' }] })), 'https://a/any', 'no type: the browser tries it');
  assert.equal(videoUrl(video()), '', 'nothing to play yet');
  assert.equal(mediaUrl(video({ src: 'https://a/v.mp4' })), 'https://a/v.mp4');
  assert.equal(mediaUrl({ nodeType: 1, localName: 'img', currentSrc: '', src: 'https://a/i.jpg' }), 'https://a/i.jpg');
});

test('streamed videos are reported by their blob: address or as a stream, and are never checkable', () => {
  assert.equal(videoUrl(video({ currentSrc: 'blob:https://a.test/5f0c' })), 'blob:https://a.test/5f0c');
  assert.equal(videoUrl(video({ srcObject: {} })), STREAM_KEY);
  for (const url of ['blob:https://a.test/5f0c', STREAM_KEY, 'data:video/mp4;base64,AAAA', 'file:///x.mp4']) {
    assert.ok(!checkableVideoUrl(url), url);
  }
  assert.ok(checkableVideoUrl('https://a.test/v.webm'));
  assert.ok(isVideo(video()) && !isVideo({ nodeType: 1, localName: 'img' }) && !isImg(video()));
});

test('CSS backgrounds: the first url() of the computed value; gradients and none give nothing', async () => {
  const { backgroundUrl } = await import('../src/content/discovery.js');
  assert.equal(backgroundUrl('url("https://a.test/bg.jpg")'), 'https://a.test/bg.jpg');
  assert.equal(backgroundUrl('linear-gradient(red, blue), url("https://a.test/x (1).jpg")'), 'https://a.test/x (1).jpg');
  assert.equal(backgroundUrl("url('https://a.test/q\\'s.jpg')"), "https://a.test/q's.jpg");
  assert.equal(backgroundUrl('url(https://a.test/plain.png)'), 'https://a.test/plain.png');
  assert.equal(backgroundUrl('none'), '');
  assert.equal(backgroundUrl('linear-gradient(red, blue)'), '');
  assert.equal(backgroundUrl(undefined), '');
});

test('a video shows its poster before playback starts, as the HTML spec draws it', () => {
  const poster = 'https://a.test/poster.jpg';
  assert.ok(showsPoster(video({ poster })), 'paused at the start, nothing played');
  assert.ok(!showsPoster(video()), 'no poster attribute');
  assert.ok(!showsPoster(video({ poster }), true), 'it played or seeked since its last load');
  assert.ok(!showsPoster(video({ poster, paused: false })), 'playing (it was before the content script came)');
  assert.ok(!showsPoster(video({ poster, currentTime: 2.5 })), 'paused later on: the frame there shows');
  assert.ok(!showsPoster(video({ poster, played: 1 })), 'played, then back at the start');
  assert.ok(showsPoster(video({ poster, readyState: 0, paused: false }), true), 'no video data yet: the poster');
});

test('a poster is its video\'s, one per video, and is no element of its own', () => {
  const v = video({ poster: 'https://a.test/p.jpg' });
  assert.equal(posterOf(v), posterOf(v));
  assert.ok(isPoster(posterOf(v)) && !isPoster(v));
  assert.equal(elementOf(posterOf(v)), v);
  assert.equal(elementOf(v), v);
  assert.ok(!isImg(posterOf(v)) && !isVideo(posterOf(v)));
});

test('a video\'s poster is reported apart from its file while it shows, and is gone once the video plays', () => {
  const seen = [];
  const d = new Discovery({
    doc: {}, onImage: (target, url) => seen.push(['image', target, url]), onGone: (target) => seen.push(['gone', target]),
  });
  const v = video({ src: 'https://a.test/v.mp4', poster: 'https://a.test/p.jpg' });
  d.near.add(v);
  d.evaluate(v);
  assert.deepEqual(seen, [['image', v, 'https://a.test/v.mp4'], ['image', posterOf(v), 'https://a.test/p.jpg']]);
  d.evaluate(v);
  assert.equal(seen.length, 2, 'nothing new: reported once');
  // It plays: the play event ends the poster (looked at with the next gathered look).
  v.paused = false;
  d.onEvent({ target: v, type: 'play' });
  clearTimeout(d.queueTimer);
  d.evaluateQueued();
  assert.deepEqual(seen.slice(2), [['gone', posterOf(v)]]);
  // Paused at the start again is not a poster (the show-poster flag stays off until a new load)...
  v.paused = true;
  v.currentTime = 0;
  d.evaluate(v);
  assert.equal(seen.length, 3);
  // ... a new load is: the same poster comes back (its file was reported already: not again).
  d.onEvent({ target: v, type: 'loadstart' });
  clearTimeout(d.queueTimer);
  d.evaluateQueued();
  assert.deepEqual(seen.slice(3), [['image', posterOf(v), 'https://a.test/p.jpg']]);
  // A poster that is not a web address is not sent (outside privacy mode); a video without one has none.
  const inline = video({ src: 'https://a.test/w.mp4', poster: 'data:image/png;base64,AA' });
  d.near.add(inline);
  d.evaluate(inline);
  assert.deepEqual(seen.slice(4), [['image', inline, 'https://a.test/w.mp4']]);
});
