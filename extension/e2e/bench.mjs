// Benchmark (not a test): the extension's cost on a 300-image page in Chromium or Firefox, and how soon
// all badges show compared with the server's own time to finish the same number of checks.
//   node e2e/bench.mjs CONFIG.json   with {"server": "http://127.0.0.1:PORT", "extensionDir": "...",
//   "browser": "chromium" | "firefox", "chromium": "/usr/bin/chromium", "firefox": "/usr/bin/firefox-esr",
//   "images": 300, "output": "bench.json"}
// Chromium's figures come from DevTools (performance metrics, profiles, traces). Firefox's automation
// (WebDriver BiDi) has none of those: there, as in Chromium, the CPU time of the browser's processes is
// read from Linux's /proc (the page's main thread, where the content script runs, its whole process,
// the extension's process, the rest), with and without the extension.
// extensionDir is a copy of src/ whose defaults point at the proxy this script starts (see
// tests/test_extension.py::test_extension_benchmark, which runs it against a real `credence serve`).
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';

import { writeContent } from '../build.mjs';
import { levelsAt } from './probe.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
// CREDENCE_EXT_BENCH_PROFILE=1: also a profiled run; =FILE.cpuprofile: and its raw profile there.
const profileEnv = process.env.CREDENCE_EXT_BENCH_PROFILE;
config.profile ??= Boolean(profileEnv);
if (profileEnv && profileEnv !== '1') config.profileOutput ??= profileEnv;
// CREDENCE_EXT_BENCH_TRACE=FILE.json: the profiled run also records a DevTools trace there (what the
// script's time holds besides script: style, layout and hit tests it forced).
config.traceOutput ??= process.env.CREDENCE_EXT_BENCH_TRACE || undefined;
const sampling = config.profile; // the CPU profile; a trace alone (below) leaves it out, and its cost
if (config.traceOutput) config.profile = true;
const N = config.images ?? 300;
const FIREFOX = config.browser === 'firefox';
if (FIREFOX && (config.profile || config.traceOutput)) throw new Error('profiles and traces need DevTools: Chromium only');
const VIEWPORT = { width: 1280, height: 800 };
const W = 56;
const H = 42;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A distinct dark-noise PNG (never near a badge colour, so pixel probes stay clean). */
function png(seed) {
  let x = seed * 2654435761 >>> 0;
  const raw = Buffer.alloc((W * 3 + 1) * H);
  for (let y = 0; y < H; y += 1) {
    raw[y * (W * 3 + 1)] = 0;
    for (let i = 1; i <= W * 3; i += 1) {
      x = (x * 1103515245 + 12345) >>> 0;
      raw[y * (W * 3 + 1) + i] = (x >>> 24) % 60;
    }
  }
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'ascii');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'ascii'), data])) >>> 0, 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function listen(handler) {
  const server = http.createServer(handler).listen(0, '127.0.0.1');
  return new Promise((resolve) => server.on('listening', () => resolve(server)));
}

const runId = Date.now();
const images = new Map(); // path -> bytes
const sets = new Map(); // image set -> its number
const media = await listen((req, res) => {
  const path = req.url.split('?')[0];
  if (path.startsWith('/page-')) {
    const set = path.slice(6, -5);
    const tags = Array.from({ length: N }, (_, i) => `<img id="i${i}" src="/${set}/${i}.png" width="${W}" height="${H}" alt="">`);
    res.setHeader('Content-Type', 'text/html');
    res.end(`<!doctype html><html><head><style>body{margin:8px;background:#1f2933}img{margin:0 4px 4px 0;vertical-align:top}`
      + `</style></head><body>${tags.join('')}<div style="height:3000px"></div></body></html>`);
    return;
  }
  if (!images.has(path)) {
    const [, set, file] = path.split('/');
    if (!sets.has(set)) sets.set(set, sets.size); // each set its own bytes: every run's checks are fresh
    images.set(path, png(runId % 100000 + sets.get(set) * 100000 + Number.parseInt(file, 10)));
  }
  res.setHeader('Content-Type', 'image/png');
  res.end(images.get(path));
});
const mediaBase = `http://127.0.0.1:${media.address().port}`;

// A counting proxy in front of the server: what the extension asks, request by request.
const requests = [];
const timeline = []; // [ms since the extension's page began loading, request, ms it took, results pushed by second]
let pageStart = 0;
const proxy = await listen((req, res) => {
  const target = new URL(req.url, config.server);
  requests.push(`${req.method} ${target.pathname}`);
  const entry = [Date.now() - pageStart, `${req.method} ${target.pathname}`, null, {}];
  timeline.push(entry);
  res.on('finish', () => { entry[2] = Date.now() - pageStart - entry[0]; });
  const up = http.request(target, { method: req.method, headers: req.headers }, (answer) => {
    answer.on('data', (chunk) => { // a stream: how many results it pushed in each second
      const results = String(chunk).split('event: result').length - 1;
      const second = Math.floor((Date.now() - pageStart) / 1000);
      if (results) entry[3][second] = (entry[3][second] ?? 0) + results;
    });
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  req.pipe(up);
});
writeFileSync(join(config.extensionDir, 'lib', 'defaults.js'), readFileSync(join(config.extensionDir, 'lib', 'defaults.js'), 'utf8')
  .replace(/"server": ?"[^"]*"|server: '[^']*'/, `"server": "http://127.0.0.1:${proxy.address().port}"`));
await writeContent(config.extensionDir); // its bundle holds the defaults too (a copy without one keeps its loader)

/** The server's own time for N fresh checks: POST them (100 a request), poll until all are done. */
async function serverTime(set) {
  const t0 = Date.now();
  const urls = Array.from({ length: N }, (_, i) => `${mediaBase}/${set}/${i}.png`);
  const ids = [];
  for (let i = 0; i < urls.length; i += 100) {
    const r = await fetch(`${config.server}/api/v1/checks`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ urls: urls.slice(i, i + 100) }) });
    for (const result of (await r.json()).results) if (result.status !== 'done') ids.push(result.check_id);
  }
  let left = ids;
  while (left.length) {
    await sleep(100);
    const next = [];
    for (let i = 0; i < left.length; i += 100) {
      const r = await fetch(`${config.server}/api/v1/checks?ids=${left.slice(i, i + 100).join(',')}`);
      for (const result of (await r.json()).results) if (result.status === 'pending') next.push(result.check_id);
    }
    left = next;
  }
  return Date.now() - t0;
}

/**
 * Where the script time goes (CREDENCE_EXT_BENCH_PROFILE=1): self time of a V8 CPU profile taken from
 * load to the last metrics, by script and by function (top 25), so a change can aim at the biggest cost.
 */
function summarise(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map(); // node id -> ms
  for (let i = 0; i < profile.samples.length; i += 1) {
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  const byScript = {};
  const byFunction = {};
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    if (functionName === '(idle)') continue;
    const script = url ? url.replace(/^chrome-extension:\/\/[^/]+\//, 'ext:') : functionName || '(anonymous)';
    const name = `${functionName || '(anonymous)'} ${script}:${lineNumber + 1}`;
    byScript[script] = (byScript[script] ?? 0) + ms;
    byFunction[name] = (byFunction[name] ?? 0) + ms;
  }
  const top = (table, n) => Object.fromEntries(Object.entries(table).sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, v]) => [k, +v.toFixed(1)]));
  return { by_script: top(byScript, 25), by_function: top(byFunction, 25) };
}

/**
 * What a DevTools trace says of the extension's script (CREDENCE_EXT_BENCH_TRACE): thread CPU time and
 * wall time of the page's main thread's top-level script calls into the extension (its own functions,
 * and the messages delivered to it through the browser's bindings, which the trace shows without a
 * script address), by function. CPU time does not count the time the thread waited for a core, which
 * on a loaded machine is most of the wall time the performance metrics report.
 */
function summariseTrace(buffer) {
  const raw = JSON.parse(buffer);
  const events = Array.isArray(raw) ? raw : raw.traceEvents;
  const mains = new Set(events.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain')
    .map((e) => `${e.pid}:${e.tid}`));
  const url = (e) => e.args?.data?.url ?? '';
  const byThread = new Map();
  for (const e of events) {
    const key = `${e.pid}:${e.tid}`;
    if (e.ph !== 'X' || !mains.has(key) || (e.name !== 'FunctionCall' && e.name !== 'EvaluateScript')) continue;
    if (!byThread.has(key)) byThread.set(key, []);
    byThread.get(key).push(e);
  }
  // The page's thread: the one running the extension's script.
  const calls = [...byThread.values()].sort((a, b) => b.filter((e) => url(e).startsWith('chrome-extension:')).length
    - a.filter((e) => url(e).startsWith('chrome-extension:')).length)[0] ?? [];
  calls.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const table = {};
  let end = -1;
  let cpu = 0;
  let wall = 0;
  for (const e of calls) {
    if (e.ts < end) continue; // nested in the last top-level call
    end = e.ts + e.dur;
    const d = e.args?.data ?? {};
    const own = url(e).startsWith('chrome-extension:');
    // Not the extension's: skipped, but for calls with no script at all (scriptId 0), which are the
    // browser's bindings delivering messages to the extension's listeners (the bench page has no script).
    if (!own && (url(e) || d.scriptId !== '0')) continue;
    const name = own ? `${d.functionName || '(anonymous)'} content.js:${(d.lineNumber ?? 0) + 1}` : '(messages from the extension)';
    table[name] ??= { cpu_ms: 0, wall_ms: 0, calls: 0 };
    table[name].cpu_ms += (e.tdur ?? 0) / 1000;
    table[name].wall_ms += e.dur / 1000;
    table[name].calls += 1;
    cpu += (e.tdur ?? 0) / 1000;
    wall += e.dur / 1000;
  }
  const round = (n) => +n.toFixed(1);
  return {
    script_cpu_ms: round(cpu), script_wall_ms: round(wall),
    by_function: Object.fromEntries(Object.entries(table).sort((a, b) => b[1].cpu_ms - a[1].cpu_ms).slice(0, 15)
      .map(([k, v]) => [k, { cpu_ms: round(v.cpu_ms), wall_ms: round(v.wall_ms), calls: v.calls }])),
  };
}

/** Stop the trace started with the profiled run, write it (for DevTools) and summarise it. */
async function saveTrace(cdp, file) {
  const complete = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.end');
  const { stream } = await complete;
  const chunks = [];
  for (;;) {
    const { data, eof, base64Encoded } = await cdp.send('IO.read', { handle: stream });
    chunks.push(base64Encoded ? Buffer.from(data, 'base64') : Buffer.from(data));
    if (eof) break;
  }
  await cdp.send('IO.close', { handle: stream });
  const trace = Buffer.concat(chunks);
  writeFileSync(file, trace);
  return summariseTrace(trace);
}

/** Every process under `root` (its children, theirs...), from /proc: pid -> {ppid, comm, cmd}. */
function processTree(root) {
  const all = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const comm = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
      all.set(Number(name), { ppid, comm, cmd: readFileSync(`/proc/${name}/cmdline`, 'utf8') });
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Map();
  if (all.has(root)) tree.set(root, all.get(root));
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of all) {
      if (!tree.has(pid) && tree.has(p.ppid)) {
        tree.set(pid, p);
        grew = true;
      }
    }
  }
  return tree;
}

/** What a browser process is: the page's (web content), the extension's, or the rest (browser, GPU, network...). */
function kindOf(p) {
  if (FIREFOX) {
    if (p.comm === 'WebExtensions') return 'extension';
    return /^(Isolated Web|Web Content)/.test(p.comm) ? 'page' : 'other';
  }
  if (!p.cmd.includes('--type=renderer')) return 'other';
  return p.cmd.includes('--extension-process') ? 'extension' : 'page';
}

/** ns on a CPU of one thread (/proc schedstat: run time, not time waiting for a core). */
function runNs(path) {
  try {
    return Number(readFileSync(path, 'utf8').split(' ')[0]);
  } catch {
    return 0;
  }
}

/**
 * CPU time so far (ms) of the browser's processes by kind: `main` is the main threads of the page's
 * processes (where the page's script, the content script, style and layout run), `all` every thread.
 */
function cpuNow(root) {
  const out = { page_main: 0, page_all: 0, extension_all: 0, other_all: 0 };
  for (const [pid, p] of processTree(root)) {
    const kind = kindOf(p);
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      const ms = runNs(`/proc/${pid}/task/${tid}/schedstat`) / 1e6;
      out[`${kind}_all`] += ms;
      if (kind === 'page' && Number(tid) === pid) out.page_main += ms;
    }
  }
  return out;
}

function cpuBetween(a, b) {
  return Object.fromEntries(Object.keys(b).map((k) => [k, Math.round(b[k] - a[k])]));
}

/** The pid of the browser started with this profile folder (Playwright's persistent context does not say). */
function browserPid(profile) {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes(`--user-data-dir=${profile}`) && !cmd.includes('--type=')) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/** Firefox through puppeteer (WebDriver BiDi): the page, screenshots and the wheel, no DevTools metrics. */
async function firefoxSession(withExtension) {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: config.firefox ?? '/usr/bin/firefox-esr', headless: true, defaultViewport: VIEWPORT,
    extraPrefsFirefox: { 'extensions.webextensions.restrictedDomains': '' },
  });
  try {
    if (withExtension) await browser.installExtension(config.extensionDir);
    const page = (await browser.pages())[0] ?? await browser.newPage();
    await page.setViewport(VIEWPORT);
    return {
      page, pid: browser.process().pid, metrics: null,
      screenshot: async () => Buffer.from(await page.screenshot({ type: 'png' })),
      wheel: (dy) => page.mouse.wheel({ deltaY: dy }),
      close: () => browser.close(),
    };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

/** Chromium through Playwright, with DevTools: performance metrics, and the profile and trace when asked. */
async function chromiumSession(withExtension, profiling) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'credence-bench-'));
  const args = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--headless=new', '--disable-background-networking'];
  if (withExtension) args.push(`--disable-extensions-except=${config.extensionDir}`, `--load-extension=${config.extensionDir}`);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: config.chromium ?? '/usr/bin/chromium', headless: true, viewport: VIEWPORT, deviceScaleFactor: 1,
    ignoreDefaultArgs: withExtension ? ['--disable-extensions'] : [], args,
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  try {
    if (withExtension) {
      if (!context.serviceWorkers().length) await context.waitForEvent('serviceworker', { timeout: 15000 });
    }
    const page = context.pages()[0] ?? await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    if (profiling && config.traceOutput) {
      await cdp.send('Tracing.start', { transferMode: 'ReturnAsStream', traceConfig: {
        includedCategories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'blink'] } });
    }
    if (profiling && sampling) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
      await cdp.send('Profiler.start');
    }
    return {
      page, cdp, pid: browserPid(profile), close,
      metrics: async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value])),
      screenshot: () => page.screenshot({ type: 'png' }),
      wheel: (dy) => page.mouse.wheel(0, dy),
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * One page load, with or without the extension. With it, screenshots every 250 ms until all badges
 * show; without it, `shots` screenshots at the same pace, so the automation's own in-page work for them
 * (Playwright runs script in the page) counts on both sides and the difference is the extension's.
 * `during`: started with the page's load, awaited at the end (the server's own time beside the browser).
 */
async function browse(withExtension, set, { profiling = false, shots = 0, during = null } = {}) {
  const session = FIREFOX ? await firefoxSession(withExtension) : await chromiumSession(withExtension, profiling);
  try {
    const { page, cdp } = session;
    const metrics = async () => (session.metrics ? session.metrics() : null);
    const before = requests.length;
    const c0 = cpuNow(session.pid);
    const t0 = Date.now();
    pageStart = t0;
    timeline.length = 0;
    const beside = during ? during() : null;
    await page.goto(`${mediaBase}/page-${set}.html`);
    const m0 = await metrics();
    let allBadges = null;
    let taken = 0;
    const rects = await page.evaluate(() => Object.fromEntries([...document.images].map((img) => {
      const r = img.getBoundingClientRect();
      return [img.id, { left: r.left, top: r.top }];
    })));
    const deadline = Date.now() + (config.windowMs ?? 45000);
    while (Date.now() < deadline) {
      if (withExtension && allBadges === null) {
        const seen = levelsAt(await session.screenshot(), rects);
        taken += 1;
        if (Object.values(seen).every((level) => level !== 'none' && level !== 'offscreen')) allBadges = Date.now() - t0;
      } else if (!withExtension && taken < shots) {
        await session.screenshot();
        taken += 1;
      }
      if (allBadges !== null || (!withExtension && taken >= shots)) break;
      await sleep(250);
    }
    await sleep(Math.max(0, t0 + 5000 - Date.now())); // at least 5 s after loading, both ways
    const m1 = await metrics();
    const c1 = cpuNow(session.pid);
    let cpu;
    if (profiling && sampling) {
      const { profile: raw } = await cdp.send('Profiler.stop');
      cpu = summarise(raw);
      if (config.profileOutput) writeFileSync(config.profileOutput, JSON.stringify(raw)); // for DevTools
    }
    const traced = profiling && config.traceOutput ? await saveTrace(cdp, config.traceOutput) : null;
    // Scrolling: 120 wheel steps down and up.
    const c1s = cpuNow(session.pid);
    for (let i = 0; i < 120; i += 1) {
      await session.wheel(i < 60 ? 100 : -100);
      await sleep(16);
    }
    await sleep(500);
    const m2 = await metrics();
    const c2 = cpuNow(session.pid);
    return {
      ...(m1 ? {
        script_ms: Math.round((m1.ScriptDuration - 0) * 1000), layouts: m1.LayoutCount, layout_ms: Math.round(m1.LayoutDuration * 1000),
        heap_mb: +(m1.JSHeapUsedSize / 1048576).toFixed(2),
        scroll_script_ms: Math.round((m2.ScriptDuration - m1.ScriptDuration) * 1000), scroll_layouts: m2.LayoutCount - m1.LayoutCount,
      } : {}),
      // CPU time of the browser's processes (/proc), load to badges and over the scroll (see cpuNow).
      cpu_ms: cpuBetween(c0, c1), scroll_cpu_ms: cpuBetween(c1s, c2),
      all_badges_ms: allBadges, screenshots: taken, page_start_epoch_ms: t0,
      ...(beside ? { beside: await beside } : {}), timeline: timeline.slice(), requests: requests.slice(before),
      ...(m0 ? { load_metrics: { script_ms: Math.round(m0.ScriptDuration * 1000) } } : {}),
      ...(cpu ? { profile: cpu } : {}),
      ...(traced ? { trace: traced } : {}),
    };
  } finally {
    await session.close();
  }
}

// Each page load has fresh images of its own. Without the extension, the page loads while the server checks as
// many images posted straight to it: the server's own time beside the same browser's load.
const own = await serverTime('own');
const withExt = await browse(true, 'ext');
const without = await browse(false, 'plain', { shots: withExt.screenshots, during: () => serverTime('own-beside') });
// A third run, profiled (the profiler's own cost stays out of the figures above).
const profiled = config.profile ? await browse(true, 'prof', { profiling: true }) : null;
const count = (prefix) => withExt.requests.filter((r) => r.startsWith(prefix)).length;
const result = {
  images: N,
  server_own_ms: own,
  server_own_beside_browser_ms: without.beside,
  without: { ...without, requests: without.requests.length, timeline: undefined },
  with: { ...withExt, requests: withExt.requests.length, timeline: undefined },
  posts: count('POST /api/v1/checks'),
  polls: count('GET /api/v1/checks?'), // long polls (an older extension, or a server without streams)
  streams: count('GET /api/v1/checks/events'),
  browser: FIREFOX ? 'firefox' : 'chromium',
  server_nice: config.server_nice ?? null, // the server's CPU priority (tests/test_extension.py)
  // DevTools' script time (Chromium only: Firefox's automation has no such metric).
  script_ms_per_100_images: FIREFOX ? null : +((withExt.script_ms - without.script_ms) / (N / 100)).toFixed(1),
  // CPU time of the page's main thread (script, the content script's included, style, layout), with
  // less without, in both browsers; and what the extension's own process used (its service worker or
  // background page), with less without.
  page_main_cpu_ms_per_100_images: +((withExt.cpu_ms.page_main - without.cpu_ms.page_main) / (N / 100)).toFixed(1),
  extension_process_cpu_ms: withExt.cpu_ms.extension_all - without.cpu_ms.extension_all,
  images_per_request: +(N / Math.max(1, withExt.requests.length)).toFixed(1),
  ...(profiled ? { profiled: { script_ms: profiled.script_ms, layouts: profiled.layouts, profile: profiled.profile,
    trace: profiled.trace } } : {}),
  // All badges against the server's own time, alone and beside the browser loading the page without the extension.
  badges_vs_server: withExt.all_badges_ms === null ? null : +(withExt.all_badges_ms / own).toFixed(2),
  badges_vs_server_beside_browser: withExt.all_badges_ms === null ? null : +(withExt.all_badges_ms / without.beside).toFixed(2),
  timeline: withExt.timeline.map(([at, what, took, pushed]) => `${at} ms: ${what} (${took} ms)${
    Object.keys(pushed).length ? `, results by second: ${JSON.stringify(pushed)}` : ''}`),
};
console.log(JSON.stringify(result, null, 1));
if (config.output) writeFileSync(config.output, JSON.stringify(result, null, 1));
media.close();
proxy.close();
