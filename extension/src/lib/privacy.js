// Privacy mode: the browser reads the bytes and fingerprints them; only the SHA-256 leaves.

export const MAX_BYTES = 25 * 1024 * 1024; // the server's default upload cap

/** Lower-case hex SHA-256 of the bytes, with the platform's WebCrypto. */
export async function sha256Hex(bytes) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** May this URL be read by the extension in privacy mode? data: works anywhere; blob: only via the page. */
export function readableUrl(url) {
  return /^(https?:|data:image\/)/i.test(String(url));
}

/**
 * The bytes behind a URL (http(s) or data:), as the reader's browser gets them: with the cookies the
 * browser holds for the image's site (where it lets an extension send them), so a server that tells
 * readers and fetchers apart by cookie or User-Agent gives the extension what it gives the reader.
 * The fetch itself sends no referrer (it would be the extension's); Service.read adds the page's one,
 * where the browser allows it, so the image host learns no more than the page's own load told it.
 */
export async function readBytes(url, { fetch = globalThis.fetch.bind(globalThis), maxBytes = MAX_BYTES } = {}) {
  if (!readableUrl(url)) throw new Error('this kind of address cannot be read in privacy mode');
  const response = await fetch(url, { credentials: 'include', cache: 'force-cache', referrerPolicy: 'no-referrer' });
  if (!response.ok) throw new Error(`the file's address answered HTTP ${response.status}`);
  const declared = Number(response.headers.get('content-length') || 0);
  if (declared > maxBytes) throw new Error(`the file is larger than ${maxBytes} bytes`);
  const bytes = await response.arrayBuffer();
  if (bytes.byteLength > maxBytes) throw new Error(`the file is larger than ${maxBytes} bytes`);
  if (!bytes.byteLength) throw new Error('the file is empty');
  return { bytes, type: (response.headers.get('content-type') || '').split(';')[0] || 'application/octet-stream' };
}
