// One name for the WebExtension API: Firefox exposes `browser`, Chromium only `chrome`.
// Both return promises in Manifest V3, so the code below never passes callbacks.
export const ext = globalThis.browser ?? globalThis.chrome;
