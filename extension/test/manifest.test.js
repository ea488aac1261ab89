import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const manifest = JSON.parse(readFileSync(join(SRC, 'manifest.json'), 'utf8'));

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}
const scripts = files(SRC).filter((f) => f.endsWith('.js'));
const importsOf = (file) => [...readFileSync(file, 'utf8').matchAll(/^\s*import\s[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1]);

test('one MV3 manifest for both browsers', () => {
  assert.equal(manifest.manifest_version, 3);
  assert.equal(manifest.background.service_worker, 'background.js', 'Chromium');
  assert.deepEqual(manifest.background.scripts, ['background.js'], 'Firefox');
  assert.equal(manifest.background.type, 'module');
  const gecko = manifest.browser_specific_settings.gecko;
  assert.match(gecko.id, /@/);
  assert.ok(Number.parseFloat(gecko.strict_min_version) >= 140, 'data_collection_permissions needs Firefox 140');
  assert.ok(gecko.data_collection_permissions.required.length);
  // declarativeNetRequestWithHostAccess: the page's referrer on the extension's own reads (its rules act only
  // where host permissions reach; unlike declarativeNetRequest it adds no install warning). webRequest: the
  // frames' Referrer-Policy response headers, observed only (no blocking).
  assert.deepEqual(manifest.permissions.sort(),
    ['alarms', 'contextMenus', 'declarativeNetRequestWithHostAccess', 'storage', 'webRequest']);
});

test('every file the manifest names exists', () => {
  const named = [
    manifest.background.service_worker, ...manifest.content_scripts.flatMap((c) => c.js),
    manifest.action.default_popup, manifest.options_ui.page, ...Object.values(manifest.icons),
    ...Object.values(manifest.action.default_icon),
  ];
  for (const path of named) assert.ok(existsSync(join(SRC, path)), path);
});

test('every import resolves (relative imports only)', () => {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of importsOf(file)) {
      assert.ok(spec.startsWith('.'), `${relative(SRC, file)}: only relative imports: ${spec}`);
      const target = resolve(dirname(file), spec);
      assert.ok(existsSync(target), `${relative(SRC, file)} imports missing ${spec}`);
      visit(target);
    }
  };
  for (const file of scripts) visit(file);
});

test('the content script is one classic script: it loads no module, and nothing is exposed to pages', () => {
  for (const path of manifest.content_scripts.flatMap((c) => c.js)) {
    const text = readFileSync(join(SRC, path), 'utf8');
    assert.doesNotMatch(text, /^\s*(import|export)\s|\bimport\s*\(/m, `${path} imports or exports`);
  }
  // Its modules were web-accessible only to be import()ed; a page could probe for them.
  assert.equal(manifest.web_accessible_resources, undefined);
});

test('no markup from strings and no eval anywhere in the extension', () => {
  for (const file of scripts) {
    const text = readFileSync(file, 'utf8');
    for (const bad of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function']) {
      assert.ok(!text.includes(bad), `${relative(SRC, file)} uses ${bad}`);
    }
  }
});

test('badges use a closed shadow root', () => {
  const overlay = readFileSync(join(SRC, 'content/overlay.js'), 'utf8');
  assert.match(overlay, /attachShadow\(\{ mode: 'closed' \}\)/);
  assert.doesNotMatch(overlay, /mode: 'open'/);
});

test('content scripts run in every frame, about:blank ones included (badges drawn where the image is)', () => {
  const [script] = manifest.content_scripts;
  assert.equal(script.all_frames, true);
  assert.equal(script.match_about_blank, true);
});
