// The toolbar popup: this page's images (every frame's) by level, each with its thumbnail and report;
// the switch for this site. The list comes from the service worker, not from the page: it is the
// reference a reader can trust when a page hides, covers or imitates the badges.
import { icon } from '../content/icons.js';
import { ext } from '../lib/browser.js';
import { MISMATCH_WORDS } from '../lib/describe.js';
import { groupByLevel, shortUrl } from '../lib/groups.js';
import { levelInfo } from '../lib/levels.js';
import { loadSettings, saveSettings, shouldScan, withSite } from '../lib/settings.js';
import { WARNING } from '../lib/tabstate.js';

const $ = (id) => document.getElementById(id);

/** The tab this popup is about: the active one, or ?tab=ID (tests open the popup as a page). */
async function targetTab() {
  const param = new URLSearchParams(location.search).get('tab');
  if (param) return Number(param);
  const [tab] = await ext.tabs.query({ active: true, currentWindow: true });
  return tab?.id;
}

function chip(level) {
  const info = levelInfo(level);
  const span = document.createElement('span');
  span.className = info.hollow ? 'chip hollow' : 'chip';
  span.style.background = info.fill;
  span.style.color = info.ink;
  if (info.hollow) span.style.borderColor = info.ink;
  span.append(icon(document, info.icon));
  return span;
}

/** The image itself, small: which row is which picture, whatever the page shows. No referrer. */
function thumbnail(item) {
  const img = document.createElement('img');
  img.className = 'thumb';
  img.alt = '';
  img.width = 48;
  img.height = 36;
  img.loading = 'lazy';
  img.referrerPolicy = 'no-referrer';
  const src = item.thumb ?? (/^https?:/i.test(item.url) ? item.url : null);
  if (src) img.src = src;
  return img;
}

function renderGroups(state) {
  const root = $('groups');
  root.replaceChildren();
  for (const group of groupByLevel(state.images)) {
    // Long lists of the quiet levels start folded; what needs attention is always open.
    const section = document.createElement('details');
    section.className = 'group';
    section.dataset.level = group.level;
    section.open = !(['no-evidence', 'unavailable'].includes(group.level) && group.items.length > 8);
    const summary = document.createElement('summary');
    const h2 = document.createElement('h2');
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = String(group.items.length);
    h2.append(chip(group.level), document.createTextNode(group.short), count);
    const ul = document.createElement('ul');
    for (const item of group.items) {
      const li = document.createElement('li');
      li.append(thumbnail(item));
      // A video's poster says so: its level is the poster image's, not the video's.
      const text = (item.poster ? 'Video poster: ' : '') + shortUrl(item.url) + (item.count > 1 ? ` (×${item.count})` : '')
        + (item.mismatch ? ` ≠ ${MISMATCH_WORDS.toLowerCase()}` : '');
      if (item.reportUrl) {
        const a = document.createElement('a');
        a.href = item.reportUrl;
        a.target = '_blank';
        a.rel = 'noopener';
        a.textContent = text;
        a.title = `${item.url}\n${item.summary ?? ''}`;
        li.append(a);
      } else {
        li.append(document.createTextNode(text));
        li.title = item.summary ?? '';
      }
      ul.append(li);
    }
    summary.append(h2);
    section.append(summary, ul);
    root.append(section);
  }
}

function statusLine(state, tab) {
  if (!state) return 'Credence does not run on this page.';
  if (tab?.warnings?.length) return WARNING;
  if (state.error) return `Server problem: ${state.error}`;
  if (!state.scanning) return 'Not checking images on this site.';
  if (state.pending) return `Checking ${state.pending} image${state.pending === 1 ? '' : 's'}…`;
  const images = tab?.images ?? state.images;
  const pending = tab?.pending ?? 0;
  if (pending) return `Checking ${pending} image${pending === 1 ? '' : 's'}…`;
  if (!images.length) return 'No images checked on this page yet.';
  return `${images.length} image${images.length === 1 ? '' : 's'} checked.`;
}

async function main() {
  let settings = await loadSettings(ext.storage);
  const tabId = await targetTab();
  let state = null;
  try {
    state = await ext.tabs.sendMessage(tabId, { type: 'page-state' }, { frameId: 0 });
  } catch {
    state = null; // no content script here (browser pages, file://, store pages)
  }
  $('server').textContent = `Server: ${settings.server}`;
  $('open-options').addEventListener('click', (event) => {
    event.preventDefault();
    ext.runtime.openOptionsPage();
  });
  const host = state?.host;
  $('host').textContent = host || '';
  const toggle = $('site-switch');
  if (!host) {
    toggle.disabled = true;
  } else {
    $('site-label').textContent = `Check images on ${host}`;
    toggle.checked = shouldScan(settings, host);
    toggle.disabled = settings.mode === 'off';
    toggle.addEventListener('change', async () => {
      settings = await saveSettings(ext.storage, withSite(settings, host, toggle.checked));
      setTimeout(refresh, 300);
    });
  }
  if (settings.mode !== 'all') {
    $('mode-note').hidden = false;
    $('mode-note').textContent = settings.mode === 'off'
      ? 'Checking is switched off everywhere (Options).'
      : 'Checking only the sites you switch on.';
  }
  $('privacy-note').hidden = !settings.privacy;

  async function refresh() {
    let tab = null;
    try {
      state = await ext.tabs.sendMessage(tabId, { type: 'page-state' }, { frameId: 0 });
    } catch {
      state = null;
    }
    try {
      tab = await ext.runtime.sendMessage({ type: 'tab-state', tabId });
    } catch {
      tab = null;
    }
    $('status').textContent = statusLine(state, tab);
    $('status').classList.toggle('warning', Boolean(tab?.warnings?.length));
    renderGroups(tab?.ok ? tab : (state ?? { images: [] }));
    document.body.dataset.ready = 'true';
  }
  await refresh();
  setInterval(refresh, 1500); // pending checks finish while the popup is open
}

main();
