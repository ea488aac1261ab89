"""Fusion implements the whole level table of DESIGN.md, whatever order evidence arrives in."""
from __future__ import annotations

import itertools

import pytest

from server.verdicts import BADGES, NO_EVIDENCE_SUMMARY, PRIORITY, Evidence, Level, fuse, unavailable

EVIDENCE = {
    Level.KNOWN_FAKE: Evidence(stage="match", kind="bank-match", summary="Matches a confirmed fake: flood photo",
                               score=0.97, supports=Level.KNOWN_FAKE, details={"distance": 4}),
    Level.TAMPERED: Evidence(stage="c2pa", kind="c2pa-invalid", summary="The pixels were changed after signing",
                             supports=Level.TAMPERED, details={"code": "assertion.dataHash.mismatch"}),
    Level.AI_DECLARED: Evidence(stage="c2pa", kind="ai-declared", summary="Declares trainedAlgorithmicMedia",
                                supports=Level.AI_DECLARED),
    Level.LIKELY_SYNTHETIC: Evidence(stage="detect", kind="synthetic-score", summary="Detector score 0.91",
                                     score=0.91, supports=Level.LIKELY_SYNTHETIC),
    Level.VERIFIED: Evidence(stage="c2pa", kind="c2pa-trusted", summary="Signed by Example News",
                             supports=Level.VERIFIED),
    Level.SIGNED_UNTRUSTED: Evidence(stage="c2pa", kind="c2pa-valid", summary="Signed by Someone, not trusted",
                                     supports=Level.SIGNED_UNTRUSTED),
    Level.RECOVERED: Evidence(stage="recovery", kind="credentials-recovered",
                              summary="Credentials found for a matching original: signed by Example News",
                              supports=Level.RECOVERED, details={"binding": "pdq", "distance": 4}),
    Level.NO_EVIDENCE: Evidence(stage="c2pa", kind="c2pa-absent", summary="No Content Credentials",
                                supports=Level.NO_EVIDENCE),
    Level.UNAVAILABLE: Evidence(stage="decode", kind="undecodable", summary="Could not check: broken",
                                supports=Level.UNAVAILABLE),
}
INFO = Evidence(stage="decode", kind="decoded", summary="JPEG image, 10x10 pixels.")


@pytest.mark.parametrize("level", [lvl for lvl in Level if lvl != Level.NO_EVIDENCE])
def test_single_evidence_gives_its_level(level: Level) -> None:
    verdict = fuse([INFO, EVIDENCE[level]], sha256="a" * 64, versions={"pipeline": "1"})
    assert verdict.level == level
    assert (verdict.badge, verdict.label) == BADGES[level]
    assert verdict.summary.startswith(EVIDENCE[level].summary)
    assert verdict.evidence == [INFO, EVIDENCE[level]]


# Every pair of levels and the one that must win, written out by hand from the table in
# docs/verdicts.md (never derived from PRIORITY): a reordering of the code shows up here.
KF, TA, AI, VE, LS, RE, SU, NE, UN = (Level.KNOWN_FAKE, Level.TAMPERED, Level.AI_DECLARED, Level.VERIFIED,
                                      Level.LIKELY_SYNTHETIC, Level.RECOVERED, Level.SIGNED_UNTRUSTED,
                                      Level.NO_EVIDENCE, Level.UNAVAILABLE)
WINNERS = [
    (KF, TA, KF), (KF, AI, KF), (KF, VE, KF), (KF, LS, KF), (KF, SU, KF), (KF, NE, KF), (KF, UN, KF),
    (TA, AI, TA), (TA, VE, TA), (TA, LS, TA), (TA, SU, TA), (TA, NE, TA), (TA, UN, TA),
    (AI, VE, AI), (AI, LS, AI), (AI, SU, AI), (AI, NE, AI), (AI, UN, AI),
    # trusted credentials outrank any detector score
    (VE, LS, VE), (VE, SU, VE), (VE, NE, VE), (VE, UN, VE),
    # a validated detector outranks an untrusted signature and no evidence
    (LS, SU, LS), (LS, NE, LS), (LS, UN, LS),
    # recovered credentials: never above verified (or a detector on these bytes), above an untrusted signature
    (KF, RE, KF), (TA, RE, TA), (AI, RE, AI), (VE, RE, VE), (LS, RE, LS), (RE, SU, RE), (RE, NE, RE), (RE, UN, RE),
    (SU, NE, SU), (SU, UN, SU),
    (NE, UN, NE),
]


def test_the_pair_table_covers_every_pair_of_levels() -> None:
    assert {frozenset((a, b)) for a, b, _ in WINNERS} == {frozenset(p) for p in itertools.combinations(Level, 2)}
    assert len(WINNERS) == 36


@pytest.mark.parametrize(("first", "second", "winner"), WINNERS, ids=[f"{a.value}-vs-{b.value}" for a, b, _ in WINNERS])
def test_every_pair_of_levels_has_its_winner_in_either_order(first: Level, second: Level, winner: Level) -> None:
    for pair in ((first, second), (second, first)):
        verdict = fuse([EVIDENCE[lvl] for lvl in pair], sha256=None, versions={})
        assert verdict.level == winner, pair
        lead = NO_EVIDENCE_SUMMARY if winner == NE else EVIDENCE[winner].summary  # no-evidence never cites
        assert verdict.summary.startswith(lead)
        assert len(verdict.evidence) == 2  # nothing is dropped from the report


def test_priority_ranks_every_level_once_in_the_documented_order() -> None:
    assert [lvl.value for lvl in PRIORITY] == [
        "known-fake", "tampered", "ai-declared", "verified", "likely-synthetic", "recovered", "signed-untrusted",
        "no-evidence", "unavailable"]


def test_all_levels_together_give_known_fake_and_without_it_tampered() -> None:
    everything = list(EVIDENCE.values())
    assert fuse(everything, sha256=None, versions={}).level == Level.KNOWN_FAKE
    rest = [e for e in everything if e.supports != Level.KNOWN_FAKE]
    assert fuse(rest, sha256=None, versions={}).level == Level.TAMPERED


def test_no_evidence_is_never_called_authentic() -> None:
    verdict = fuse([INFO], sha256="b" * 64, versions={"pipeline": "1"})
    assert verdict.level == Level.NO_EVIDENCE
    assert verdict.summary == NO_EVIDENCE_SUMMARY
    assert "authentic" not in verdict.label.lower()
    assert "does not mean" in verdict.summary


def test_unavailable_only_when_nothing_else_can_be_said() -> None:
    assert unavailable("Could not check: 404", stage="fetch", code="http-status", sha256=None,
                       versions={}).level == Level.UNAVAILABLE
    verdict = fuse([EVIDENCE[Level.UNAVAILABLE], EVIDENCE[Level.TAMPERED]], sha256=None, versions={})
    assert verdict.level == Level.TAMPERED


def test_summary_counts_agreeing_findings_and_leads_with_the_strongest() -> None:
    weak = EVIDENCE[Level.KNOWN_FAKE].model_copy(update={"summary": "weaker match", "score": 0.5})
    verdict = fuse([weak, EVIDENCE[Level.KNOWN_FAKE]], sha256=None, versions={})
    assert verdict.summary.startswith("Matches a confirmed fake")
    assert "1 more finding agree" in verdict.summary


def test_scores_are_bounded() -> None:
    with pytest.raises(ValueError):
        Evidence(stage="x", kind="y", summary="z", score=1.5)


def test_verdict_round_trips_through_json() -> None:
    verdict = fuse(list(EVIDENCE.values()), sha256="c" * 64, versions={"pipeline": "1", "c2pa": "2"},
                   timings={"decode": 1.5})
    again = type(verdict).model_validate_json(verdict.model_dump_json())
    assert again == verdict
