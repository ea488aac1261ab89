// Plain words for a verdict: what the tooltip, the accessible label and the popup say.
// Works on the compact verdict (see compact()) so cached entries stay small.
import { levelInfo } from './levels.js';

const BANDS = [
  [0.2, 'very low'],
  [0.4, 'low'],
  [0.6, 'uncertain'],
  [0.8, 'high'],
  [Infinity, 'very high'],
];

/** "high (0.82)" for a score in [0, 1]; null when there is no score to band. */
export function scoreBand(score) {
  if (typeof score !== 'number' || Number.isNaN(score)) return null;
  const clamped = Math.min(1, Math.max(0, score));
  const [, name] = BANDS.find(([limit]) => clamped < limit);
  return `${name} (${clamped.toFixed(2)})`;
}

/** The evidence item that decided the level: supports it, highest score first (no score = decisive). */
export function strongestEvidence(evidence, level) {
  const items = (evidence ?? []).filter((item) => item && item.supports === level);
  items.sort((a, b) => (b.score ?? 1) - (a.score ?? 1));
  return items[0] ?? null;
}

/** What we keep of a server verdict: enough for badge, tooltip, popup and report link. */
export function compact(verdict, extra = {}) {
  if (!verdict) return null;
  const top = strongestEvidence(verdict.evidence, verdict.level);
  // The band shown: the deciding item's score, else the highest score any stage gave
  // (a validated detector below its threshold still tells the reader something). An experimental
  // detector's score (below its validation bar) stays in the full report: never on the page.
  const scores = (verdict.evidence ?? []).filter((e) => e?.details?.band !== 'experimental')
    .map((e) => e?.score).filter((x) => typeof x === 'number');
  const score = typeof top?.score === 'number' ? top.score : (scores.length ? Math.max(...scores) : null);
  return {
    level: verdict.level,
    label: verdict.label ?? levelInfo(verdict.level).short,
    summary: verdict.summary ?? '',
    sha256: verdict.sha256 ?? null,
    top: top ? {
      stage: top.stage, kind: top.kind, summary: top.summary, score: top.score ?? null,
      // A peer's dispute of the matched bank entry: who and why, so the tooltip can say so.
      disputes: (top.details?.disputes ?? []).map((d) => ({ by: String(d?.by ?? ''), reason: String(d?.reason ?? '') })),
    } : null,
    score,
    ...extra,
  };
}

const DECISIVE = new Set(['known-fake', 'tampered', 'ai-declared', 'verified', 'signed-untrusted']);

function sentence(text) {
  const t = String(text).trim();
  return /[.!?…]$/.test(t) ? t : `${t}.`;
}

export const MISMATCH_WORDS = 'You see different bytes than Credence checked';

/** What the tooltip says of a mismatch: the address gave Credence's fetcher other bytes than this browser. */
export function mismatchLine(v) {
  if (!v?.mismatch) return null;
  const checked = v.mismatch.checkedLabel || levelInfo(v.mismatch.checkedLevel).short;
  return `${MISMATCH_WORDS}: at this address Credence got other bytes (“${checked}”); `
    + (v.local ? 'what you see has no verdict.' : 'this is the verdict of what you see.');
}

// What a video poster's badge says first: it is not the video's (that one has its own badge).
export const POSTER_WORDS = 'Poster image, shown before the video plays';

/**
 * Tooltip lines: level in plain words, the strongest evidence, the score band (and a mismatch first);
 * with `poster`, a first line saying the badge is the video's poster image's.
 */
export function describe(v, { poster = false } = {}) {
  const lines = describePlain(v);
  return {
    ...lines, ...(v?.mismatch ? { mismatch: mismatchLine(v) } : {}), ...(poster ? { subject: POSTER_WORDS } : {}),
  };
}

function describePlain(v) {
  const info = levelInfo(v?.level);
  const lines = { title: info.words, evidence: null, score: null };
  if (v?.level === 'unknown') return lines;
  if (v?.level === 'not-checkable') return { ...lines, evidence: v.summary || null }; // why, not evidence
  const disputes = v?.top?.disputes ?? [];
  if (disputes.length) {
    // Still the level the server gave (the entry is confirmed there), but never a plain one.
    const who = disputes.map((d) => (d.reason ? `${d.by} (“${d.reason}”)` : d.by)).join('; ');
    lines.title = `${info.short}, but disputed: ${who} disputes the matched entry. ${info.words}`;
  }
  const evidence = v?.top?.summary || v?.summary;
  // The no-evidence summary repeats the title; don't say it twice.
  if (evidence && v.level !== 'no-evidence') lines.evidence = `Strongest evidence: ${evidence}`;
  const band = scoreBand(v?.score ?? v?.top?.score);
  if (band) lines.score = `Score: ${band}`;
  else if (DECISIVE.has(v?.level)) lines.score = 'Score: none needed (decisive evidence)';
  else if (v?.level === 'no-evidence' || v?.level === 'likely-synthetic') lines.score = 'Score: none';
  return lines;
}

/** One sentence for screen readers (aria-label). */
export function accessibleLabel(v, { poster = false } = {}) {
  const { title, evidence, score, mismatch, subject } = describe(v, { poster });
  return ['Credence:', subject, mismatch, title, evidence, score, v?.reportUrl ? 'Activate to open the full report' : null]
    .filter(Boolean).map((part, i) => (i ? sentence(part) : part)).join(' ');
}

/** Where the full report lives. The newsroom desk page comes later; the JSON report is there now. */
export function reportUrl(server, { sha256, checkId } = {}) {
  const base = String(server || '').replace(/\/+$/, '');
  if (!base) return null;
  if (sha256) return `${base}/desk/media/${sha256}`;
  if (checkId) return `${base}/desk/checks/${encodeURIComponent(checkId)}`;
  return null;
}

/** The verdict of a video with no web address (blob:, MediaSource, srcObject, data:): made in the
 * page, never cached, never from the server, and no report to open. */
export function notCheckable(key) {
  const how = /^stream:/.test(key) ? 'a stream object (srcObject)'
    : /^blob:/i.test(key) ? 'a blob: address the page made (a MediaSource stream or an in-memory file)'
      : 'an inline data: address';
  return {
    level: 'not-checkable',
    label: 'Streamed video, not checkable',
    summary: `This video plays from ${how}, which only this page can read; nothing was sent to Credence.`,
    sha256: null,
    top: null,
    score: null,
    local: true,
    reportUrl: null,
  };
}
