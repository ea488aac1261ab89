import assert from 'node:assert/strict';
import { test } from 'node:test';

import { documentPolicy, headerPolicy, parsePolicy, referrerFor, referrerRule } from '../src/lib/referrer.js';

const PAGE = 'https://news.test/2026/story.html?id=7#photos';
const FULL = 'https://news.test/2026/story.html?id=7'; // no fragment, ever

test('default policy (strict-origin-when-cross-origin): full URL same-origin, origin cross-origin, none on a downgrade', () => {
  assert.equal(referrerFor('https://news.test/img/a.jpg', PAGE, ''), FULL);
  assert.equal(referrerFor('https://cdn.test/a.jpg', PAGE, ''), 'https://news.test/');
  assert.equal(referrerFor('http://cdn.test/a.jpg', PAGE, ''), null, 'https page, http image');
  assert.equal(referrerFor('http://news.test/a.jpg', PAGE, undefined), null, 'same host, other scheme: a downgrade too');
  assert.equal(referrerFor('https://cdn.test/a.jpg', 'http://blog.test/p', ''), 'http://blog.test/');
  assert.equal(referrerFor('http://127.0.0.1:8000/a.jpg', PAGE, ''), 'https://news.test/', 'a local host is trustworthy: no downgrade');
});

test('each policy of the Referrer Policy spec', () => {
  const same = 'https://news.test/a.jpg';
  const cross = 'https://cdn.test/a.jpg';
  const down = 'http://cdn.test/a.jpg';
  const cases = {
    'no-referrer': [null, null, null],
    'no-referrer-when-downgrade': [FULL, FULL, null],
    'same-origin': [FULL, null, null],
    origin: ['https://news.test/', 'https://news.test/', 'https://news.test/'],
    'strict-origin': ['https://news.test/', 'https://news.test/', null],
    'origin-when-cross-origin': [FULL, 'https://news.test/', 'https://news.test/'],
    'strict-origin-when-cross-origin': [FULL, 'https://news.test/', null],
    'unsafe-url': [FULL, FULL, FULL],
  };
  for (const [policy, expected] of Object.entries(cases)) {
    assert.deepEqual([same, cross, down].map((t) => referrerFor(t, PAGE, policy)), expected, policy);
  }
});

test('no referrer from pages that are not http(s), to targets that are not, or from unparsable addresses', () => {
  assert.equal(referrerFor('https://cdn.test/a.jpg', 'about:blank', 'unsafe-url'), null);
  assert.equal(referrerFor('data:image/png;base64,AAAA', PAGE, 'unsafe-url'), null);
  assert.equal(referrerFor('https://cdn.test/a.jpg', 'not a url', ''), null);
});

test('credentials in the page address never go; a very long one is cut to its origin', () => {
  assert.equal(referrerFor('https://news.test/a.jpg', 'https://me:pw@news.test/p', ''), 'https://news.test/p');
  const long = `https://news.test/p?q=${'x'.repeat(5000)}`;
  assert.equal(referrerFor('https://news.test/a.jpg', long, 'unsafe-url'), 'https://news.test/');
});

test('policy tokens: case, spaces and the legacy meta words; anything else is no policy', () => {
  assert.equal(parsePolicy(' Unsafe-URL '), 'unsafe-url');
  assert.equal(parsePolicy('never'), 'no-referrer');
  assert.equal(parsePolicy('always'), 'unsafe-url');
  assert.equal(parsePolicy('origin-when-crossorigin'), 'origin-when-cross-origin');
  assert.equal(parsePolicy('bogus'), '');
  assert.equal(referrerFor('https://cdn.test/a.jpg', PAGE, 'bogus'), 'https://news.test/', 'an unknown token: the default');
});

test('the document policy is its last valid <meta name="referrer">', () => {
  const doc = (...contents) => ({ querySelectorAll: () => contents.map((content) => ({ content })) });
  assert.equal(documentPolicy(doc()), '');
  assert.equal(documentPolicy(doc('no-referrer', 'unsafe-url')), 'unsafe-url');
  assert.equal(documentPolicy(doc('origin', 'nonsense')), 'origin', 'an invalid one changes nothing');
});

test('the rule sets Referer on the extension\'s own GET of that one address and nothing else', () => {
  const rule = referrerRule(7, 'https://cdn.test/a.jpg?w=300#frag', FULL, 'abcdefghijklmnop');
  assert.deepEqual(rule, {
    id: 7,
    priority: 1,
    action: { type: 'modifyHeaders', requestHeaders: [{ header: 'Referer', operation: 'set', value: FULL }] },
    condition: {
      urlFilter: '|https://cdn.test/a.jpg?w=300|', // anchored at both ends, the fragment left out
      initiatorDomains: ['abcdefghijklmnop'],
      tabIds: [-1],
      resourceTypes: ['xmlhttprequest'],
      requestMethods: ['get'],
    },
  });
});

test('the Referrer-Policy header: the last policy it names wins; unknown tokens, empty ones and meta words are skipped', () => {
  assert.equal(headerPolicy('no-referrer'), 'no-referrer');
  assert.equal(headerPolicy('no-referrer, strict-origin-when-cross-origin'), 'strict-origin-when-cross-origin');
  assert.equal(headerPolicy('same-origin, some-future-policy'), 'same-origin', 'an unknown last token: the one before');
  assert.equal(headerPolicy(' Same-Origin ,,'), 'same-origin', 'case and spaces ignored, empty tokens skipped');
  assert.equal(headerPolicy('never'), '', 'the legacy meta words are not header policies');
  assert.equal(headerPolicy(''), '');
  assert.equal(headerPolicy(undefined), '');
});
