"""Deleting one bank entry: the feed hears of it before the row goes (peers drop their copy)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from server import models
from server.banks import service as banks
from server.exchange import feed
from server.json_edge import scrub


def remove_entry(session: Session, entry: models.BankEntry, *, actor: str, note: str) -> dict[str, Any]:
    """A confirmed entry of our own in a shared bank is published as a retraction (its text scrubbed of
    characters that cannot be signed: such text is why an admin may be deleting it); then it is deleted."""
    bank = session.get(models.Bank, entry.bank_id)
    if entry.status == "confirmed" and bank is not None and bank.shared and not entry.origin_instance:
        entry.label, entry.notes = scrub(entry.label) or "", scrub(entry.notes) or ""
        entry.tags = [scrub(t) for t in entry.tags or []]
        entry.source_links = [scrub(u) for u in entry.source_links or []]
        feed.record(session, "retraction", entry, bank, note)
    return banks.delete_entry(session, entry, actor=actor, note=note)
