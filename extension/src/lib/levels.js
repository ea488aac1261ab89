// The verdict levels of server/verdicts.py, as the reader sees them. Each level has a colour AND
// its own icon, so the badge reads without colour vision. Order = priority (highest first).
// Two levels are the extension's own (LOCAL_LEVELS), never the server's: `not-checkable` for
// streamed video (blob:/MediaSource) that has no file address, and `unknown` for privacy mode
// (the server has no verdict for the hash).

export const LEVELS = Object.freeze({
  'known-fake': {
    badge: 'red', fill: '#c62828', ink: '#ffffff', icon: 'cross',
    short: 'Known fake',
    words: 'Known fake: it matches a confirmed entry in a database of known fakes.',
  },
  tampered: {
    badge: 'orange', fill: '#e65100', ink: '#ffffff', icon: 'warning',
    short: 'Credentials broken',
    words: 'Tampered: it carries Content Credentials, but they fail validation.',
  },
  'ai-declared': {
    badge: 'purple', fill: '#6a1b9a', ink: '#ffffff', icon: 'sparkle',
    short: 'Declared AI-made',
    words: 'Declared AI-made: its provenance or metadata says generative AI made it.',
  },
  verified: {
    badge: 'green', fill: '#2e7d32', ink: '#ffffff', icon: 'check',
    short: 'Verified credentials',
    words: 'Verified: valid Content Credentials from a trusted signer. This says who signed it, not that it is true.',
  },
  'likely-synthetic': {
    badge: 'amber', fill: '#ffb300', ink: '#1a1a1a', icon: 'wave',
    short: 'Likely synthetic',
    words: 'Likely synthetic: a detector validated on images from sources it was not trained on scored it '
      + 'above its calibrated threshold. Detectors can be wrong.',
  },
  recovered: {
    badge: 'teal', fill: '#00796b', ink: '#ffffff', icon: 'link',
    short: 'Credentials found for a matching original',
    words: 'Recovered: this copy carries no Content Credentials, but it matches a stored original whose '
      + 'credentials are valid. These bytes were not signed: it may have been cropped or edited since.',
  },
  'signed-untrusted': {
    badge: 'blue', fill: '#1565c0', ink: '#ffffff', icon: 'seal',
    short: 'Signed, signer not trusted',
    words: 'Signed: valid Content Credentials, but the signer is not on the trust list.',
  },
  'no-evidence': {
    badge: 'grey', fill: '#616161', ink: '#ffffff', icon: 'dash',
    short: 'No evidence either way',
    // Never "authentic": absence of evidence is all we know.
    words: 'No evidence either way: nothing was found for or against. This does not mean it is authentic.',
  },
  unavailable: {
    badge: 'none', fill: '#eeeeee', ink: '#424242', icon: 'slash', hollow: true,
    short: 'Could not check',
    words: 'Could not check this image.',
  },
  'not-checkable': {
    badge: 'none', fill: '#d7ccc8', ink: '#3e2723', icon: 'stream', hollow: true,
    short: 'Streamed video, not checkable',
    words: 'Not checkable: this video is streamed by the page\'s own player (blob: or MediaSource), '
      + 'so there is no file address to check. Nothing was sent to the server.',
  },
  unknown: {
    badge: 'none', fill: '#b3e5fc', ink: '#01579b', icon: 'question', hollow: true,
    short: 'Not known to the server',
    words: 'Not known to the server. Privacy mode sent only a fingerprint of the bytes; '
      + 'switch on "upload unknown images" in the options for a full check.',
  },
});

export const ORDER = Object.freeze(Object.keys(LEVELS));
export const LOCAL_LEVELS = Object.freeze(['not-checkable', 'unknown']);

/** The display entry of a level; anything unexpected shows as "could not check". */
export function levelInfo(level) {
  return LEVELS[level] ?? LEVELS.unavailable;
}

/** Lower is more important; used to sort the popup's groups. */
export function rank(level) {
  const index = ORDER.indexOf(level);
  return index < 0 ? ORDER.length : index;
}
