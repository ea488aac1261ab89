// Entry point of the browser end-to-end runs: `node e2e/run.mjs CONFIG.json`.
// Chromium is driven by playwright-core, Firefox ESR by puppeteer-core, both with the system's
// browsers (never a downloaded one). Writes what it observed to config.output for pytest to judge.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { cloakRun, hardeningRun, mainRun, privacyRun, save, until, uploadsRun, videoRun } from './scenario.mjs';
import { levelsAt } from './probe.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const VIEWPORT = { width: 1280, height: 800 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function chromiumBrowser(extensionDir) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'credence-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: config.chromium ?? '/usr/bin/chromium',
    headless: true,
    viewport: VIEWPORT,
    deviceScaleFactor: 1,
    ignoreDefaultArgs: ['--disable-extensions'], // without this the service worker never starts
    args: [
      '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--headless=new',
      `--disable-extensions-except=${extensionDir}`, `--load-extension=${extensionDir}`,
    ],
  });
  const worker = context.serviceWorkers()[0] ?? await context.waitForEvent('serviceworker', { timeout: 15000 });
  const extensionId = new URL(worker.url()).host;
  // A page loaded before the worker's listeners exist goes unseen (its Referrer-Policy header among it).
  await until(() => worker.evaluate(() => chrome.webRequest.onHeadersReceived.hasListeners()), Boolean, 5000);
  const logs = [];
  const workers = { started: 1 };
  context.on('serviceworker', () => { workers.started += 1; });
  context.on('page', (p) => p.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`)));
  for (const p of context.pages()) p.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  return {
    name: 'chromium',
    logs,
    workers,
    context,
    extensionId,
    async open(url) {
      const page = context.pages()[0] ?? await context.newPage();
      await page.goto(url);
      return page;
    },
    screenshot: (page) => page.screenshot({ type: 'png' }),
    mouseMove: (page, x, y) => page.mouse.move(x, y),
    click: (page, x, y) => page.mouse.click(x, y),
    press: (page, key) => page.keyboard.press(key),
    bringToFront: (page) => page.bringToFront(),
    async waitForNewPage(pattern, action) {
      const opened = context.waitForEvent('page', { predicate: (p) => pattern.test(p.url()) || p.url() === 'about:blank', timeout: 10000 });
      await action();
      const page = await opened;
      if (!pattern.test(page.url())) await page.waitForURL(pattern, { timeout: 10000 });
      await page.waitForLoadState('load');
      const report = { url: page.url(), body: await page.evaluate(() => document.body.innerText) };
      await page.close();
      return report;
    },
    /** Stop every service worker (the extension's included), as Chromium does to idle ones. */
    async stopWorker(page) {
      const before = context.serviceWorkers().length;
      const cdp = await context.newCDPSession(page);
      await cdp.send('ServiceWorker.enable');
      await cdp.send('ServiceWorker.stopAllWorkers');
      // Stopping is asynchronous, and the page may wake the worker again at once: wait until it was seen stopped.
      let stopped = false;
      for (const deadline = Date.now() + 10000; !stopped && Date.now() < deadline; await sleep(50)) {
        const { targetInfos } = await cdp.send('Target.getTargets');
        stopped = !targetInfos.some((t) => t.type === 'service_worker');
      }
      await cdp.detach();
      return { before, stopped };
    },
    /** The content-script side of "Check this image with Credence", as the menu sends it. */
    async forceCheck(pageUrl, imageUrl) {
      const worker = context.serviceWorkers()[0] ?? await context.waitForEvent('serviceworker');
      return worker.evaluate(async ({ pageUrl, imageUrl }) => {
        const [tab] = await chrome.tabs.query({ url: pageUrl });
        return chrome.tabs.sendMessage(tab.id, { type: 'force-check', url: imageUrl });
      }, { pageUrl, imageUrl });
    },
    /** The toolbar action of the tab showing `pageUrl`: badge text, colour and title (browser chrome). */
    async action(pageUrl) {
      const worker = context.serviceWorkers()[0] ?? await context.waitForEvent('serviceworker');
      return worker.evaluate(async (url) => {
        const [tab] = await chrome.tabs.query({ url });
        const tabId = tab.id;
        return { text: await chrome.action.getBadgeText({ tabId }), title: await chrome.action.getTitle({ tabId }),
          color: await chrome.action.getBadgeBackgroundColor({ tabId }) };
      }, pageUrl);
    },
    /** The popup of the tab showing `pageUrl`, opened as a page: its status line and its rows. */
    async readPopup(pageUrl) {
      const worker = context.serviceWorkers()[0] ?? await context.waitForEvent('serviceworker');
      const [tabId] = await worker.evaluate(async (url) => (await chrome.tabs.query({ url })).map((t) => t.id), pageUrl);
      const popup = await context.newPage();
      try {
        await popup.goto(`chrome-extension://${extensionId}/popup/popup.html?tab=${tabId}`);
        await popup.waitForSelector('body[data-ready=true]');
        return await popup.evaluate(() => ({
          status: document.getElementById('status').textContent,
          groups: [...document.querySelectorAll('.group')].map((g) => ({
            level: g.dataset.level, count: g.querySelectorAll('li').length,
            thumbs: [...g.querySelectorAll('img.thumb')].filter((i) => i.complete && i.naturalWidth > 0).length,
            texts: [...g.querySelectorAll('li')].map((li) => li.textContent),
          })),
        }));
      } finally {
        await popup.close();
      }
    },
    /** The element's border box as laid out, transforms included: four points from its own top-left corner. */
    async quad(page, selector) {
      const cdp = await context.newCDPSession(page);
      try {
        const { root } = await cdp.send('DOM.getDocument', { depth: 0 });
        const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
        const { model } = await cdp.send('DOM.getBoxModel', { nodeId });
        return [0, 2, 4, 6].map((i) => ({ x: model.border[i], y: model.border[i + 1] }));
      } finally {
        await cdp.detach();
      }
    },
    /** DevTools can see into closed shadow roots; page scripts cannot. */
    async inspectShadow(page) {
      const cdp = await context.newCDPSession(page);
      const { root } = await cdp.send('DOM.getDocument', { depth: -1, pierce: true });
      const hosts = [];
      const walk = (node) => {
        if (node.localName === 'credence-badges') hosts.push(node);
        for (const child of node.children ?? []) walk(child);
      };
      walk(root);
      return hosts.map((host) => {
        const shadow = host.shadowRoots?.[0];
        const levels = [];
        const attrs = (node) => Object.fromEntries((node.attributes ?? []).reduce((acc, v, i, all) => (i % 2 ? acc : [...acc, [v, all[i + 1]]]), []));
        const collect = (node) => {
          const a = attrs(node);
          if (a.class?.startsWith('wrap')) {
            levels.push({ level: a['data-level'], hidden: 'hidden' in a, at: a.style, mismatch: a['data-mismatch'] === 'true',
              poster: a['data-poster'] === 'true' });
          }
          if (node.localName === 'button') levels.at(-1).label = a['aria-label'];
          for (const child of node.children ?? []) collect(child);
        };
        if (shadow) collect(shadow);
        return { shadowRootType: shadow?.shadowRootType ?? null, style: attrs(host).style ?? null, badges: levels };
      });
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

async function firefoxBrowser(extensionDir) {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: config.firefox ?? '/usr/bin/firefox-esr',
    headless: true,
    defaultViewport: VIEWPORT,
    // the fullscreen test clicks a real button; BiDi's synthesized clicks do not count as a gesture here
    // getBoxQuads: the layout's own quad of a turned element (the test's reference for badge placement)
    extraPrefsFirefox: { 'extensions.webextensions.restrictedDomains': '', 'full-screen-api.allow-trusted-requests-only': false,
      'layout.css.getBoxQuads.enabled': true },
  });
  await browser.installExtension(extensionDir);
  const logs = [];
  return {
    name: 'firefox',
    logs,
    browser,
    async open(url) {
      const page = (await browser.pages())[0] ?? await browser.newPage();
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      await page.setViewport(VIEWPORT);
      await page.goto(url);
      return page;
    },
    screenshot: async (page) => Buffer.from(await page.screenshot({ type: 'png' })),
    /** The element's border box as laid out, transforms included: four points from its own top-left corner. */
    quad: (page, selector) => page.evaluate((sel) => {
      const q = document.querySelector(sel).getBoxQuads()[0];
      return [q.p1, q.p2, q.p3, q.p4].map((p) => ({ x: p.x, y: p.y }));
    }, selector),
    mouseMove: (page, x, y) => page.mouse.move(x, y),
    click: (page, x, y) => page.mouse.click(x, y),
    press: (page, key) => page.keyboard.press(key),
    bringToFront: (page) => page.bringToFront(),
    async waitForNewPage(pattern, action) {
      const known = new Set(await browser.pages());
      await action();
      const started = Date.now();
      while (Date.now() - started < 10000) {
        for (const page of await browser.pages()) {
          if (!known.has(page) && pattern.test(page.url())) {
            await sleep(300);
            const report = { url: page.url(), body: await page.evaluate(() => document.body?.innerText ?? '') };
            await page.close();
            return report;
          }
        }
        await sleep(100);
      }
      return { url: null, body: null };
    },
    async close() {
      await browser.close();
    },
  };
}

/** Chromium only: the options page takes an API key, and "Report as fake" sends a note with it. */
async function reportRun(browser, run, results) {
  const base = `chrome-extension://${browser.extensionId}`;
  const tab = await browser.context.newPage();
  const setKey = async (key) => {
    await tab.goto(`${base}/options/options.html`);
    await tab.waitForFunction(() => document.getElementById('server').value !== '');
    await tab.fill('#apiKey', key);
    await tab.click('button[type=submit]');
    await tab.waitForFunction(() => document.getElementById('saved').textContent !== '');
    return tab.evaluate(() => document.getElementById('saved').textContent);
  };
  const report = async () => {
    // What the context menu opens for an image (its URL comes from the menu's srcUrl).
    await tab.goto(`${base}/report/report.html?url=${encodeURIComponent(run.reportImage)}`);
    await tab.fill('#note', 'Seen in a debunk: this photo is from 2015.');
    await tab.click('#send');
    await tab.waitForFunction(() => document.getElementById('result').textContent !== '');
    return tab.evaluate(() => document.getElementById('result').textContent);
  };
  await setKey('cred_not-a-real-key');
  results.reportWithoutKey = await report();
  results.optionsSaved = await setKey(run.reporterKey);
  results.reportResult = await report();
  writeFileSync(join(config.artifacts, 'extension-report-chromium.png'), await tab.screenshot({ type: 'png' }));
  await tab.close();
}

async function popupRun(browser, page, run, results) {
  // Chromium only: Firefox refuses to navigate to moz-extension:// pages from automation.
  const worker = browser.context.serviceWorkers()[0] ?? await browser.context.waitForEvent('serviceworker');
  const [tabId] = await worker.evaluate(async (url) => (await chrome.tabs.query({ url })).map((t) => t.id), run.pageUrl);
  const popup = await browser.context.newPage();
  await popup.setViewportSize({ width: 400, height: 640 });
  await popup.goto(`chrome-extension://${browser.extensionId}/popup/popup.html?tab=${tabId}`);
  await popup.waitForSelector('body[data-ready=true]');
  const read = () => popup.evaluate(() => ({
    status: document.getElementById('status').textContent,
    host: document.getElementById('host').textContent,
    switchOn: document.getElementById('site-switch').checked,
    groups: [...document.querySelectorAll('.group')].map((g) => ({
      level: g.dataset.level,
      count: g.querySelectorAll('li').length,
      links: [...g.querySelectorAll('a')].map((a) => a.href),
    })),
  }));
  results.popup = await read();
  writeFileSync(join(config.artifacts, run.popupScreenshot), await popup.screenshot({ type: 'png', fullPage: true }));

  // The site switch: off removes the badges, on brings them back (from the cache).
  await fetch(`${config.proxy}/__mark/before-switch`).catch(() => {});
  await popup.click('#site-switch');
  await page.bringToFront(); // a background tab is not painted
  const rects = await page.evaluate((ids) => Object.fromEntries(ids.map((id) => {
    const r = document.getElementById(id).getBoundingClientRect();
    return [id, { left: r.left, top: r.top }];
  })), Object.keys(run.initial));
  const levels = async () => levelsAt(await browser.screenshot(page), rects);
  results.switchedOff = await until(levels, (seen) => Object.values(seen).every((l) => l === 'none'), 10000);
  await popup.bringToFront();
  // The popup refreshes 300 ms after the switch and every 1.5 s: read until it has (or give up and report).
  results.popupAfterOff = await until(read, (r) => r.status.startsWith('Not checking'), 10000);
  await popup.click('#site-switch');
  await page.bringToFront();
  results.switchedOn = await until(levels, (seen) => Object.keys(run.initial).every((id) => seen[id] === run.initial[id]), 10000);
  await popup.close();

  // "Check this image with Credence" on an image the scan skipped (too small): checked now, badged.
  await fetch(`${config.proxy}/__mark/before-force`).catch(() => {});
  results.forceAnswer = await browser.forceCheck(run.pageUrl, run.forceImage);
  const tiny = await page.evaluate(() => {
    const r = document.getElementById('tiny').getBoundingClientRect();
    return { left: r.left, top: r.top };
  });
  results.forced = await until(async () => levelsAt(await browser.screenshot(page), { tiny }).tiny, (l) => l !== 'none', 30000);
}

async function main() {
  const results = { browser: config.browser, runs: {} };
  const open = config.browser === 'chromium' ? chromiumBrowser : firefoxBrowser;
  for (const run of config.runs) {
    const t0 = Date.now();
    const browser = await open(run.extensionDir);
    const launched = Date.now() - t0;
    const out = { timings: { launch_ms: launched } };
    results.runs[run.name] = out;
    try {
      if (run.kind === 'main') {
        const page = await mainRun(browser, run, config, out);
        if (browser.name === 'chromium' && run.popupScreenshot) await popupRun(browser, page, run, out);
        if (browser.name === 'chromium' && run.reporterKey) await reportRun(browser, run, out);
      } else if (run.kind === 'hardening') {
        await hardeningRun(browser, { ...run, artifacts: config.artifacts }, out);
      } else if (run.kind === 'cloak') {
        await cloakRun(browser, { ...run, artifacts: config.artifacts }, out);
      } else if (run.kind === 'video') {
        await videoRun(browser, { ...run, artifacts: config.artifacts }, { ...config, proxy: run.proxy ?? config.proxy }, out);
      } else if (run.kind === 'uploads') {
        await uploadsRun(browser, { ...run, artifacts: config.artifacts }, { ...config, proxy: run.proxy }, out);
      } else {
        await privacyRun(browser, { ...run, artifacts: config.artifacts }, out);
      }
      out.timings.total_ms = Date.now() - t0;
    } catch (error) {
      out.error = String(error?.stack ?? error); // what was observed so far stays in `out`
      out.logs = browser.logs;
    } finally {
      await browser.close().catch(() => {});
    }
    save(config, results);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
