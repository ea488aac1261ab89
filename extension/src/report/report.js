// "Report as fake": a note from the reader, sent with the image URL and the reporter's API key.
import { CredenceApi } from '../lib/api.js';
import { ext } from '../lib/browser.js';
import { loadSettings } from '../lib/settings.js';

const params = new URLSearchParams(location.search);
const imageUrl = params.get('url') ?? '';
const $ = (id) => document.getElementById(id);

async function main() {
  const settings = await loadSettings(ext.storage);
  $('image-url').textContent = imageUrl;
  // Privacy mode or a private window: say plainly that this one action sends an address.
  $('privacy-warning').hidden = !(settings.privacy || params.get('private') === '1');
  $('cancel').addEventListener('click', () => window.close());
  $('form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const result = $('result');
    $('send').disabled = true;
    try {
      const api = new CredenceApi({ server: settings.server, apiKey: settings.apiKey });
      await api.report(imageUrl, $('note').value.trim());
      result.className = 'ok';
      result.textContent = 'Thank you: the report is in the review queue.';
      $('form').hidden = true;
    } catch (error) {
      result.className = 'error';
      result.textContent = error.message;
      $('send').disabled = false;
    }
  });
}

main();
