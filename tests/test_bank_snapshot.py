"""A worker's bank snapshot, built from a real migrated database: only confirmed entries, ids kept exactly
(whether packed uuid hex or any other text), and a rebuild when a bank's generation changes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from server import models
from server.banks import service as banks
from server.db import Database
from server.migrate import upgrade
from worker.banks.index.bank_snapshot import SnapshotHolder, build, entry_id, pack_ids

PDQ = "f" * 32 + "0" * 32
NEAR = "f" * 31 + "e" + "0" * 32  # one bit away


def _db(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'banks.db'}"
    upgrade(url)
    return Database(url)


def test_ids_pack_to_16_bytes_and_any_other_id_keeps_its_text() -> None:
    made = [models.new_id() for _ in range(3)]
    packed = pack_ids(made)
    assert packed.dtype == np.dtype("V16") and packed.nbytes == 48
    assert [entry_id(packed, i) for i in range(3)] == made
    for odd in (["not-a-uuid"], ["ABCDEF" + "0" * 26], ["ab" * 15]):  # text, upper-case hex, short hex
        kept = pack_ids(odd)
        assert kept.dtype.kind == "S" and entry_id(kept, 0) == odd[0]


def test_snapshot_holds_only_confirmed_entries_and_rebuilds_on_a_new_generation(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.session() as session:
        bank = banks.create_bank(session, name="fakes", kind="fake", actor="t")
        confirmed = banks.submit_entry(session, bank, actor="t", label="a", pdq=PDQ, pdq_quality=100,
                                       phash="ffff000000000000")
        banks.decide(session, confirmed, action="confirm", actor="r", note="seen")
        pending = banks.submit_entry(session, bank, actor="t", label="b", pdq=PDQ, pdq_quality=100)
        # an id not made by new_id (older or hand-made rows) must come back exactly as stored
        session.add(models.BankEntry(id="legacy-entry", bank_id=bank.id, pdq=NEAR, pdq_quality=90,
                                     media_kind="image", hash_state="ready", label="c", status="confirmed",
                                     submitted_by="t", source_links=[], tags=[]))
        confirmed_id, pending_id = confirmed.id, pending.id
    snap = build(db, 31, 6)
    found = sorted(snap.search_pdq(PDQ))
    assert found == sorted([(confirmed_id, 0, 100), ("legacy-entry", 1, 90)])
    assert pending_id not in {f[0] for f in found}
    assert snap.search_phash("ffff000000000001") == [(confirmed_id, 1)]
    assert snap.phash_ids is not snap.pdq_ids  # the legacy entry has no pHash: two id lists

    holder = SnapshotHolder(db, 31, 6)
    first = holder.current()
    assert holder.current() is first  # same generation: no rebuild
    with db.session() as session:
        banks.decide(session, banks.get_entry(session, pending_id), action="confirm", actor="r", note="ok")
    assert {f[0] for f in holder.current().search_pdq(PDQ)} == {confirmed_id, pending_id, "legacy-entry"}


def test_entries_with_both_hashes_share_one_id_list(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.session() as session:
        bank = banks.create_bank(session, name="fakes", kind="fake", actor="t")
        for i in range(3):
            entry = banks.submit_entry(session, bank, actor="t", label=str(i), pdq=f"{i:064x}", pdq_quality=100,
                                       phash=f"{i:016x}")
            banks.decide(session, entry, action="confirm", actor="r", note="")
    snap = build(db, 31, 6)
    assert snap.phash_ids is snap.pdq_ids and len(snap.pdq_ids) == 3
    assert {e for e, _ in snap.search_phash(f"{2:016x}")} == {entry_id(snap.pdq_ids, i) for i in range(3)}


def _build_or_map(url: str, folder: str) -> tuple[bool, list]:
    """In a fresh process: what a worker child does on its first match."""
    from server.db import Database as Db
    from worker.banks.index.bank_snapshot import SnapshotHolder as Holder

    snap = Holder(Db(url), 31, 6, folder=Path(folder)).current()
    return snap.built_here, sorted(snap.search_pdq(PDQ))


def test_processes_of_a_host_build_once_and_map_the_same_files(tmp_path: Path) -> None:
    import multiprocessing

    db = _db(tmp_path)
    with db.session() as session:
        bank = banks.create_bank(session, name="fakes", kind="fake", actor="t")
        for i, pdq in enumerate((PDQ, NEAR, "0" * 64)):
            entry = banks.submit_entry(session, bank, actor="t", label=str(i), pdq=pdq, pdq_quality=100,
                                       phash=f"{i:016x}")
            banks.decide(session, entry, action="confirm", actor="r", note="")
    folder = tmp_path / "bank-index"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_build_or_map, [(db.url, str(folder))] * 3)
    assert sorted(built for built, _ in results) == [False, False, True]  # one builder, two mapped its files
    assert len({repr(found) for _, found in results}) == 1 and len(results[0][1]) == 2
    [generation] = [p for p in folder.iterdir() if p.is_dir()]
    mapped = SnapshotHolder(db, 31, 6, folder=folder).current()
    assert not mapped.built_here and isinstance(mapped.pdq.hashes, np.memmap)
    assert sorted(mapped.search_pdq(PDQ)) == results[0][1]
    assert mapped.phash_ids is mapped.pdq_ids  # saved once

    with db.session() as session:  # a new generation: built again, the files of two generations kept
        entry = banks.submit_entry(session, banks.get_bank(session, "fakes"), actor="t", label="new", pdq=NEAR,
                                   pdq_quality=100)
        banks.decide(session, entry, action="confirm", actor="r", note="")
        new_id = entry.id
    for _ in range(2):
        snap = SnapshotHolder(db, 31, 6, folder=folder).current()
    assert len(snap.search_pdq(PDQ)) == 3
    assert generation.exists() and len([p for p in folder.iterdir() if p.is_dir()]) == 2
    (folder / "broken").mkdir()  # unreadable or foreign folders are not fatal
    with db.session() as session:
        banks.decide(session, banks.get_entry(session, new_id), action="retract", actor="r", note="")
    assert len(SnapshotHolder(db, 31, 6, folder=folder).current().search_pdq(PDQ)) == 2
    assert not generation.exists()  # the oldest generation is gone; what is not ours stays
    assert (folder / "broken").is_dir() and len([p for p in folder.iterdir() if p.name.startswith("g")]) == 2
    newest = max((p for p in folder.iterdir() if p.name.startswith("g")), key=lambda p: p.stat().st_mtime)
    (newest / "pdq_hashes.npy").write_bytes(b"not an array")  # a damaged file: rebuilt, never a crash
    again = SnapshotHolder(db, 31, 6, folder=folder).current()
    assert again.built_here and len(again.search_pdq(PDQ)) == 2
