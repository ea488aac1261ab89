// Service worker (Chromium) / event page (Firefox). Listeners are registered synchronously at the
// top level, as MV3 requires, and read settings from storage on every event.
import { ext } from './lib/browser.js';
import { createMenus, onMenuClick } from './lib/menus.js';
import { POLL_ALARM, Service } from './lib/service.js';
import { loadSettings } from './lib/settings.js';

const service = new Service({ ext });

async function handle(message, sender) {
  switch (message?.type) {
    case 'check': {
      const tab = sender.tab;
      if (!tab || !Array.isArray(message.items)) return { ok: false };
      const settings = await loadSettings(ext.storage);
      if (tab.incognito && settings.skipPrivate && !message.force) return { ok: false, skipped: 'private' };
      await service.check(tab.id, message.items.slice(0, 500), { force: Boolean(message.force) });
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
ext.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === POLL_ALARM) service.resume().catch(() => {});
});

// A restarted worker carries on with whatever checks were pending when it was stopped.
service.resume().catch(() => {});
