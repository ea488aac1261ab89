import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ApiError, CredenceApi, explainReportError } from '../src/lib/api.js';

function recorder(status = 200, body = { results: [] }) {
  const calls = [];
  const fetch = async (url, init) => {
    let text = init.body;
    if (init.body instanceof FormData) text = await new Response(init.body).text();
    calls.push({ url, init, text });
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  };
  return { calls, fetch };
}

test('checks: JSON body with urls and wait, no cookies, no referrer, key as Bearer', async () => {
  const { calls, fetch } = recorder(200, { results: [{ url: 'u', status: 'pending', check_id: 'c1', verdict: null }] });
  const api = new CredenceApi({ server: 'http://s.test/', apiKey: 'cred_x', fetch });
  const results = await api.checks(['https://a.test/1.jpg'], { wait: 2 });
  assert.equal(results[0].check_id, 'c1');
  const [call] = calls;
  assert.equal(call.url, 'http://s.test/api/v1/checks');
  assert.equal(call.init.method, 'POST');
  assert.deepEqual(JSON.parse(call.text), { urls: ['https://a.test/1.jpg'], wait: 2 });
  assert.equal(call.init.credentials, 'omit');
  assert.equal(call.init.referrerPolicy, 'no-referrer');
  assert.equal(call.init.headers.Authorization, 'Bearer cred_x');
  assert.equal(call.init.headers['Content-Type'], 'application/json');
});

test('more than 100 per request is refused before sending', async () => {
  const { calls, fetch } = recorder();
  const api = new CredenceApi({ server: 'http://s.test', fetch });
  await assert.rejects(api.checks(Array.from({ length: 101 }, (_, i) => `https://a.test/${i}`)), RangeError);
  await assert.rejects(api.status(Array.from({ length: 101 }, (_, i) => `c${i}`)), RangeError);
  await assert.rejects(api.lookup(Array.from({ length: 101 }, () => 'a'.repeat(64))), RangeError);
  assert.equal(calls.length, 0);
});

test('status and lookup: one request for many ids / digests; no key means no Authorization', async () => {
  const { calls, fetch } = recorder();
  const api = new CredenceApi({ server: 'http://s.test', fetch });
  await api.status(['a', 'b']);
  await api.lookup(['0'.repeat(64)]);
  assert.equal(calls[0].url, 'http://s.test/api/v1/checks?ids=a,b');
  await api.status(['a'], { wait: 5 });
  assert.equal(calls.at(-1).url, 'http://s.test/api/v1/checks?ids=a&wait=5', 'a long poll');
  assert.deepEqual(JSON.parse(calls[1].text), { sha256: ['0'.repeat(64)] });
  assert.equal(calls[0].init.headers.Authorization, undefined);
});

test('upload: multipart file named "image", never the address it came from', async () => {
  const { calls, fetch } = recorder(200, { results: [{ url: null, status: 'pending', check_id: 'u1', verdict: null }] });
  const api = new CredenceApi({ server: 'http://s.test', fetch });
  const result = await api.upload(new Uint8Array([1, 2, 3]), { type: 'image/png', wait: 2 });
  assert.equal(result.check_id, 'u1');
  assert.match(calls[0].text, /Content-Disposition: form-data; name="file"; filename="image"/i);
  assert.match(calls[0].text, /name="wait"\r\n\r\n2/);
});

test('errors carry the server message; network failures say the server is unreachable', async () => {
  const { fetch } = recorder(400, { error: 'some URLs cannot be checked', details: [{ index: 0 }] });
  const api = new CredenceApi({ server: 'http://s.test', fetch });
  await assert.rejects(api.checks(['x']), (e) => e instanceof ApiError && e.status === 400 && /cannot be checked/.test(e.message));
  const down = new CredenceApi({ server: 'http://s.test', fetch: async () => { throw new TypeError('Failed to fetch'); } });
  await assert.rejects(down.status(['a']), (e) => e.status === 0 && /unreachable at http:\/\/s\.test/.test(e.message));
});

test('report as fake: POST /reports with url and note, Bearer key', async () => {
  const { calls, fetch } = recorder(201, { id: 'r1', status: 'pending' });
  const api = new CredenceApi({ server: 'http://s.test', apiKey: 'cred_reporter', fetch });
  const body = await api.report('https://a.test/fake.jpg', 'Seen in a debunk by X');
  assert.equal(body.status, 'pending');
  assert.equal(calls[0].url, 'http://s.test/api/v1/reports');
  assert.equal(calls[0].init.method, 'POST');
  assert.deepEqual(JSON.parse(calls[0].text), { url: 'https://a.test/fake.jpg', note: 'Seen in a debunk by X' });
  assert.equal(calls[0].init.headers.Authorization, 'Bearer cred_reporter');
});

test('report as fake without a key asks for one and sends nothing', async () => {
  const { calls, fetch } = recorder();
  const api = new CredenceApi({ server: 'http://s.test', fetch });
  await assert.rejects(api.report('https://a.test/x.jpg', 'n'), /API key with the reporter role/);
  assert.equal(calls.length, 0);
});

test('report errors are explained in words a reader can act on', async () => {
  for (const [status, words] of [[401, /did not accept this API key/], [403, /needs the reporter role/],
    [404, /does not take reports yet/], [429, /Too many/]]) {
    const { fetch } = recorder(status, { error: 'x' });
    const api = new CredenceApi({ server: 'http://s.test', apiKey: 'cred_k', fetch });
    await assert.rejects(api.report('https://a.test/x.jpg', 'n'), (e) => e.status === status && words.test(e.message));
  }
  const other = new Error('boom');
  assert.equal(explainReportError(other), other);
});
