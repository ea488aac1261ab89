"""The manifest repository shared in the signed exchange feed (server/exchange/feed.py, server/provenance/repository.py,
worker/exchange/peer_pull.py; docs/exchange-feed.md "Manifest events", docs/repository.md).

Real c2pa-python signing (tests/test_recovery.py's fixtures) and two instances over loopback (tests/test_exchange.py):
alpha reads signed files as its worker would (worker/settle.py ``record_final``), beta pulls alpha's feed, stores the
records as alpha's reading and re-validates each store as its worker task would. What is expected follows from how the
fixtures were signed: the camera leaf chains to a root both instances trust, and the photo's manifest carries its own
thumbnail, which proves the PDQ binding once beta has validated the store.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from server import models
from server.checks import records
from server.exchange import feed, identity
from server.provenance import repository
from server.verdicts import Level, Verdict, fuse
from tests.helpers import credence
from tests.test_exchange import Instance, make_instance, peer_id
from tests.test_recovery import Repository, Signed, check, signed, stored, stripped_copy  # noqa: F401 (fixture)
from worker import provenance_jobs
from worker.exchange import peer_pull
from worker.pipeline.item import Item
from worker.pipeline.rules import RULES
from worker.pipeline.runner import run_rules
from worker.settle import record_final


def node(name: str, folder: Path, signed: Signed, database_url: str | None = None, *, share: bool) -> Instance:
    return make_instance(name, folder, database_url, serve=database_url is not None, max_pixels="50000000",
                         share_manifests=str(share).lower(), **signed.trust())


def read_here(inst: Instance, data: bytes) -> Verdict:
    """Analyse, then record the final verdict where the worker does (worker/settle.py)."""
    item = run_rules(Item(data=data, settings=inst.svc.settings, matcher=Repository(inst.svc.db)), RULES)
    verdict = fuse(item.evidence, sha256=item.sha256, versions=item.versions)
    with inst.svc.db.session() as session:  # the fetch or upload made the media row
        records.record_media(session, sha256=item.sha256, mime="image/jpeg", size=len(data))
    record_final(inst.svc, item.sha256, verdict)
    return verdict


def fails_now(inst: Instance, verdict: Verdict) -> None:
    """The same content read again with credentials that no longer validate (a trust change, say)."""
    broken = [e.model_copy(update={"kind": "c2pa-invalid", "supports": Level.TAMPERED})
              if e.kind == "c2pa-trusted" else e for e in verdict.evidence]
    record_final(inst.svc, verdict.sha256, verdict.model_copy(update={"evidence": broken}))


def feed_events(inst: Instance, query: str = "manifests=1") -> dict:
    page = inst.call("GET", f"/api/v1/exchange/feed?since=0&v=2&{query}").get_json()
    return json.loads(page["signed"])


def queued(folder: Path) -> list[tuple[str, list]]:
    messages = [json.loads(p.read_text()) for p in (folder / "broker").glob("*.msg")]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


def recovered(verdict: Verdict):
    return next(e for e in verdict.evidence if e.kind == "credentials-recovered")


def test_the_feed_carries_no_manifest_unless_sharing_is_on(signed: Signed, tmp_path: Path) -> None:
    alpha = node("alpha", tmp_path / "a", signed, share=False)
    assert read_here(alpha, signed.photo).level == Level.VERIFIED
    assert len(stored(alpha.svc.db)) == 1  # kept in the repository...
    assert alpha.count(models.FeedEvent) == 0  # ...but never published
    assert feed_events(alpha)["events"] == []
    # Turned on later: `credence provenance publish` puts what was kept before on the feed, once.
    env = {"CREDENCE_DATA_DIR": str(tmp_path / "a"), "CREDENCE_INSTANCE_NAME": "alpha"}
    refused = credence(env, "provenance", "publish")
    assert refused.returncode == 1 and "CREDENCE_SHARE_MANIFESTS is off" in refused.stderr
    env["CREDENCE_SHARE_MANIFESTS"] = "true"
    assert json.loads(credence(env, "provenance", "publish").stdout) == {"published": 1}
    [event] = feed_events(alpha)["events"]
    assert event["payload"]["kind"] == "manifest" and event["payload"]["manifest"]["sha256"] == \
        hashlib.sha256(signed.photo).hexdigest()
    assert json.loads(credence(env, "provenance", "publish").stdout) == {"published": 0}


def test_a_peer_pulls_shared_manifests_revalidates_them_and_follows_withdrawals(
        signed: Signed, tmp_path: Path, pg_factory) -> None:
    alpha = node("alpha", tmp_path / "a", signed, pg_factory(), share=True)
    beta = node("beta", tmp_path / "b", signed, pg_factory(), share=False)
    try:
        photo = read_here(alpha, signed.photo)
        read_here(alpha, signed.photo)  # read again, nothing a reader keeps changed: no second event
        page = feed_events(alpha)
        [event] = page["events"]
        payload = event["payload"]
        assert (payload["kind"], payload["instance"], payload.get("bank")) == ("manifest", "alpha", None)
        assert payload["manifest"]["sha256"] == hashlib.sha256(signed.photo).hexdigest()
        assert base64.b64decode(payload["manifest"]["store"]) == signed.store and payload["manifest"]["thumbnail"] is None
        assert identity.verify(alpha.public_key, identity.canonical(payload), event["signature"])
        # A reader that does not ask for manifest events (one written before them) never sees one; its cursor moves on.
        old = feed_events(alpha, "")
        assert old["events"] == [] and old["next"] == event["cursor"]

        # Beta read the AI image itself; alpha's record of it never replaces beta's own reading.
        read_here(alpha, signed.ai)
        read_here(beta, signed.ai)
        assert beta.call("POST", "/api/v1/peers", "admin", json={
            "name": "alpha", "url": alpha.base, "public_key": alpha.public_key, "trust": "review"}).status_code == 201
        summary = peer_pull.pull_peer(beta.svc, peer_id(beta, "alpha"))
        assert summary["error"] is None and (summary["events"], summary["manifests"]) == (2, 1)
        rows = {r.sha256: r for r in stored(beta.svc.db)}
        copy, own = rows[photo.sha256], rows[hashlib.sha256(signed.ai).hexdigest()]
        assert own.origin is None
        assert (copy.origin, copy.state, copy.revalidation, copy.store) == ("peer alpha", "trusted", None, signed.store)
        assert queued(tmp_path / "b") == [("credence.revalidate_manifest", [copy.id])]

        # Alpha's reading alone supports no level on beta...
        before = check(stripped_copy(signed.photo), beta.svc.settings, Repository(beta.svc.db))
        assert before.level == Level.NO_EVIDENCE and recovered(before).supports is None
        assert recovered(before).details["origin"] == "peer alpha" and "has not checked" in recovered(before).summary
        assert "imported here from a peer's exchange feed (peer alpha)" in recovered(before).summary
        # ...beta's worker re-validates the store against beta's trust lists, and then it counts.
        assert provenance_jobs.revalidate_manifest(beta.svc, copy.id) == "counts"
        after = check(stripped_copy(signed.photo), beta.svc.settings, Repository(beta.svc.db))
        assert after.level == Level.RECOVERED, after.summary
        assert recovered(after).details["origin"] == "peer alpha" and recovered(after).supports == Level.RECOVERED
        assert "came from a peer's exchange feed (peer alpha) and were validated here" in recovered(after).summary
        assert peer_pull.pull_peer(beta.svc, peer_id(beta, "alpha"))["events"] == 0  # nothing twice

        # Alpha's credentials for both fail now: both are withdrawn; beta drops its copy, never its own row.
        fails_now(alpha, photo)
        fails_now(alpha, read_here(alpha, signed.ai))
        kinds = [e["payload"]["kind"] for e in feed_events(alpha)["events"]]
        assert kinds == ["manifest", "manifest", "manifest-withdrawal", "manifest-withdrawal"]
        withdrawn = peer_pull.pull_peer(beta.svc, peer_id(beta, "alpha"))
        assert withdrawn["error"] is None and withdrawn["events"] == 2
        assert [(r.sha256, r.origin) for r in stored(beta.svc.db)] == [(own.sha256, None)]
        assert check(stripped_copy(signed.photo), beta.svc.settings, Repository(beta.svc.db)).level == Level.NO_EVIDENCE
    finally:
        for inst in (alpha, beta):
            inst.server.close()


def test_a_tampered_manifest_event_rejects_the_page(signed: Signed, tmp_path: Path) -> None:
    alpha = node("alpha", tmp_path / "a", signed, share=True)
    read_here(alpha, signed.photo)
    raw = alpha.call("GET", "/api/v1/exchange/feed?since=0&v=2&manifests=1").get_data()
    assert peer_pull.verify_page(raw, alpha.public_key, 0, 200)["events"][0]["payload"]["kind"] == "manifest"
    outer = json.loads(raw)
    # One changed byte in the signed text: the page signature fails.
    changed = outer["signed"].replace('"state":"trusted"', '"state":"valid"', 1)
    assert changed != outer["signed"]
    with pytest.raises(peer_pull.FeedRejected, match="page signature"):
        peer_pull.verify_page(json.dumps({**outer, "signed": changed}).encode(), alpha.public_key, 0, 200)
    # The same change in a page re-signed by the publisher's key: the event's own signature still fails.
    with pytest.raises(peer_pull.FeedRejected, match="event 1 signature does not verify"):
        peer_pull.verify_page(signed_as(alpha, changed), alpha.public_key, 0, 200)
    # A record the import rule refuses is refused with its page, even when the publisher signed it.
    page = json.loads(outer["signed"])
    event = page["events"][0]
    bad = {**event["payload"], "manifest": {**event["payload"]["manifest"], "state": "tampered"}}
    page["events"][0] = {**event, "payload": bad, "signature": sign(alpha, identity.canonical(bad))}
    with pytest.raises(peer_pull.FeedRejected, match="state must be one of trusted, valid"):
        peer_pull.verify_page(signed_as(alpha, identity.canonical(page).decode("utf-8")), alpha.public_key, 0, 200)


def sign(inst: Instance, data: bytes) -> str:
    """What the publisher's own key signs (a publisher that signs anything it is given)."""
    with inst.svc.db.session() as session:
        return identity.sign(identity.get_or_create(session, inst.name), data)


def signed_as(inst: Instance, text: str) -> bytes:
    return json.dumps({"signed": text, "signature": sign(inst, text.encode("utf-8"))}).encode()


def test_a_page_of_stores_ends_early_and_says_more_follow(signed: Signed, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    alpha = node("alpha", tmp_path / "a", signed, share=True)
    read_here(alpha, signed.photo)
    read_here(alpha, signed.ai)
    assert len(feed_events(alpha)["events"]) == 2  # both stores fit the budget
    monkeypatch.setattr(feed, "MAX_PAGE_STORE_CHARS", len(base64.b64encode(signed.store)) + 1)
    first = peer_pull.verify_page(alpha.call("GET", "/api/v1/exchange/feed?since=0&v=2&manifests=1").get_data(),
                                  alpha.public_key, 0, 200)
    [event] = first["events"]
    assert first["more"] is True and first["next"] == event["cursor"]  # one store per page, at least one
    rest = peer_pull.verify_page(
        alpha.call("GET", f"/api/v1/exchange/feed?since={first['next']}&v=2&manifests=1").get_data(),
        alpha.public_key, first["next"], 200)
    assert [e["payload"]["kind"] for e in rest["events"]] == ["manifest"] and rest["more"] is False


def test_reading_the_asset_itself_takes_over_a_peers_copy(signed: Signed, tmp_path: Path) -> None:
    alpha = node("alpha", tmp_path / "a", signed, share=True)
    beta = node("beta", tmp_path / "b", signed, share=True)
    read_here(alpha, signed.photo)
    [event] = feed_events(alpha)["events"]
    with beta.svc.db.session() as session:
        assert repository.store_peer_record(session, event["payload"]["manifest"], beta.svc.store.put,
                                            instance="alpha")
    [copy] = stored(beta.svc.db)
    assert copy.origin == "peer alpha" and beta.count(models.FeedEvent) == 0  # a copy is never published
    assert read_here(beta, signed.photo).level == Level.VERIFIED
    [own] = stored(beta.svc.db)
    assert (own.id, own.origin, own.revalidation) == (copy.id, None, None)
    assert [e["payload"]["kind"] for e in feed_events(beta)["events"]] == ["manifest"]  # now beta's own record
    with beta.svc.db.session() as session:
        assert repository.withdraw_peer_record(session, own.sha256, instance="alpha") is False
    assert len(stored(beta.svc.db)) == 1


def test_a_peers_manifest_switch_decides_whether_its_records_are_pulled(signed: Signed, tmp_path: Path,
                                                                       pg_factory) -> None:
    alpha = node("alpha", tmp_path / "a", signed, pg_factory(), share=True)
    beta = node("beta", tmp_path / "b", signed, pg_factory(), share=False)
    try:
        read_here(alpha, signed.photo)
        added = beta.call("POST", "/api/v1/peers", "admin", json={
            "name": "alpha", "url": alpha.base, "public_key": alpha.public_key, "manifests": False})
        assert added.status_code == 201 and added.get_json()["manifests"] is False
        off = peer_pull.pull_peer(beta.svc, peer_id(beta, "alpha"))
        assert off["error"] is None and (off["events"], off["manifests"]) == (0, 0)
        assert stored(beta.svc.db) == []

        for bad in ({"manifests": "yes"}, {"trust": "everyone"}, {"banks": ["x"]}):
            assert beta.call("PATCH", "/api/v1/peers/alpha", "admin", json=bad).status_code == 400
        assert beta.call("PATCH", "/api/v1/peers/nobody", "admin", json={"manifests": True}).status_code == 404
        assert beta.call("PATCH", "/api/v1/peers/alpha", "reader", json={"manifests": True}).status_code == 403
        on = beta.call("PATCH", "/api/v1/peers/alpha", "admin", json={"manifests": True})
        assert on.status_code == 200 and (on.get_json()["manifests"], on.get_json()["trust"]) == (True, "review")
        # What alpha published while the switch was off is behind the cursor; what it publishes next arrives.
        read_here(alpha, signed.ai)
        pulled = peer_pull.pull_peer(beta.svc, peer_id(beta, "alpha"))
        assert pulled["error"] is None and pulled["manifests"] == 1
        assert [r.sha256 for r in stored(beta.svc.db)] == [hashlib.sha256(signed.ai).hexdigest()]
        with beta.svc.db.session() as session:
            audits = list(session.scalars(select(models.AuditLog.action).where(
                models.AuditLog.action.like("peer.%")).order_by(models.AuditLog.id)))
        assert audits == ["peer.add", "peer.manifests"]
    finally:
        for inst in (alpha, beta):
            inst.server.close()
