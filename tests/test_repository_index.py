"""The repository's lookups through the banks' multi-index (server/provenance/repository.py, docs/repository.md):
the same answers as a scan of every row, at the threshold's edge, and after rows are added, changed and deleted."""
from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
from sqlalchemy import delete, event, insert, update

from server import models
from server.db import Database
from server.migrate import upgrade
from server.provenance import repository

PDQ_T = 31  # the banks' default threshold
ROWS = 3_000  # above the size from which the index is built


def flip(hex_value: str, bits: int, rng: random.Random) -> str:
    """A hash exactly ``bits`` bits from ``hex_value``."""
    width = len(hex_value) * 4
    value = int(hex_value, 16)
    for bit in rng.sample(range(width), bits):
        value ^= 1 << bit
    return f"{value:0{len(hex_value)}x}"


def iscc_code(digest: str) -> str:
    """An ``ISCC:EE...`` Image-Code (header 0x21 0x01: content, image, v0, 64 bits) around a 64-bit body."""
    return "ISCC:" + base64.b32encode(bytes([0x21, 0x01]) + bytes.fromhex(digest)).decode()


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


class Store:
    """Rows written straight into a database, and the scan of every row that the lookup must agree with."""

    def __init__(self, tmp_path: Path, url: str | None = None) -> None:
        url = url or f"sqlite:///{tmp_path / 'r.db'}"
        upgrade(url)
        self.db = Database(url)
        self.rows: dict[str, dict] = {}
        self.digests: dict[str, str] = {}  # row id -> its ISCC's 64-bit body, as the test made it
        self.rng = random.Random(19)

    def add(self, count: int, *, pdq: str | None = None, iscc: str | None = None, quality: int = 100) -> list[str]:
        rows = []
        for _ in range(count):
            sha = f"{self.rng.getrandbits(256):064x}"
            self.digests[sha[:32]] = iscc or f"{self.rng.getrandbits(64):016x}"
            rows.append({"id": sha[:32], "sha256": sha, "label": f"urn:c2pa:{sha[:8]}", "state": "trusted",
                         "signer": {}, "actions": [], "ai_declarations": [],
                         "pdq": pdq or f"{self.rng.getrandbits(256):064x}", "pdq_quality": quality,
                         "iscc": iscc_code(self.digests[sha[:32]]),
                         "last_seen": models.utcnow()})
        with self.db.session() as session:
            session.execute(insert(models.ProvenanceManifest), rows)
        self.rows.update({r["id"]: r for r in rows})
        return [r["id"] for r in rows]

    def change(self, row_id: str, pdq: str) -> None:
        with self.db.session() as session:
            session.execute(update(models.ProvenanceManifest).where(models.ProvenanceManifest.id == row_id)
                            .values(pdq=pdq, last_seen=models.utcnow()))
        self.rows[row_id]["pdq"] = pdq

    def drop(self, row_id: str) -> None:
        with self.db.session() as session:
            session.execute(delete(models.ProvenanceManifest).where(models.ProvenanceManifest.id == row_id))
        del self.rows[row_id]

    def find(self, pdq: list[str], iscc: str | None = None) -> tuple[str, str, int] | None:
        with self.db.session() as session:
            found = repository.find(session, pdq=pdq, iscc=iscc_code(iscc) if iscc else None, pdq_threshold=PDQ_T)
        return (found.manifest_id, found.binding, found.distance) if found else None

    def scan(self, pdq: list[str], iscc: str | None = None) -> tuple[set[str], str, int] | None:
        """Every nearest row (a tie may pick any of them) by plain integer popcount."""
        for binding, candidates in (("pdq", [(min(distance(r["pdq"], q) for q in pdq), i)
                                             for i, r in self.rows.items() if r["pdq_quality"] >= 50] if pdq else []),
                                    (repository.ISCC_BINDING,
                                     [(distance(self.digests[i], iscc), i) for i in self.rows] if iscc else [])):
            limit = PDQ_T if binding == "pdq" else repository.ISCC_THRESHOLD
            near = [(d, i) for d, i in candidates if d <= limit]
            if near:
                best = min(d for d, _ in near)
                return {i for d, i in near if d == best}, binding, best
        return None

    def agrees(self, pdq: list[str], iscc: str | None = None) -> tuple[str, str, int] | None:
        found, expected = self.find(pdq, iscc), self.scan(pdq, iscc)
        if expected is None:
            assert found is None
            return None
        assert found is not None and found[0] in expected[0] and found[1:] == expected[1:]
        return found

    def snapshot(self) -> repository._Snapshot:
        return next(iter(repository._SNAPSHOTS.values()))  # the only database this test looks up


@pytest.fixture
def store(tmp_path: Path) -> Store:
    repository._SNAPSHOTS.clear()
    return Store(tmp_path)


def test_indexed_lookups_agree_with_a_scan_of_every_row_at_the_threshold_edge(store: Store) -> None:
    rng = store.rng
    ids = store.add(ROWS)
    low = store.add(1, quality=30)[0]  # degenerate PDQ: never a match, not even at distance 0
    store.add(1, pdq=flip(store.rows[ids[5]]["pdq"], 3, rng))  # a near-duplicate of row 5
    edge = store.rows[ids[0]]["pdq"]
    assert store.agrees([flip(edge, PDQ_T, rng)])[0] == ids[0]  # exactly at the threshold: found
    assert store.agrees([flip(store.rows[ids[1]]["pdq"], PDQ_T + 1, rng)]) is None  # one over: not
    assert store.agrees([f"{rng.getrandbits(256):064x}", flip(edge, 2, rng)])[2] == 2  # any orientation
    assert store.agrees([store.rows[low]["pdq"]]) is None
    assert store.snapshot().indexes and store.snapshot().built == len(store.rows)  # the index answered
    body = store.digests[ids[2]]
    assert store.agrees([], flip(body, repository.ISCC_THRESHOLD, rng))[1:] == (repository.ISCC_BINDING, 6)
    assert store.agrees([], flip(body, repository.ISCC_THRESHOLD + 1, rng)) is None
    hits = 0
    for _ in range(120):
        target = store.rows[ids[rng.randrange(len(ids))]]
        pdq = [flip(target["pdq"], rng.randrange(PDQ_T + 6), rng), f"{rng.getrandbits(256):064x}"]
        iscc = flip(store.digests[target["id"]], rng.randrange(9), rng)
        hits += store.agrees(pdq, iscc) is not None
    assert hits > 60  # the planted neighbours were there to find, and not every query found one


def test_rows_added_changed_and_deleted_after_the_build_are_found_as_they_are_now(store: Store) -> None:
    rng = store.rng
    ids = store.add(ROWS)
    first = store.rows[ids[0]]["pdq"]
    assert store.agrees([flip(first, 4, rng)])[0] == ids[0]
    built = store.snapshot().built
    # added after the build: found by the scan beside the index
    added = store.add(20)
    assert store.agrees([flip(store.rows[added[3]]["pdq"], PDQ_T, rng)])[0] == added[3]
    # changed: its old value no longer matches (its index entry is stale), its new one does
    moved = flip(first, 128, rng)
    store.change(ids[0], moved)
    assert store.agrees([flip(first, 4, rng)]) is None
    assert store.agrees([flip(moved, 5, rng)])[0] == ids[0]
    assert store.snapshot().built == built  # all of that without building the index again
    # deleted: gone from the answers
    gone = store.rows[ids[1]]["pdq"]
    store.drop(ids[1])
    assert store.agrees([gone]) is None
    # enough new rows make the index be built again, over all of them
    store.add(ROWS // 8)
    for row in rng.sample(sorted(store.rows), 30):
        assert store.agrees([flip(store.rows[row]["pdq"], rng.randrange(PDQ_T + 1), rng)]) is not None
    assert store.snapshot().built > len(store.rows) - ROWS // 8  # built again, over the rows added since


def test_a_videos_frames_find_pictures_through_the_rows_index(tmp_path: Path) -> None:
    """Frames are asked of the same index as images' PDQs: each frame counts for the picture nearest it."""
    store = Store(tmp_path)
    store.add(ROWS)
    [photo] = store.add(1)
    [other] = store.add(1)
    rows = store.rows
    frames = [models.StoredFrame(t=0.0, pdq=flip(rows[photo]["pdq"], PDQ_T, store.rng), quality=90),
              models.StoredFrame(t=1.0, pdq=flip(rows[photo]["pdq"], 3, store.rng), quality=90),
              models.StoredFrame(t=2.0, pdq=flip(rows[other]["pdq"], 1, store.rng), quality=90),
              models.StoredFrame(t=3.0, pdq=flip(rows[photo]["pdq"], PDQ_T + 1, store.rng), quality=90)]
    with store.db.session() as session:
        found = repository.find_frames(session, frames, pdq_threshold=PDQ_T, frame_threshold=PDQ_T)
    # Two frames are within the threshold of the photo, one of the other picture: the photo, at its nearest pair.
    assert (found.manifest_id, found.binding, found.frames_matched, found.frames) == (photo, "pdq", 2, 4)
    assert (found.distance, found.t, found.original_t) == (3, 1.0, None)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_empty_repository_is_read_once_and_a_manifest_added_later_is_found(backend: str, tmp_path: Path,
                                                                             request: pytest.FixtureRequest) -> None:
    """Every fresh image without credentials looks here: an empty repository was read whole at each lookup
    (with PostgreSQL a streamed read, seven round trips). Now only what changed since the last look is read."""
    repository._SNAPSHOTS.clear()
    store = Store(tmp_path, request.getfixturevalue("pg_url") if backend == "postgresql" else None)
    statements: list[str] = []
    event.listen(store.db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    query = [f"{store.rng.getrandbits(256):064x}"]
    assert store.find(query) is None
    first = len(statements)
    assert store.find(query) is None
    assert len(statements) == first + 1 and "last_seen >=" in statements[-1]
    added = store.add(1)[0]
    assert store.find([flip(store.rows[added]["pdq"], 3, store.rng)])[0] == added
