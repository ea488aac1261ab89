import assert from 'node:assert/strict';
import { test } from 'node:test';

import { groupByLevel, shortUrl } from '../src/lib/groups.js';

test('popup groups: most important level first, items sorted', () => {
  const groups = groupByLevel([
    { url: 'https://a/2.jpg', level: 'no-evidence' },
    { url: 'https://a/1.jpg', level: 'no-evidence' },
    { url: 'https://a/bad.jpg', level: 'known-fake' },
    { url: 'https://a/x.jpg', level: 'unavailable' },
  ]);
  assert.deepEqual(groups.map((g) => g.level), ['known-fake', 'no-evidence', 'unavailable']);
  assert.deepEqual(groups[1].items.map((i) => i.url), ['https://a/1.jpg', 'https://a/2.jpg']);
  assert.equal(groups[0].short, 'Known fake');
});

test('short URLs fit one line', () => {
  assert.equal(shortUrl('https://news.test/a.jpg'), 'news.test/a.jpg');
  const long = shortUrl(`https://cdn.news.test/${'dir/'.repeat(20)}photo.jpg`);
  assert.equal(long, 'cdn.news.test/…/photo.jpg');
  assert.ok(shortUrl(`https://x.test/${'a'.repeat(100)}`).length < 60);
});

test('URLs that differ only in their query get different rows', () => {
  assert.equal(shortUrl('https://cdn.test/img.jpg?w=400'), 'cdn.test/img.jpg?w=400');
  assert.notEqual(shortUrl('https://cdn.test/img.jpg?id=1234567890abcdef-1'), shortUrl('https://cdn.test/img.jpg?id=1234567890abcdef-2'));
  assert.equal(shortUrl('https://cdn.test/img.jpg?id=1234567890abcdef-1'), 'cdn.test/img.jpg?…34567890abcdef-1');
});
