import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ApiError, CredenceApi, explainReportError, SseParser } from '../src/lib/api.js';

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

test('server-sent events are parsed however the bytes are split: CRLF, comments, several data lines', () => {
  const text = ': stream open\r\n\r\nevent: result\r\ndata: {"check_id":"c1",\r\ndata: "status":"done"}\r\n\r\n'
    + ': heartbeat\n\ndata:plain\n\nevent: done\ndata: {"pending": []}\n\nevent: result\ndata: {"half"';
  const whole = new SseParser().push(text);
  const expected = [
    { event: 'result', data: '{"check_id":"c1",\n"status":"done"}' },
    { event: 'message', data: 'plain' },
    { event: 'done', data: '{"pending": []}' },
  ];
  assert.deepEqual(whole, expected, 'an event without its blank line is not complete yet');
  for (let size = 1; size <= 7; size += 1) { // every split, a \r\n cut in two included
    const parser = new SseParser();
    const got = [];
    for (let i = 0; i < text.length; i += size) got.push(...parser.push(text.slice(i, i + size)));
    assert.deepEqual(got, expected, `chunks of ${size}`);
  }
});

function streaming(chunks, { status = 200, type = 'text/event-stream' } = {}) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    const body = new ReadableStream({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
        controller.close();
      },
    });
    return new Response(body, { status, headers: { 'Content-Type': type } });
  };
  return { calls, fetch };
}

test('events: results are handed over as they are read (those read together at once), then how the stream ended', async () => {
  const { calls, fetch } = streaming([': stream open\n\nevent: result\ndata: {"check_id":"c1","status":"done","ver',
    'dict":{"level":"no-evidence"}}\n\nevent: result\ndata: not json\n\n',
    'event: result\ndata: {"check_id":"c2"}\n\nevent: result\ndata: {"check_id":"c3"}\n\n',
    'event: timeout\ndata: {"pending":["c4"]}\n\n']);
  const api = new CredenceApi({ server: 'http://s.test', apiKey: 'cred_x', fetch });
  const results = [];
  const end = await api.events(['c1', 'c2', 'c3', 'c4'], { onResults: (r) => results.push(r) });
  assert.deepEqual(results, [[{ check_id: 'c1', status: 'done', verdict: { level: 'no-evidence' } }],
    [{ check_id: 'c2' }, { check_id: 'c3' }]], 'as read: one call per chunk that completed any');
  assert.deepEqual(end, { end: 'timeout', pending: ['c4'] });
  assert.equal(calls[0].url, 'http://s.test/api/v1/checks/events?ids=c1,c2,c3,c4');
  assert.equal(calls[0].init.credentials, 'omit');
  assert.equal(calls[0].init.headers.Authorization, 'Bearer cred_x');
  const cut = await new CredenceApi({ server: 'http://s.test', fetch: streaming([': open\n\n']).fetch })
    .events(['c1'], { onResults: () => {} });
  assert.deepEqual(cut, { end: 'cut' }, 'ended without a final event');
  await assert.rejects(api.events(Array.from({ length: 301 }, (_, i) => `c${i}`), { onResults: () => {} }), RangeError);
});

test('events: an older server (404) or a proxy that answers something else is "no stream"; 400 is not', async () => {
  const old = new CredenceApi({ server: 'http://s.test', fetch: recorder(404, { error: 'no such check' }).fetch });
  await assert.rejects(old.events(['c1'], { onResults: () => {} }), (e) => e instanceof ApiError && e.noStream && e.status === 404);
  const html = new CredenceApi({ server: 'http://s.test', fetch: streaming(['<html>'], { type: 'text/html' }).fetch });
  await assert.rejects(html.events(['c1'], { onResults: () => {} }), (e) => e.noStream === true);
  const bad = new CredenceApi({ server: 'http://s.test', fetch: recorder(400, { error: 'bad ids' }).fetch });
  await assert.rejects(bad.events(['c1'], { onResults: () => {} }), (e) => e.status === 400 && !e.noStream && e.message === 'bad ids');
  const down = new CredenceApi({ server: 'http://s.test', fetch: async () => { throw new TypeError('Failed to fetch'); } });
  await assert.rejects(down.events(['c1'], { onResults: () => {} }), (e) => e.status === 0 && !e.noStream);
});
