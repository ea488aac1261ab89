// Service worker (Chromium) / event page (Firefox). Listeners are registered synchronously at the
// top level, as MV3 requires, and read settings from storage on every event.
import { ext } from './lib/browser.js';
import { createMenus, onMenuClick } from './lib/menus.js';
import { headerPolicy, parsePolicy } from './lib/referrer.js';
import { POLL_ALARM, Service } from './lib/service.js';
import { loadSettings } from './lib/settings.js';
import { actionLook, mergeFrames, nextFrameState } from './lib/tabstate.js';

const service = new Service({ ext });

// Per tab, what each of its frames reported (images, levels, warnings): kept in storage.session so
// a restarted worker still has it; writes are chained so frames reporting together lose nothing.
let tabLock = Promise.resolve();
const tabArea = ext.storage.session ?? ext.storage.local;

function updateTab(tabId, change) {
  const next = tabLock.then(async () => {
    const key = `t:${tabId}`;
    const frames = change((await tabArea.get(key))?.[key] ?? {});
    if (frames === null) await tabArea.remove(key);
    else await tabArea.set({ [key]: frames });
    await showAction(tabId, mergeFrames(frames ?? {}));
    return frames;
  });
  tabLock = next.catch(() => {});
  return next;
}

async function tabState(tabId) {
  await tabLock;
  const key = `t:${tabId}`;
  return mergeFrames((await tabArea.get(key))?.[key] ?? {});
}

// Per tab, the policy of each frame's `Referrer-Policy` response header ({frameId: policy}), which scripts
// cannot read: noted as each frame's document arrives, in storage.session so a restarted worker has it.
let policyLock = Promise.resolve();

function updatePolicies(tabId, change) {
  const next = policyLock.then(async () => {
    const key = `rp:${tabId}`;
    const frames = (await tabArea.get(key))?.[key] ?? {};
    const changed = change(frames);
    if (changed === frames) return; // most documents send no header: no write
    if (changed === null || !Object.keys(changed).length) await tabArea.remove(key);
    else await tabArea.set({ [key]: changed });
  });
  policyLock = next.catch(() => {});
  return next;
}

async function framePolicy(tabId, frameId) {
  await policyLock;
  const key = `rp:${tabId}`;
  return (await tabArea.get(key))?.[key]?.[frameId] ?? '';
}

/** The toolbar action: browser chrome, which no page can reach. */
async function showAction(tabId, merged) {
  const look = actionLook(merged);
  try {
    await ext.action.setBadgeText({ tabId, text: look.text });
    await ext.action.setBadgeBackgroundColor({ tabId, color: look.color });
    await ext.action.setTitle({ tabId, title: look.title });
  } catch {
    // the tab is gone
  }
}

async function handle(message, sender) {
  switch (message?.type) {
    case 'check': {
      const tab = sender.tab;
      if (!tab || !Array.isArray(message.items)) return { ok: false };
      const settings = await loadSettings(ext.storage);
      if (tab.incognito && settings.skipPrivate && !message.force) return { ok: false, skipped: 'private' };
      // The frame's address: from the browser (sender.url), not from the message. Its policy: the
      // <meta name="referrer"> the content script read, else the response header's (an item's own wins).
      const policy = parsePolicy(message.policy) || await framePolicy(tab.id, sender.frameId ?? 0);
      await service.check(tab.id, message.items.slice(0, 500), {
        force: Boolean(message.force), page: sender.url ?? null, policy,
      });
      return { ok: true };
    }
    case 'open-report': {
      // Only ever open reports on the configured server, whatever a message says.
      const settings = await loadSettings(ext.storage);
      if (typeof message.url === 'string' && message.url.startsWith(`${settings.server}/`)) {
        await ext.tabs.create({ url: message.url, openerTabId: sender.tab?.id });
        return { ok: true };
      }
      return { ok: false };
    }
    case 'frame-state': {
      // sender.tab and sender.frameId come from the browser, not from the message.
      const tabId = sender.tab?.id;
      if (tabId === undefined || typeof message.state !== 'object') return { ok: false };
      // All of the frame's rows, or those changed since its last report (nextFrameState).
      const frameId = sender.frameId ?? 0;
      let stale = false;
      await updateTab(tabId, (frames) => {
        const next = nextFrameState(frames[frameId], message);
        stale = next === null;
        return stale ? frames : { ...frames, [frameId]: next };
      });
      return stale ? { ok: false, resend: true } : { ok: true };
    }
    case 'tab-state': {
      // Only the extension's own pages (the popup) may ask; content scripts run on web pages.
      if (!String(sender.url ?? '').startsWith(ext.runtime.getURL('')) || !Number.isInteger(message.tabId)) {
        return { ok: false };
      }
      return { ok: true, ...(await tabState(message.tabId)) };
    }
    default:
      return { ok: false };
  }
}

ext.runtime.onInstalled.addListener(() => {
  createMenus(ext).catch((error) => console.warn('Credence: menus', error));
});
ext.runtime.onMessage.addListener((message, sender, sendResponse) => {
  handle(message, sender).then(sendResponse, (error) => sendResponse({ ok: false, error: String(error?.message ?? error) }));
  return true; // answer asynchronously
});
ext.contextMenus.onClicked.addListener((info, tab) => {
  onMenuClick(ext, service, info, tab).catch((error) => console.warn('Credence: menu', error));
});
// A new document in the tab: forget the old one's frames; once loaded, frames that live on (a
// same-document navigation) send theirs again.
ext.tabs.onUpdated.addListener((tabId, info) => {
  if (info.status === 'loading') updateTab(tabId, () => null).catch(() => {});
  else if (info.status === 'complete') ext.tabs.sendMessage(tabId, { type: 'resend-state' }).catch(() => {});
});
ext.tabs.onRemoved.addListener((tabId) => {
  updateTab(tabId, () => null).catch(() => {});
  updatePolicies(tabId, () => null).catch(() => {});
});
// A frame's new document replaces the policy noted for its old one; a document without the header, none.
ext.webRequest.onHeadersReceived.addListener((details) => {
  if (details.tabId < 0) return;
  const value = (details.responseHeaders ?? []).filter((h) => h.name.toLowerCase() === 'referrer-policy')
    .map((h) => h.value ?? '').join(',');
  const policy = headerPolicy(value);
  updatePolicies(details.tabId, (frames) => {
    if ((frames[details.frameId] ?? '') === policy) return frames;
    const next = { ...frames, [details.frameId]: policy };
    if (!policy) delete next[details.frameId];
    return next;
  }).catch(() => {});
}, { urls: ['http://*/*', 'https://*/*'], types: ['main_frame', 'sub_frame'] }, ['responseHeaders']);
ext.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === POLL_ALARM) service.resume().catch(() => {});
});

// A restarted worker carries on with whatever checks were pending when it was stopped.
service.resume().catch(() => {});
