import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  accessibleLabel, compact, describe, notCheckable, POSTER_WORDS, reportUrl, scoreBand, strongestEvidence,
} from '../src/lib/describe.js';
import { LEVELS } from '../src/lib/levels.js';

test('score bands', () => {
  assert.equal(scoreBand(0), 'very low (0.00)');
  assert.equal(scoreBand(0.39), 'low (0.39)');
  assert.equal(scoreBand(0.5), 'uncertain (0.50)');
  assert.equal(scoreBand(0.8), 'very high (0.80)');
  assert.equal(scoreBand(1.7), 'very high (1.00)');
  assert.equal(scoreBand(null), null);
  assert.equal(scoreBand(undefined), null);
});

test('the strongest evidence supports the level; no score counts as decisive', () => {
  const evidence = [
    { stage: 'detect', kind: 'synthetic', summary: 'detector', score: 0.7, supports: 'likely-synthetic' },
    { stage: 'detect', kind: 'face', summary: 'face detector', score: 0.91, supports: 'likely-synthetic' },
    { stage: 'fetch', kind: 'info', summary: 'fetched', score: null, supports: null },
  ];
  assert.equal(strongestEvidence(evidence, 'likely-synthetic').summary, 'face detector');
  assert.equal(strongestEvidence(evidence, 'known-fake'), null);
  const bank = [{ stage: 'bank', kind: 'match', summary: 'exact match', supports: 'known-fake' },
    { stage: 'bank', kind: 'near', summary: 'near', score: 0.95, supports: 'known-fake' }];
  assert.equal(strongestEvidence(bank, 'known-fake').summary, 'exact match');
});

test('tooltip: level in plain words, strongest evidence, score band', () => {
  const verdict = compact({
    level: 'likely-synthetic', label: 'Likely synthetic', summary: 'sum', sha256: 'ab',
    evidence: [{ stage: 'detect', kind: 'synthetic', summary: 'The detector sees synthesis.', score: 0.87, supports: 'likely-synthetic' }],
  });
  const lines = describe(verdict);
  assert.match(lines.title, /^Likely synthetic: .*Detectors can be wrong/);
  assert.equal(lines.evidence, 'Strongest evidence: The detector sees synthesis.');
  assert.equal(lines.score, 'Score: very high (0.87)');
});

test('a detector score below its threshold still gives the no-evidence tooltip a band', () => {
  const v = compact({ level: 'no-evidence', evidence: [{ stage: 'detect', kind: 'synthetic', summary: 'low', score: 0.12, supports: null }] });
  assert.equal(describe(v).score, 'Score: very low (0.12)');
});

test('an experimental detector\'s score is never painted: no band on the page', () => {
  const experimental = {
    stage: 'detect', kind: 'synthetic-score', summary: 'The baseline detector is experimental', score: 0.97,
    supports: null, details: { band: 'experimental', validation: { meets_bar: false } },
  };
  const v = compact({ level: 'no-evidence', summary: 'No evidence', evidence: [experimental] });
  assert.equal(v.level, 'no-evidence');
  assert.equal(v.score, null);
  assert.equal(describe(v).score, 'Score: none');
  assert.doesNotMatch(accessibleLabel(v), /0\.97|experimental/);
});

test('no evidence is never called authentic, and says so', () => {
  const lines = describe(compact({ level: 'no-evidence', summary: 'No content credentials…', evidence: [] }));
  assert.match(lines.title, /does not mean it is authentic/);
  assert.doesNotMatch(lines.title.replace('does not mean it is authentic', ''), /authentic/i);
  assert.equal(lines.evidence, null);
  for (const [level, info] of Object.entries(LEVELS)) {
    if (level !== 'verified') assert.doesNotMatch(info.short, /authentic|real|genuine|verified/i, level);
  }
});

test('accessible label reads the whole badge', () => {
  const label = accessibleLabel({ ...compact({ level: 'unavailable', summary: 'HTTP 404', evidence: [{ summary: 'HTTP 404', supports: 'unavailable' }] }), reportUrl: 'http://s/x' });
  assert.equal(label, 'Credence: Could not check this image. Strongest evidence: HTTP 404. Activate to open the full report.');
  const known = accessibleLabel(compact({ level: 'known-fake', evidence: [{ summary: 'Matches bank entry 12', supports: 'known-fake' }] }));
  assert.match(known, /^Credence: Known fake: .* Strongest evidence: Matches bank entry 12\. Score: none needed \(decisive evidence\)\.$/);
});

test('report links: media report by SHA-256, else the check', () => {
  assert.equal(reportUrl('http://s.test/', { sha256: 'ab' }), 'http://s.test/desk/media/ab');
  assert.equal(reportUrl('http://s.test', { checkId: 'c 1' }), 'http://s.test/desk/checks/c%201');
  assert.equal(reportUrl('http://s.test', {}), null);
});

test('compact keeps what the badge needs and drops the rest', () => {
  const full = { level: 'tampered', label: 'Credentials broken', summary: 's', sha256: 'ab', versions: { x: 1 },
    evidence: Array.from({ length: 50 }, (_, i) => ({ stage: 'c2pa', kind: 'k', summary: `e${i}`, supports: 'tampered', details: { big: 'x'.repeat(1000) } })) };
  const small = compact(full, { checkId: 'c1' });
  assert.deepEqual(Object.keys(small).sort(), ['checkId', 'label', 'level', 'score', 'sha256', 'summary', 'top']);
  assert.ok(JSON.stringify(small).length < 300);
  assert.equal(compact(null), null);
});

test('a streamed video says why it is not checkable, with no score and no report', () => {
  const v = notCheckable('blob:https://news.test/8c1d');
  assert.equal(v.level, 'not-checkable');
  assert.equal(v.local, true);
  assert.equal(v.reportUrl, null);
  const lines = describe(v);
  assert.equal(lines.title, LEVELS['not-checkable'].words);
  assert.match(lines.evidence, /blob: address/);
  assert.equal(lines.score, null);
  assert.match(accessibleLabel(v), /^Credence: Not checkable/);
  assert.doesNotMatch(accessibleLabel(v), /open the full report/);
  assert.match(describe(notCheckable('stream:srcObject')).evidence, /stream object/);
});

test('a disputed known-fake match says so in the tooltip, with who and why', () => {
  const verdict = compact({
    level: 'known-fake', label: 'Known fake', summary: 'Matches a confirmed fake in “debunked”: Flood (the identical file). This entry is disputed by beta: “it is real”.',
    evidence: [{
      stage: 'bank-match', kind: 'known-fake', score: 1, supports: 'known-fake',
      summary: 'Matches a confirmed fake in “debunked”: Flood (the identical file). This entry is disputed by beta: “it is real”.',
      details: { entry_id: 'e1', disputed: true, disputes: [{ by: 'beta', reason: 'it is real', at: '2026-01-02T03:04:05' }] },
    }],
  });
  const lines = describe(verdict);
  assert.equal(lines.title.startsWith('Known fake, but disputed: beta (“it is real”) disputes the matched entry.'), true, lines.title);
  assert.match(lines.evidence, /disputed by beta: “it is real”/);
  const plain = describe(compact({ level: 'known-fake', evidence: [{ stage: 'bank-match', kind: 'known-fake', summary: 'm', supports: 'known-fake', details: {} }] }));
  assert.doesNotMatch(plain.title, /disputed/);
});

test('a mismatch (the browser shows other bytes than Credence got) is said first, in tooltip and label', () => {
  const mismatch = { checkedSha: 'a'.repeat(64), checkedLevel: 'no-evidence', checkedLabel: 'No evidence', seenSha: 'b'.repeat(64) };
  const shown = { ...compact({ level: 'ai-declared', summary: 'IPTC says AI', evidence: [] }), mismatch };
  assert.equal(describe(shown).mismatch,
    'You see different bytes than Credence checked: at this address Credence got other bytes (“No evidence”); '
    + 'this is the verdict of what you see.');
  assert.match(accessibleLabel(shown), /^Credence: You see different bytes than Credence checked: .* Declared AI-made/);
  const unchecked = { level: 'unknown', summary: '', sha256: 'b'.repeat(64), top: null, local: true, mismatch };
  assert.match(describe(unchecked).mismatch, /what you see has no verdict\.$/);
  assert.equal(describe(compact({ level: 'no-evidence', evidence: [] })).mismatch, undefined);
});

test('a video poster\'s badge says it is the poster\'s, first, in its tooltip and its label', () => {
  const v = compact({ level: 'ai-declared', evidence: [{ summary: 'c2pa: trainedAlgorithmicMedia', supports: 'ai-declared' }] });
  assert.equal(describe(v, { poster: true }).subject, POSTER_WORDS);
  assert.equal(describe(v).subject, undefined);
  assert.match(accessibleLabel(v, { poster: true }), /^Credence: Poster image, shown before the video plays\. Declared AI-made/);
  assert.match(accessibleLabel(v), /^Credence: Declared AI-made/);
});
