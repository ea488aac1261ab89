// Content scripts named in the manifest cannot be ES modules, so this classic script only loads
// the real one (content/main.js) from the extension. It runs in the extension's isolated world.
(async () => {
  const api = globalThis.browser ?? globalThis.chrome;
  try {
    const { start } = await import(api.runtime.getURL('content/main.js'));
    await start();
  } catch (error) {
    console.warn('Credence: content script failed to start', error);
  }
})();
