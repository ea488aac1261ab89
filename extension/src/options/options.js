// Options page: one form over the settings record in storage.local.
import { ext } from '../lib/browser.js';
import { loadSettings, saveSettings, validServer } from '../lib/settings.js';

const form = document.getElementById('form');
const saved = document.getElementById('saved');

function fill(settings) {
  form.server.value = settings.server;
  form.apiKey.value = settings.apiKey;
  for (const radio of form.querySelectorAll('input[name=mode]')) radio.checked = radio.value === settings.mode;
  for (const name of ['skipPrivate', 'privacy', 'uploadUnknown', 'uploadSeen']) form[name].checked = settings[name];
  form.uploadUnknown.disabled = !settings.privacy;
}

form.privacy.addEventListener('change', () => { form.uploadUnknown.disabled = !form.privacy.checked; });

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const server = validServer(form.server.value);
  form.server.setCustomValidity(server ? '' : 'An http(s) address without user name, query or fragment.');
  if (!server) {
    form.server.reportValidity();
    return;
  }
  const settings = await saveSettings(ext.storage, {
    server,
    apiKey: form.apiKey.value,
    mode: form.querySelector('input[name=mode]:checked')?.value,
    skipPrivate: form.skipPrivate.checked,
    privacy: form.privacy.checked,
    uploadUnknown: form.uploadUnknown.checked,
    uploadSeen: form.uploadSeen.checked,
  });
  fill(settings);
  saved.textContent = 'Saved.';
  setTimeout(() => { saved.textContent = ''; }, 2000);
});

loadSettings(ext.storage).then(fill);
