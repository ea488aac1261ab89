// User settings live in storage.local under one key; every reader merges them over DEFAULTS,
// so a missing or partial record (fresh install, older version) still yields complete settings.
import { DEFAULTS } from './defaults.js';

export const SETTINGS_KEY = 'settings';
export const MODES = Object.freeze(['all', 'only-on', 'off']);

/** Complete, validated settings from whatever was stored. */
export function normalise(stored) {
  const s = { ...DEFAULTS, ...(stored && typeof stored === 'object' ? stored : {}) };
  s.server = String(s.server || DEFAULTS.server).trim().replace(/\/+$/, '');
  s.apiKey = String(s.apiKey || '').trim();
  if (!MODES.includes(s.mode)) s.mode = DEFAULTS.mode;
  s.sites = s.sites && typeof s.sites === 'object' ? { ...s.sites } : {};
  for (const flag of ['privacy', 'uploadUnknown', 'uploadSeen', 'skipPrivate']) s[flag] = Boolean(s[flag]);
  return s;
}

export async function loadSettings(storage) {
  const got = await storage.local.get(SETTINGS_KEY);
  return normalise(got?.[SETTINGS_KEY]);
}

export async function saveSettings(storage, changes) {
  const next = normalise({ ...(await loadSettings(storage)), ...changes });
  await storage.local.set({ [SETTINGS_KEY]: next });
  return next;
}

/** Should images on `host` be checked? Private windows are skipped unless the user allowed them. */
export function shouldScan(settings, host, { incognito = false } = {}) {
  if (incognito && settings.skipPrivate) return false;
  if (settings.mode === 'off') return false;
  const site = settings.sites[host];
  if (settings.mode === 'only-on') return site === true;
  return site !== false;
}

/** The site switch of the popup: on/off for this host, meaning depends on the mode. */
export function withSite(settings, host, on) {
  const sites = { ...settings.sites };
  // Store only what differs from the mode's default, so switching modes stays predictable.
  const defaultOn = settings.mode === 'all';
  if (on === defaultOn) delete sites[host];
  else sites[host] = on;
  return { ...settings, sites };
}

/** A server URL the options page accepts: http(s), no credentials, no query. */
export function validServer(value) {
  try {
    const url = new URL(String(value).trim());
    if (!['http:', 'https:'].includes(url.protocol)) return null;
    if (url.username || url.password || url.search || url.hash) return null;
    return url.href.replace(/\/+$/, '');
  } catch {
    return null;
  }
}
