import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';

import {
  backoff, FOLLOW_GAP_MS, GIVE_UP_MS, MAX_FOLLOW_GAP_MS, MAX_STREAM_GATHER_MS, Service, STREAM_DELIVER_MS,
  STREAM_GATHER_MS, VERIFY_HOLD_MS, VERIFY_RETRY_MS,
} from '../src/lib/service.js';
import { fakeExt, fakeServer, manualTimers, serverVerdict } from './fakes.js';

function setup({ settings, server } = {}) {
  const ext = fakeExt({ settings });
  const srv = server ?? fakeServer();
  let clock = 1_000_000;
  const timers = manualTimers();
  const service = new Service({ ext, fetch: srv.fetch, now: () => clock, ...timers });
  return { ext, srv, service, timers, tick: (ms) => { clock += ms; }, now: () => clock };
}

/** The timers that follow checks (not the look whether comparisons may start: VERIFY_RETRY_MS). */
const followTimers = (timers) => [...timers.pending.values()].filter((t) => t.ms !== VERIFY_RETRY_MS);

const delivered = (ext, tabId) => ext.tabs.sent
  .filter((s) => s.tabId === tabId && s.message.type === 'verdicts')
  .flatMap((s) => s.message.results);

test('URLs from many tabs are coalesced into batches of at most 100, each URL once', async () => {
  const { ext, srv, service } = setup();
  const urls = Array.from({ length: 250 }, (_, i) => `https://news.test/img/${i}.jpg`);
  await service.check(1, urls.slice(0, 120).map((url) => ({ url })));
  await service.check(2, urls.slice(100).map((url) => ({ url }))); // 20 overlap with tab 1
  await service.check(3, [{ url: urls[5] }, { url: urls[5] }]); // duplicate inside one message
  await service.urlBatcher.idle();
  const posts = srv.posts('/api/v1/checks');
  const sentUrls = posts.flatMap((p) => JSON.parse(p.body).urls);
  assert.equal(posts.length, 3);
  assert.ok(posts.every((p) => JSON.parse(p.body).urls.length <= 100));
  assert.equal(sentUrls.length, 250, 'each URL sent once');
  assert.equal(new Set(sentUrls).size, 250);
  assert.equal(delivered(ext, 1).length, 120);
  assert.equal(delivered(ext, 2).length, 150);
  assert.deepEqual(delivered(ext, 3).map((r) => r.key), [urls[5]]);
  const first = delivered(ext, 1)[0];
  assert.equal(first.verdict.level, 'no-evidence');
  assert.match(first.verdict.reportUrl, /^http:\/\/credence\.test\/desk\/media\/[0-9a-f]{64}$/);
});

test('answers come from the session cache first; a forced check bypasses it', async () => {
  const { ext, srv, service } = setup();
  const url = 'https://news.test/a.jpg';
  await service.check(1, [{ url }]);
  await service.urlBatcher.idle();
  await service.check(1, [{ url }]);
  await service.urlBatcher.idle();
  assert.equal(srv.posts('/api/v1/checks').length, 1, 'second ask answered from cache');
  assert.equal(delivered(ext, 1).length, 2);
  assert.ok(ext.storage.session.data.has(`v:${url}`), 'cache is in storage.session, not in memory');
  await service.check(1, [{ url }], { force: true });
  await service.urlBatcher.idle();
  assert.equal(srv.posts('/api/v1/checks').length, 2, 'forced check goes to the server');
});

// fakeServer() without `streams` is a server older than GET /checks/events: it answers 404, and the
// extension follows with long polls (the tests below up to the stream ones).
const longPolls = (srv) => srv.requests.filter((r) => r.method === 'GET' && r.url.includes('/api/v1/checks?ids='));

test('older server: pending checks are followed by one long-poll GET for all of them, then delivered and cached', async () => {
  const slow = ['https://news.test/s1.jpg', 'https://news.test/s2.jpg'];
  const server = fakeServer({ slow, verdicts: { [slow[0]]: 'known-fake' } });
  const { ext, srv, service, timers } = setup({ server });
  await service.check(7, slow.map((url) => ({ url })));
  await service.urlBatcher.idle();
  assert.equal(delivered(ext, 7).length, 0);
  const pending = (await ext.storage.session.get('pending')).pending;
  assert.equal(Object.keys(pending).length, 2, 'pending checks live in storage');
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [STREAM_GATHER_MS],
    'followed after a short gather for other batches (none here)');

  await Promise.all([service.poll(), service.poll()]); // a second call while one is out joins it
  const gets = longPolls(srv);
  assert.equal(gets.length, 1, 'both ids in one request, one request outstanding');
  assert.equal(srv.requests.filter((r) => r.url.includes('/checks/events')).length, 1, 'a stream was tried once');
  assert.match(gets[0].url, /ids=chk1(%2C|,)chk2&wait=5$/, 'a long poll');
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [FOLLOW_GAP_MS],
    'the next one starts a gap after this one started, so verdicts gather');

  srv.finishAll();
  await service.poll();
  const results = delivered(ext, 7);
  assert.deepEqual(results.map((r) => r.verdict.level).sort(), ['known-fake', 'no-evidence']);
  assert.deepEqual((await ext.storage.session.get('pending')).pending, {});
  assert.ok(ext.storage.session.data.has(`v:${slow[0]}`));
  assert.ok(ext.created.alarms.some((a) => a.cleared), 'backstop alarm cleared when nothing is pending');
  assert.equal(srv.requests.filter((r) => r.url.includes('/api/v1/checks?')).length, 2);
});

test('a follow-up that fails backs off (0.5 s doubling), a long one is followed at once', async () => {
  const slow = ['https://news.test/down.jpg'];
  const server = fakeServer({ slow });
  let down = false;
  const fetch = async (input, init) => {
    if (down && String(input).includes('ids=')) throw new TypeError('Failed to fetch');
    return server.fetch(input, init);
  };
  const ext = fakeExt();
  let clock = 5_000;
  const timers = manualTimers();
  const service = new Service({ ext, fetch, now: () => clock, ...timers });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  down = true;
  await service.poll();
  await service.poll();
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [backoff(1)]);
  down = false;
  const slowFetch = service.fetch;
  service.fetch = async (input, init) => {
    clock += 4000; // the server held it 4 s
    return slowFetch(input, init);
  };
  await service.poll();
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [0]);
});

test('checks long pending are followed less often: half their age, 2.5 to 8 s apart', async () => {
  const slow = ['https://news.test/slow-server.jpg'];
  const { service, timers, tick } = setup({ server: fakeServer({ slow }) });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  tick(12_000);
  await service.poll();
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [6000]);
  tick(30_000);
  await service.poll();
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [MAX_FOLLOW_GAP_MS]);
});

test('a restarted worker resumes pending checks from storage', async () => {
  const slow = ['https://news.test/later.jpg'];
  const server = fakeServer({ slow });
  const { ext, service, tick, now } = setup({ server });
  await service.check(4, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  await service.poll(); // still pending; arms the backstop alarm that would wake a stopped worker
  assert.ok(ext.created.alarms.some((a) => a.name === 'credence-poll' && !a.cleared));

  // The browser stops the worker: a new Service with the same storage, nothing in memory.
  const reborn = new Service({ ext, fetch: server.fetch, now, ...manualTimers() });
  server.finishAll();
  tick(10_000);
  await reborn.resume();
  assert.deepEqual(delivered(ext, 4).map((r) => r.key), slow);
});

test('a tab asking for a URL already pending joins it instead of sending it again', async () => {
  const slow = ['https://news.test/shared.jpg'];
  const server = fakeServer({ slow });
  const { ext, srv, service, tick } = setup({ server });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  await service.check(2, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  assert.equal(srv.posts('/api/v1/checks').length, 1);
  srv.finishAll();
  tick(1000);
  await service.poll();
  assert.equal(delivered(ext, 1).length, 1);
  assert.equal(delivered(ext, 2).length, 1);
});

test('checks that never finish give up with an honest "could not check"', async () => {
  const slow = ['https://news.test/stuck.jpg'];
  const { ext, service, tick } = setup({ server: fakeServer({ slow }) });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  tick(GIVE_UP_MS + 1);
  await service.poll();
  const [result] = delivered(ext, 1);
  assert.equal(result.verdict.level, 'unavailable');
  assert.ok(!ext.storage.session.data.has(`v:${slow[0]}`), 'a local give-up is not cached');
});

test('server unreachable: tabs get the error, nothing is cached', async () => {
  const ext = fakeExt();
  const service = new Service({ ext, fetch: async () => { throw new TypeError('Failed to fetch'); }, ...manualTimers() });
  await service.check(3, [{ url: 'https://news.test/x.jpg' }]);
  await service.urlBatcher.idle();
  const [result] = delivered(ext, 3);
  assert.equal(result.verdict, null);
  assert.match(result.error, /unreachable/);
});

test('a closed tab does not break delivery to the others', async () => {
  const { ext, service } = setup();
  ext.tabs.failFor.add(1);
  await service.check(1, [{ url: 'https://news.test/1.jpg' }]);
  await service.check(2, [{ url: 'https://news.test/1.jpg' }]);
  await service.urlBatcher.idle();
  assert.equal(delivered(ext, 2).length, 1);
});

test('non-web URLs are never sent outside privacy mode', async () => {
  const { srv, service } = setup();
  await service.check(1, [{ url: 'data:image/png;base64,AAAA' }, { url: 'blob:https://news.test/123' }]);
  await service.urlBatcher.idle();
  assert.equal(srv.requests.length, 0);
});

// ---- privacy mode ---------------------------------------------------------------------------

const IMG = new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3, 4, 5]);
const IMG_SHA = createHash('sha256').update(IMG).digest('hex');
const PAGE_IMAGE = 'https://private.test/family/photo.jpg';

function leaked(srv, needles) {
  return srv.requests
    .filter((r) => r.url.startsWith('http://credence.test'))
    .filter((r) => needles.some((n) => r.url.includes(n) || r.body.includes(n)));
}

test('privacy mode: bytes are hashed here and only the SHA-256 goes to the server', async () => {
  const server = fakeServer({ images: { [PAGE_IMAGE]: IMG }, shaVerdicts: { [IMG_SHA]: 'ai-declared' } });
  const { ext, srv, service } = setup({ settings: { privacy: true }, server });
  await service.check(9, [{ url: PAGE_IMAGE }]);
  await service.shaBatcher.idle();
  const lookups = srv.posts('/api/v1/lookup');
  assert.equal(lookups.length, 1);
  assert.deepEqual(JSON.parse(lookups[0].body), { sha256: [IMG_SHA] });
  assert.equal(srv.posts('/api/v1/checks').length, 0);
  assert.deepEqual(leaked(srv, ['private.test', 'photo.jpg']), []);
  const [result] = delivered(ext, 9);
  assert.equal(result.key, PAGE_IMAGE);
  assert.equal(result.verdict.level, 'ai-declared');
  assert.equal(result.verdict.reportUrl, `http://credence.test/desk/media/${IMG_SHA}`);

  // Second time: URL -> hash memo and hash -> verdict cache, no fetch and no request at all.
  const before = srv.requests.length;
  await service.check(9, [{ url: PAGE_IMAGE }]);
  await service.shaBatcher.idle();
  assert.equal(srv.requests.length, before);
});

test('privacy mode: unknown images stay unknown unless uploads are switched on', async () => {
  const server = fakeServer({ images: { [PAGE_IMAGE]: IMG } });
  const { ext, srv, service } = setup({ settings: { privacy: true }, server });
  await service.check(1, [{ url: PAGE_IMAGE }]);
  await service.shaBatcher.idle();
  assert.equal(delivered(ext, 1)[0].verdict.level, 'unknown');
  assert.equal(srv.posts('/api/v1/checks/upload').length, 0);
});

test('privacy mode with uploads: the bytes go up without any address, then the check is polled', async () => {
  const server = fakeServer({ images: { [PAGE_IMAGE]: IMG } });
  const { ext, srv, service, tick } = setup({ settings: { privacy: true, uploadUnknown: true }, server });
  await service.check(1, [{ url: PAGE_IMAGE }]);
  await service.shaBatcher.idle();
  const [upload] = srv.posts('/api/v1/checks/upload');
  assert.ok(upload, 'uploaded');
  assert.match(upload.body, /name="file"; filename="image"/);
  assert.deepEqual(leaked(srv, ['private.test', 'photo.jpg']), []);
  srv.finishAll();
  tick(1000);
  await service.poll();
  assert.equal(delivered(ext, 1)[0].verdict.level, 'no-evidence');
  assert.deepEqual(leaked(srv, ['private.test', 'photo.jpg']), []);
});

test('privacy mode: data: images (and blob: ones read by the page) are hashed from their bytes', async () => {
  const dataUrl = `data:image/jpeg;base64,${Buffer.from(IMG).toString('base64')}`;
  const server = fakeServer({ shaVerdicts: { [IMG_SHA]: 'no-evidence' } });
  const { ext, srv, service } = setup({ settings: { privacy: true }, server });
  await service.check(1, [{ url: dataUrl }, { url: 'blob:https://private.test/9f1c', data: dataUrl }]);
  await service.shaBatcher.idle();
  assert.deepEqual(JSON.parse(srv.posts('/api/v1/lookup')[0].body), { sha256: [IMG_SHA] }, 'same bytes, one hash');
  assert.deepEqual(delivered(ext, 1).map((r) => r.key).sort(), ['blob:https://private.test/9f1c', dataUrl].sort());
  assert.deepEqual(leaked(srv, ['private.test', 'base64']), []);
});

test('privacy mode: an image the browser cannot read is "could not check", locally', async () => {
  const { ext, srv, service } = setup({ settings: { privacy: true } });
  await service.check(1, [{ url: 'https://private.test/missing.jpg' }]);
  await service.shaBatcher.idle();
  assert.equal(delivered(ext, 1)[0].verdict.level, 'unavailable');
  assert.equal(srv.requests.filter((r) => r.url.startsWith('http://credence.test')).length, 0);
});

test('checks started at different times are followed together: one request', async () => {
  const slow = ['https://news.test/early.jpg', 'https://news.test/late.jpg'];
  const server = fakeServer({ slow });
  const { srv, service, tick } = setup({ server });
  await service.check(3, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  tick(300); // the second check starts later
  await service.check(3, [{ url: slow[1] }]);
  await service.urlBatcher.idle();
  await service.poll();
  const gets = longPolls(srv);
  assert.equal(gets.length, 1);
  assert.match(gets[0].url, /ids=chk1(%2C|,)chk2&wait=5$/, 'the later one is asked about too');
});

test('privacy mode with uploads: a few at a time, each result delivered as it arrives', async () => {
  const urls = Array.from({ length: 6 }, (_, i) => `https://private.test/p${i}.jpg`);
  const images = Object.fromEntries(urls.map((u, i) => [u, new Uint8Array([0xff, 0xd8, 0xff, i])]));
  const server = fakeServer({ images });
  let inFlight = 0;
  let most = 0;
  let uploads = 0;
  const fetch = async (input, init = {}) => {
    if (!String(input).endsWith('/api/v1/checks/upload')) return server.fetch(input, init);
    const n = uploads++;
    inFlight += 1;
    most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, n === 0 ? 150 : 10)); // the first one is slow
    inFlight -= 1;
    const verdict = serverVerdict('no-evidence', { sha256: String(n).repeat(64) });
    return new Response(JSON.stringify({ results: [{ url: null, status: 'done', check_id: `up${n}`, verdict }] }),
      { status: 200, headers: { 'Content-Type': 'application/json' } });
  };
  const ext = fakeExt({ settings: { privacy: true, uploadUnknown: true } });
  const service = new Service({ ext, fetch, ...manualTimers() });
  await service.check(1, urls.map((url) => ({ url })));
  await service.shaBatcher.idle();
  assert.equal(uploads, 6);
  assert.ok(most >= 2 && most <= 4, `uploads in parallel, bounded: ${most} at once`);
  const messages = ext.tabs.sent.filter((s) => s.message.type === 'verdicts');
  assert.equal(messages.length, 6, 'one delivery per answer, not one at the end of the batch');
  assert.notEqual(messages[0].message.results[0].verdict.sha256, '0'.repeat(64), 'the slow first upload came last');
});

test('privacy mode: the "?" of an unknown image links to no report (the server has none)', async () => {
  const server = fakeServer({ images: { [PAGE_IMAGE]: IMG } });
  const { ext, service } = setup({ settings: { privacy: true }, server });
  await service.check(1, [{ url: PAGE_IMAGE }]);
  await service.shaBatcher.idle();
  const [result] = delivered(ext, 1);
  assert.equal(result.verdict.level, 'unknown');
  assert.equal(result.verdict.reportUrl, null);
});

test('more than 100 pending checks: each round asks those not asked last time first, so none starves', async () => {
  const slow = Array.from({ length: 150 }, (_, i) => `https://news.test/s${i}.jpg`);
  const server = fakeServer({ slow });
  const { srv, service, tick } = setup({ server });
  await service.check(2, slow.slice(0, 100).map((url) => ({ url })));
  await service.urlBatcher.idle();
  tick(10);
  await service.check(2, slow.slice(100).map((url) => ({ url })));
  await service.urlBatcher.idle();
  await service.poll(); // the 100 oldest
  await service.poll(); // the 50 others go now, not the 100 again
  const gets = longPolls(srv).map((r) => new URL(r.url).searchParams.get('ids').split(','));
  assert.equal(gets.length, 2);
  assert.equal(new Set([...gets[0], ...gets[1]]).size, 150, 'every pending check asked once');
});

// ---- what the reader sees (URL mode): the bytes the browser gets vs those Credence checked ----

const CLOAKED = 'https://cloak.test/photo.jpg';
const SEEN = new Uint8Array([0xff, 0xd8, 0xff, 9, 9, 9]); // what the reader's browser gets there
const SEEN_SHA = createHash('sha256').update(SEEN).digest('hex');

test('URL mode: the same bytes as checked: the verdict stands, read with the page\'s cookies, compared once', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN }, urlShas: { [CLOAKED]: SEEN_SHA } });
  const { ext, srv, service } = setup({ server });
  await service.check(1, [{ url: CLOAKED }]);
  await service.urlBatcher.idle();
  await service.verified();
  assert.deepEqual(delivered(ext, 1).map((r) => [r.verdict.level, Boolean(r.verdict.mismatch)]), [['no-evidence', false]]);
  const read = srv.requests.filter((r) => r.url === CLOAKED);
  assert.equal(read.length, 1);
  assert.equal(read[0].credentials, 'include', 'with the cookies the browser holds: cookie cloaking shows');
  assert.equal(srv.posts('/api/v1/lookup').length, 0);
  await service.check(1, [{ url: CLOAKED }]); // from the cache: already compared
  await service.verified();
  assert.equal(srv.requests.filter((r) => r.url === CLOAKED).length, 1);
});

test('URL mode: different bytes: flagged, and the verdict of the bytes shown (looked up by hash) replaces it', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN }, shaVerdicts: { [SEEN_SHA]: 'ai-declared' } });
  const { ext, srv, service } = setup({ server });
  await service.check(1, [{ url: CLOAKED }]);
  await service.urlBatcher.idle();
  await service.verified();
  const [first, second] = delivered(ext, 1);
  assert.equal(first.verdict.level, 'no-evidence');
  assert.equal(first.verdict.mismatch, undefined);
  assert.equal(second.verdict.level, 'ai-declared');
  assert.deepEqual(second.verdict.mismatch, {
    checkedSha: first.verdict.sha256, checkedLevel: 'no-evidence', checkedLabel: 'no-evidence', seenSha: SEEN_SHA,
  });
  assert.equal(second.verdict.reportUrl, `http://credence.test/desk/media/${SEEN_SHA}`);
  assert.deepEqual(JSON.parse(srv.posts('/api/v1/lookup')[0].body), { sha256: [SEEN_SHA] });
  assert.equal(srv.posts('/api/v1/checks/upload').length, 0, 'known: nothing uploaded');
  assert.equal((await ext.storage.session.get(`v:${CLOAKED}`))[`v:${CLOAKED}`].v.level, 'ai-declared');
});

test('URL mode: different, unknown bytes are uploaded and followed; the verdict keeps the mismatch', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN } });
  const { ext, srv, service } = setup({ server });
  await service.check(1, [{ url: CLOAKED }]);
  await service.urlBatcher.idle();
  await service.verified();
  const upload = srv.posts('/api/v1/checks/upload');
  assert.equal(upload.length, 1);
  assert.ok(!upload[0].body.includes('cloak.test'), 'the bytes, not the address');
  const interim = delivered(ext, 1)[1].verdict;
  assert.equal(interim.level, 'unknown');
  assert.equal(interim.mismatch.seenSha, SEEN_SHA);
  srv.finishAll();
  await service.poll();
  const final = delivered(ext, 1).at(-1).verdict;
  assert.equal(final.level, 'no-evidence');
  assert.equal(final.mismatch.seenSha, SEEN_SHA);
  assert.equal(final.sha256, 'f'.repeat(64), 'the verdict of the uploaded bytes');
  await service.verified();
  assert.equal(srv.requests.filter((r) => r.url === CLOAKED).length, 1, 'its verdict is not compared again');
});

test('URL mode: different bytes and uploads of them switched off: flagged "?", nothing uploaded', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN } });
  const { ext, srv, service } = setup({ server, settings: { uploadSeen: false } });
  await service.check(1, [{ url: CLOAKED }]);
  await service.urlBatcher.idle();
  await service.verified();
  const last = delivered(ext, 1).at(-1).verdict;
  assert.equal(last.level, 'unknown');
  assert.equal(last.mismatch.checkedLevel, 'no-evidence');
  assert.equal(srv.posts('/api/v1/checks/upload').length, 0);
});

// ---- the page's referrer on the extension's own reads of the bytes --------------------------------

const STORY = 'https://cloak.test/story.html';
const EXT_HOST = 'abcdefghijklmnopabcdefghijklmnop'; // fakeExt's runtime.getURL host

/** The session rules in force at each read of `url` (what the browser would apply to it). */
function rulesAtReads(ext, service, url) {
  const seen = [];
  const inner = service.fetch;
  service.fetch = (input, init) => {
    if (String(input) === url) seen.push([...ext.declarativeNetRequest.rules.values()].map((r) => structuredClone(r)));
    return inner(input, init);
  };
  return seen;
}

test('URL mode: the comparison read sends the page\'s referrer: a rule for that read alone, removed after', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN }, shaVerdicts: { [SEEN_SHA]: 'ai-declared' } });
  const { ext, service } = setup({ server });
  const reads = rulesAtReads(ext, service, CLOAKED);
  await service.check(1, [{ url: CLOAKED }], { page: STORY, policy: '' });
  await service.urlBatcher.idle();
  await service.verified();
  assert.equal(reads.length, 1);
  const [[rule]] = reads;
  assert.deepEqual(rule.action.requestHeaders, [{ header: 'Referer', operation: 'set', value: STORY }], 'same origin: the full URL');
  assert.equal(rule.condition.urlFilter, `|${CLOAKED}|`);
  assert.deepEqual(rule.condition.initiatorDomains, [EXT_HOST]);
  assert.deepEqual(rule.condition.tabIds, [-1]);
  assert.equal(ext.declarativeNetRequest.rules.size, 0, 'removed once read');
  assert.equal(delivered(ext, 1).at(-1).verdict.level, 'ai-declared');
});

test('the referrer follows the policy: origin only cross-origin, none for no-referrer or without a page', async () => {
  const cases = [
    [{ page: 'https://news.test/story.html', policy: '' }, ['https://news.test/']],
    [{ page: 'https://news.test/story.html', policy: 'unsafe-url' }, ['https://news.test/story.html']],
    [{ page: 'https://news.test/story.html', policy: 'no-referrer' }, []],
    [{}, []],
  ];
  for (const [options, expected] of cases) {
    const server = fakeServer({ images: { [CLOAKED]: SEEN }, urlShas: { [CLOAKED]: SEEN_SHA } });
    const { ext, service } = setup({ server });
    const reads = rulesAtReads(ext, service, CLOAKED);
    await service.check(1, [{ url: CLOAKED }], options);
    await service.urlBatcher.idle();
    await service.verified();
    assert.deepEqual(reads.map((rules) => rules.map((r) => r.action.requestHeaders[0].value)), [expected], JSON.stringify(options));
  }
});

test('an image\'s own referrerpolicy overrides the page\'s', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN }, urlShas: { [CLOAKED]: SEEN_SHA } });
  const { ext, service } = setup({ server });
  const reads = rulesAtReads(ext, service, CLOAKED);
  await service.check(1, [{ url: CLOAKED, policy: 'no-referrer' }], { page: STORY, policy: 'unsafe-url' });
  await service.urlBatcher.idle();
  await service.verified();
  assert.deepEqual(reads, [[]]);
});

test('privacy mode reads with the page\'s referrer too (the image host gets what the page\'s load sent)', async () => {
  const server = fakeServer({ images: { [PAGE_IMAGE]: SEEN }, shaVerdicts: { [SEEN_SHA]: 'no-evidence' } });
  const { ext, service } = setup({ settings: { privacy: true }, server });
  const reads = rulesAtReads(ext, service, PAGE_IMAGE);
  await service.check(1, [{ url: PAGE_IMAGE }], { page: 'https://news.test/story.html', policy: '' });
  await service.shaBatcher.idle();
  assert.deepEqual(reads.map((rules) => rules.map((r) => r.action.requestHeaders[0].value)), [['https://news.test/']]);
  assert.equal(ext.declarativeNetRequest.rules.size, 0);
});

test('a pending check keeps its referrer: a restarted worker compares with it, and clears the old worker\'s rules', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN }, slow: [CLOAKED] });
  const { ext, service, timers } = setup({ server });
  await service.check(1, [{ url: CLOAKED }], { page: STORY });
  await service.urlBatcher.idle();
  ext.declarativeNetRequest.rules.set(1, { id: 1 }); // left by a stopped worker
  const restarted = new Service({ ext, fetch: server.fetch, now: () => 1_000_000, ...timers });
  const reads = rulesAtReads(ext, restarted, CLOAKED);
  server.finishAll();
  await restarted.poll();
  await restarted.verified();
  assert.deepEqual(reads.map((rules) => rules.map((r) => [r.id, r.action.requestHeaders[0].value])), [[[1, STORY]]]);
  assert.equal(ext.declarativeNetRequest.rules.size, 0);
});

test('where the browser refuses the rule, the bytes are read without a referrer', async () => {
  const server = fakeServer({ images: { [CLOAKED]: SEEN }, urlShas: { [CLOAKED]: SEEN_SHA } });
  const { ext, srv, service } = setup({ server });
  ext.declarativeNetRequest.updateSessionRules = async () => { throw new Error('not allowed'); };
  const warn = console.warn;
  console.warn = () => {};
  try {
    await service.check(1, [{ url: CLOAKED }], { page: STORY });
    await service.urlBatcher.idle();
    await service.verified();
  } finally {
    console.warn = warn;
  }
  assert.equal(srv.requests.filter((r) => r.url === CLOAKED).length, 1);
  assert.equal(delivered(ext, 1).at(-1).verdict.level, 'no-evidence');
});

// ---- streams: GET /checks/events pushes each verdict as it is done ----------------------------------

/** Let the service's promises run until `ready()` holds (a generous wall-clock deadline, no fixed sleep). */
async function until(ready, what) {
  const deadline = Date.now() + 5000;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Run (and remove) the manual timers set for `ms`. */
function fire(timers, ms) {
  const due = [...timers.pending].filter(([, t]) => t.ms === ms);
  assert.ok(due.length, `a timer of ${ms} ms is set`);
  for (const [id, t] of due) {
    timers.pending.delete(id);
    t.fn();
  }
}

const streamsOf = (srv) => srv.requests.filter((r) => r.url.includes('/api/v1/checks/events?'));
const idsOf = (request) => new URL(request.url).searchParams.get('ids').split(',');

test('pending checks are followed by one stream: each verdict delivered as it is done, then the stream ends', async () => {
  const slow = ['https://news.test/s1.jpg', 'https://news.test/s2.jpg'];
  const server = fakeServer({ slow, verdicts: { [slow[0]]: 'known-fake' }, streams: true });
  const { ext, srv, service, timers } = setup({ server });
  await service.check(7, slow.map((url) => ({ url })));
  await service.urlBatcher.idle();
  fire(timers, STREAM_GATHER_MS); // a short gather for other batches (none here) ...
  await until(() => followTimers(timers).length === 1, 'the stream is scheduled');
  fire(timers, 0); // ... then followed at once
  await until(() => srv.openStreams === 1, 'the stream is open');
  srv.finish(slow[0]);
  await until(() => delivered(ext, 7).length === 1, 'the first verdict');
  assert.equal(delivered(ext, 7)[0].verdict.level, 'known-fake');
  assert.equal(srv.openStreams, 1, 'delivered while the other check is still pending');
  assert.ok(ext.storage.session.data.has(`v:${slow[0]}`), 'and cached');
  srv.finish(slow[1]);
  await service.poll(); // the one out: it returns when the stream ends
  assert.deepEqual(delivered(ext, 7).map((r) => r.key), slow);
  assert.deepEqual((await ext.storage.session.get('pending')).pending, {});
  assert.equal(streamsOf(srv).length, 1);
  assert.deepEqual(idsOf(streamsOf(srv)[0]), ['chk1', 'chk2']);
  assert.equal(srv.requests.filter((r) => r.url.includes('/api/v1/checks?')).length, 0, 'no long polls');
  assert.equal(followTimers(timers).length, 0, 'nothing more to follow');
  assert.ok(ext.created.alarms.some((a) => a.cleared), 'backstop alarm cleared when nothing is pending');
});

/** Slow checks followed by a stream, the first one done and delivered at once. `done`: the stream's end. */
async function streamFirstDone(slow, options = {}) {
  const server = fakeServer({ slow, streams: true, ...options });
  const { ext, srv, service, timers, tick } = setup({ server });
  await service.check(1, slow.map((url) => ({ url })));
  await service.urlBatcher.idle();
  const done = service.poll();
  await until(() => srv.openStreams === 1, 'the stream is open');
  srv.finish(slow[0]);
  await until(() => delivered(ext, 1).length === 1, 'the first verdict, at once');
  return { ext, srv, service, timers, tick, done };
}

/**
 * Two slow checks, both images served as SEEN (what Credence checked there too); the first one done and
 * delivered, its comparison waiting (the other check is out).
 */
async function firstDoneSecondOut(name) {
  const slow = [`https://news.test/${name}0.jpg`, `https://news.test/${name}1.jpg`];
  const run = await streamFirstDone(slow, { images: { [slow[0]]: SEEN, [slow[1]]: SEEN },
    urlShas: { [slow[0]]: SEEN_SHA, [slow[1]]: SEEN_SHA } });
  await until(() => [...run.timers.pending.values()].some((t) => t.ms === VERIFY_RETRY_MS), 'its comparison waits');
  return { ...run, slow, reads: () => run.srv.requests.filter((r) => slow.includes(r.url)).length };
}

test('the bytes shown are compared once no check is out: the page\'s own verdicts do not wait behind them', async () => {
  const { ext, srv, service, timers, slow, done, reads } = await firstDoneSecondOut('h');
  assert.equal(reads(), 0, 'no image read again while a check is out');
  srv.finish(slow[1]);
  await done; // the stream ends: nothing is out
  assert.equal(reads(), 0);
  fire(timers, VERIFY_RETRY_MS);
  await until(() => reads() === 2, 'both read at the next look');
  await service.verified();
  assert.deepEqual(delivered(ext, 1).map((r) => Boolean(r.verdict.mismatch)), [false, false]);
});

test('comparisons held for VERIFY_HOLD_MS start even while a check is still out', async () => {
  const { srv, timers, tick, slow, done, reads } = await firstDoneSecondOut('k');
  tick(VERIFY_RETRY_MS);
  fire(timers, VERIFY_RETRY_MS); // still held: the other check is out
  assert.equal(reads(), 0);
  tick(VERIFY_HOLD_MS);
  fire(timers, VERIFY_RETRY_MS);
  await until(() => reads() === 1, 'the first read after the longest hold');
  assert.equal(srv.openStreams, 1, 'the other check still out');
  srv.finish(slow[1]);
  await done;
});

test('verdicts pushed soon after a delivery wait for the next one: at most one message per second', async () => {
  const slow = ['https://news.test/d0.jpg', 'https://news.test/d1.jpg', 'https://news.test/d2.jpg', 'https://news.test/d3.jpg'];
  const { ext, srv, timers, tick, done } = await streamFirstDone(slow);
  srv.finish(slow[1]);
  srv.finish(slow[2]);
  await until(() => followTimers(timers).length === 1, 'the next delivery is due');
  assert.equal(delivered(ext, 1).length, 1, 'held meanwhile');
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [STREAM_DELIVER_MS]);
  tick(STREAM_DELIVER_MS);
  fire(timers, STREAM_DELIVER_MS);
  await until(() => delivered(ext, 1).length === 3, 'both held verdicts');
  assert.equal(ext.tabs.sent.filter((s) => s.message.type === 'verdicts').length, 2, 'in one message');
  tick(STREAM_DELIVER_MS);
  srv.finish(slow[3]);
  await done; // the stream ended: nothing is held back
  assert.equal(delivered(ext, 1).length, 4);
});

test('a page\'s first batches share one stream: none opens while another batch is on its way', async () => {
  const slow = ['https://news.test/f0.jpg', 'https://news.test/f1.jpg'];
  const server = fakeServer({ slow, streams: true });
  const { srv, service, timers } = setup({ server });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  await service.check(1, [{ url: slow[1] }]); // queued in the batch window
  fire(timers, STREAM_GATHER_MS);
  await until(() => followTimers(timers).filter((t) => t.ms === STREAM_GATHER_MS).length === 1, 'gathering on');
  await service.urlBatcher.idle();
  fire(timers, STREAM_GATHER_MS);
  await until(() => followTimers(timers).length === 1, 'the stream is scheduled');
  fire(timers, 0);
  await until(() => srv.openStreams === 1, 'the stream is open');
  assert.equal(streamsOf(srv).length, 1);
  assert.deepEqual(idsOf(streamsOf(srv)[0]), ['chk1', 'chk2']);
  srv.finishAll();
  await service.poll();
});

test('a gathering that waited only for a batch out follows as soon as that batch is back', async () => {
  const slow = ['https://news.test/b0.jpg', 'https://news.test/b1.jpg'];
  const server = fakeServer({ slow, streams: true });
  const { srv, service, timers, tick } = setup({ server });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  await service.check(1, [{ url: slow[1] }]); // queued in the batch window
  tick(STREAM_GATHER_MS);
  fire(timers, STREAM_GATHER_MS); // gathered long enough, but a batch is on its way: gathering goes on
  await until(() => followTimers(timers).filter((t) => t.ms === STREAM_GATHER_MS).length === 1, 'gathering on');
  await service.urlBatcher.idle(); // that batch is back
  await until(() => followTimers(timers).some((t) => t.ms === 0), 'the stream is scheduled at once');
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [0], 'not at the next gathering look');
  fire(timers, 0);
  await until(() => srv.openStreams === 1, 'the stream is open');
  assert.deepEqual(idsOf(streamsOf(srv)[0]), ['chk1', 'chk2']);
  srv.finishAll();
  await service.poll();
});

test('the longest stream time is over: the next stream opens at once with what is still pending', async () => {
  const slow = ['https://news.test/t1.jpg', 'https://news.test/t2.jpg'];
  const server = fakeServer({ slow, streams: true });
  const { ext, srv, service, timers } = setup({ server });
  await service.check(1, slow.map((url) => ({ url })));
  await service.urlBatcher.idle();
  const first = service.poll();
  await until(() => srv.openStreams === 1, 'the stream is open');
  srv.finish(slow[0]);
  await until(() => delivered(ext, 1).length === 1, 'the first verdict');
  srv.endStreams();
  await first;
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [0]);
  fire(timers, 0);
  await until(() => srv.openStreams === 1, 'the next stream is open');
  assert.deepEqual(idsOf(streamsOf(srv)[1]), ['chk2'], 'only what is still pending');
  srv.finishAll();
  await service.poll();
  assert.deepEqual(delivered(ext, 1).map((r) => r.key), slow);
  assert.equal(streamsOf(srv).length, 2);
});

test('checks added while a stream is open are gathered, then one new stream follows all of them', async () => {
  const slow = Array.from({ length: 4 }, (_, i) => `https://news.test/g${i}.jpg`);
  const server = fakeServer({ slow, streams: true });
  const { ext, srv, service, timers } = setup({ server });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  const first = service.poll();
  await until(() => srv.openStreams === 1, 'the first stream is open');
  await service.check(1, [{ url: slow[1] }]);
  await service.urlBatcher.idle();
  await service.check(2, [{ url: slow[2] }]);
  await service.urlBatcher.idle();
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [STREAM_GATHER_MS], 'one gather for both batches');
  await service.check(2, [{ url: slow[3] }]); // queued in the batch window, not sent yet: more is on its way
  fire(timers, STREAM_GATHER_MS);
  await until(() => followTimers(timers).length === 2, 'gathering goes on while a batch is coming');
  assert.equal(srv.openStreams, 1, 'the stream stays open meanwhile');
  await service.urlBatcher.idle();
  fire(timers, STREAM_GATHER_MS);
  await first; // the first stream closed, to open one with all four
  fire(timers, 0);
  await until(() => srv.openStreams === 1, 'the next stream is open');
  assert.equal(streamsOf(srv).length, 2);
  assert.deepEqual(idsOf(streamsOf(srv)[1]).sort(), ['chk1', 'chk2', 'chk3', 'chk4']);
  srv.finishAll();
  await service.poll();
  assert.deepEqual(delivered(ext, 1).map((r) => r.key).sort(), slow.slice(0, 2));
  assert.deepEqual(delivered(ext, 2).map((r) => r.key).sort(), slow.slice(2));
  assert.equal(streamsOf(srv).length, 2);
});

test('gathering ends after at most MAX_STREAM_GATHER_MS even while batches keep coming', async () => {
  const slow = ['https://news.test/m0.jpg', 'https://news.test/m1.jpg', 'https://news.test/m2.jpg'];
  const server = fakeServer({ slow, streams: true });
  const { srv, service, timers, tick } = setup({ server });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  const first = service.poll();
  await until(() => srv.openStreams === 1, 'the first stream is open');
  await service.check(1, [{ url: slow[1] }]);
  await service.urlBatcher.idle();
  await service.check(1, [{ url: slow[2] }]); // stays queued: the batcher is busy throughout
  tick(MAX_STREAM_GATHER_MS);
  fire(timers, STREAM_GATHER_MS);
  await first;
  assert.equal(srv.openStreams, 0, 'reopened with what is pending now, not held back for the batch');
});

test('a stream that breaks backs off as long polls do; a server without streams is asked with long polls', async () => {
  const slow = ['https://news.test/b.jpg'];
  const server = fakeServer({ slow, streams: true });
  let down = true;
  const fetch = async (input, init) => {
    if (down && String(input).includes('/checks/events')) throw new TypeError('Failed to fetch');
    return server.fetch(input, init);
  };
  const ext = fakeExt();
  const timers = manualTimers();
  const service = new Service({ ext, fetch, now: () => 1_000, ...timers });
  await service.check(1, [{ url: slow[0] }]);
  await service.urlBatcher.idle();
  await service.poll();
  await service.poll();
  assert.deepEqual(followTimers(timers).map((t) => t.ms), [backoff(1)]);
  assert.equal(server.requests.filter((r) => r.url.includes('/api/v1/checks?')).length, 0, 'a failure is not a 404');
  down = false;
  const done = service.poll();
  await until(() => server.openStreams === 1, 'the stream is open');
  server.finishAll();
  await done;
  assert.equal(delivered(ext, 1)[0].verdict.level, 'no-evidence');
  assert.equal(followTimers(timers).length, 0);
});
