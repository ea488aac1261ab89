"""Words the desk shows both on its pages and in its PDF exports, written once."""
from __future__ import annotations


def signed_at(details: dict) -> str:
    """When a manifest was signed, as far as its time-stamp proves it (an untrusted stamp proves nothing)."""
    stamp = details.get("timestamp") or {}
    if details.get("signing_time"):
        return f"{details['signing_time']} (trusted time-stamp)"
    if stamp.get("time"):
        by = f" by {stamp['authority']}" if stamp.get("authority") else ""
        return f"unknown: a time-stamp{by} says {stamp['time']}, but its authority is not on the TSA trust list"
    return "unknown: no time-stamp"
