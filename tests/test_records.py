"""The record's writes on SQLite and PostgreSQL alike: a content's row filled in over its fetch and analyses,
and a verdict completing exactly the checks waiting on its content."""
from __future__ import annotations

import pytest
from sqlalchemy import event, update

from server import models
from server.checks import records
from server.db import Database, engine_for
from server.migrate import upgrade
from server.verdicts import Evidence, Level, fuse
from server.vocabulary import Kind
from tests.test_exchange import make_instance
from worker.settle import record_final

SHA = "ab" * 32
PDQ = "f" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(url)
    database = Database(url)
    yield database
    database.engine.dispose()


def _row(db: Database) -> dict:
    with db.session() as session:
        m = session.get(models.Media, SHA)
        return {k: getattr(m, k) for k in ("mime", "size", "width", "height", "source_size", "pdq", "pdq_quality",
                                           "phash", "pdq_dihedral", "md5", "frame_pdqs")}


def test_a_content_row_is_filled_in_as_its_fetch_and_analyses_learn_more(db: Database) -> None:
    with db.session() as session:  # the fetch: type and size only
        records.record_media(session, sha256=SHA, mime="application/octet-stream", size=1000)
    assert _row(db) == {"mime": "application/octet-stream", "size": 1000, "width": None, "height": None,
                        "source_size": None, "pdq": None, "pdq_quality": None, "phash": None,
                        "pdq_dihedral": None, "md5": None, "frame_pdqs": None}
    with db.session() as session:  # the analysis: dimensions, the type it was read as, its hashes
        records.record_media(session, sha256=SHA, mime="image/jpeg", size=1000, width=640, height=480,
                             hashes={"pdq": PDQ, "pdq_quality": 90, "phash": "0123456789abcdef",
                                     "dihedral": [PDQ, "e" * 64]})
    with db.session() as session:  # a later analysis with other dimensions keeps the first ones
        records.record_media(session, sha256=SHA, mime="image/png", size=1000, width=10, height=20,
                             source_size=5000)
    assert _row(db) == {"mime": "image/jpeg", "size": 1000, "width": 640, "height": 480, "source_size": 5000,
                        "pdq": PDQ, "pdq_quality": 90, "phash": "0123456789abcdef",
                        "pdq_dihedral": f"{PDQ},{'e' * 64}", "md5": None, "frame_pdqs": None}


def test_a_new_content_row_takes_everything_at_once_and_a_partial_video_keeps_no_md5(db: Database) -> None:
    frames = [{"t": 0.0, "pdq": PDQ, "quality": 80}]
    with db.session() as session:
        records.record_media(session, sha256=SHA, mime="video/mp4", size=300, width=320, height=240,
                             source_size=9000, hashes={"md5": "0" * 32, "frames": frames, "partial": True})
    row = _row(db)
    assert (row["mime"], row["width"], row["height"], row["source_size"], row["md5"]) == \
        ("video/mp4", 320, 240, 9000, None)
    assert [(f.t, f.pdq, f.quality) for f in models.decode_frames(row["frame_pdqs"])] == [(0.0, PDQ, 80)]


def test_a_verdict_completes_the_pending_checks_of_its_content_only(db: Database) -> None:
    with db.session() as session:
        for sha in (SHA, "cd" * 32):
            records.record_media(session, sha256=sha, mime="image/jpeg", size=1)
        waiting = [records.create_check(session, source="url", url=f"http://a/{i}", sha256=SHA) for i in range(3)]
        other = records.create_check(session, source="url", url="http://a/other", sha256="cd" * 32)
        unknown = records.create_check(session, source="url", url="http://a/unfetched")
        verdict = fuse([Evidence(stage="hashes", kind=Kind.HASHES, summary="hashed")], sha256=SHA,
                       versions={}, timings={})
        verdict_id = records.record_verdict(session, verdict)
        done = records.complete_checks_for(session, SHA, verdict_id)
    assert sorted(done) == sorted(waiting)
    with db.session() as session:
        status = {c.id: (c.status, c.verdict_id) for c in session.query(models.Check)}
        again = records.complete_checks_for(session, SHA, verdict_id)  # nothing left waiting
    assert again == []
    assert all(status[i] == ("done", verdict_id) for i in waiting)
    assert status[other] == ("pending", None) and status[unknown] == ("pending", None)


def test_a_fetch_attempt_is_counted_and_renews_the_lease_only_for_a_check_not_done(db: Database) -> None:
    with db.session() as session:
        pending = records.create_check(session, source="url", url="http://a/x.jpg", url_hash="h1")
        done = records.create_check(session, source="url", url="http://a/y.jpg", url_hash="h2")
        session.execute(update(models.Check).where(models.Check.id == done).values(status="done"))
    with db.session() as session:
        before = session.get(models.Check, pending).updated_at  # as stored
    with db.session() as session:
        assert records.start_fetch_attempt(session, pending) == ("http://a/x.jpg", "h1")
        assert records.start_fetch_attempt(session, done) is None
        assert records.start_fetch_attempt(session, "no-such-check") is None
    with db.session() as session:
        rows = {c.id: c for c in session.query(models.Check)}
    assert rows[pending].attempts == 1 and rows[pending].updated_at > before
    assert rows[done].attempts == 0


def test_a_final_verdict_waits_for_the_disk_only_when_it_completes_no_check(tmp_path, pg_url) -> None:
    """worker/settle.py record_final: a verdict that completes a pending check commits without waiting for the disk
    (lost in a crash, the check is pending again and redone); one that completes none (a re-match's) waits."""
    inst = make_instance("alpha", tmp_path / "alpha", pg_url)  # its services are a worker's context too
    waits: list[str] = []
    redo_engine = engine_for(pg_url, commits_wait=False)

    def seen(_conn, _cursor, statement, *_args) -> None:
        if "synchronous_commit" in statement:
            waits.append(statement)

    event.listen(redo_engine, "before_cursor_execute", seen)
    try:
        verdict = fuse([Evidence(stage="hashes", kind=Kind.HASHES, summary="Hashed.",
                                 supports=Level.NO_EVIDENCE)], sha256=SHA, versions={"pipeline": "test"})
        record_final(inst.svc, SHA, verdict, media={"sha256": SHA, "mime": "image/jpeg", "size": 10})
        assert waits == ["SET LOCAL synchronous_commit TO on"], "no check waited: the commit waits for the disk"
        waits.clear()
        with inst.svc.db.session() as session:
            check_id = records.create_check(session, source="url", url="https://example.org/a.jpg")
            records.set_check_content(session, check_id, SHA)
        assert record_final(inst.svc, SHA, verdict) == [check_id]
        assert waits == [], "it completed a check: a lost commit is redone"
    finally:
        event.remove(redo_engine, "before_cursor_execute", seen)
