// Settings a fresh install starts with. Tests load a copy of the extension with this file
// replaced, to point it at a server on a free port without touching the options page.
export const DEFAULTS = Object.freeze({
  server: 'http://127.0.0.1:8080', // `make run` listens here
  apiKey: '',
  mode: 'all', // 'all' | 'only-on' (only sites switched on) | 'off'
  sites: {}, // host -> true (switched on) / false (switched off)
  privacy: false, // hash bytes in the browser; never send URLs
  uploadUnknown: false, // privacy mode: upload bytes of images the server does not know
  uploadSeen: true, // the bytes the browser shows differ from what Credence fetched: upload those to check them
  skipPrivate: true, // do nothing in private / incognito windows
});
