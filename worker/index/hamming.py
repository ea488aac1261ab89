"""Exact Hamming-radius search over packed binary hashes (PDQ 256-bit, pHash 64-bit).

Multi-index hashing (Norouzi, Punjani, Fleet 2012): the hash is cut into 16-bit substrings, each
with its own bucket table. If two hashes differ in at most ``t`` bits over ``m`` substrings, some
substring differs in at most ``ceil((t + 1) / m) - 1`` bits (pigeonhole), so probing every table
within that radius finds every true neighbour; candidates are then verified by popcount. The index
is therefore exact: it can never miss a hash within the threshold (tests compare it with brute force).

Memory: the packed hashes (n x bytes) plus one uint32 permutation per table (4 bytes x n x m) and
65,537 offsets per table. For PDQ at 10M hashes: 320 MB of hashes + 640 MB of tables.
"""
from __future__ import annotations

from itertools import combinations
from math import ceil

import numpy as np

SUB_BITS = 16
BUCKETS = 1 << SUB_BITS


def pack_hex(hex_hashes: list[str], nbytes: int) -> np.ndarray:
    """Hex strings -> (n, nbytes) uint8, big-endian: the hex's first bit is the array's first bit."""
    if not hex_hashes:
        return np.zeros((0, nbytes), dtype=np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hex_hashes)), dtype=np.uint8).reshape(-1, nbytes)


def to_columns(hashes: np.ndarray) -> np.ndarray:
    """(n, bytes) -> (words, n) uint64: the layout brute force scans fastest."""
    return np.ascontiguousarray(hashes.view(np.uint64).T)


def brute_force(hashes: np.ndarray, query: np.ndarray, max_distance: int,
                columns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: popcount against every hash, one 64-bit word column at a time.
    Returns (row indices, distances)."""
    words = columns if columns is not None else hashes.view(np.uint64).T
    q = np.ascontiguousarray(query, dtype=np.uint8).reshape(-1).view(np.uint64)
    dist = np.bitwise_count(words[0] ^ q[0]).astype(np.uint16)
    for k in range(1, len(q)):
        dist += np.bitwise_count(words[k] ^ q[k])
    rows = np.flatnonzero(dist <= max_distance)
    return rows, dist[rows].astype(np.int32)


def _probe_masks(radius: int) -> np.ndarray:
    masks = [0]
    for r in range(1, radius + 1):
        for bits in combinations(range(SUB_BITS), r):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.int64)


class HammingIndex:
    """Exact radius search; build once per bank generation, query many times."""

    def __init__(self, hashes: np.ndarray, max_distance: int) -> None:
        hashes = np.ascontiguousarray(hashes, dtype=np.uint8)
        if hashes.ndim != 2 or hashes.shape[1] % 8:
            raise ValueError("hashes must be (n, bytes) with bytes a multiple of 8")
        self.hashes = hashes
        self.max_distance = max_distance
        self.tables = hashes.shape[1] * 8 // SUB_BITS
        self.radius = max(0, ceil((max_distance + 1) / self.tables) - 1)
        self._masks = _probe_masks(self.radius)
        n = len(hashes)
        subs = hashes.view(">u2")  # (n, tables) substrings, same bit order as the hex
        self._offsets = np.empty((self.tables, BUCKETS + 1), dtype=np.int64)
        self._order = np.empty((self.tables, n), dtype=np.uint32)
        for table in range(self.tables):
            keys = np.ascontiguousarray(subs[:, table])
            self._offsets[table, 0] = 0
            np.cumsum(np.bincount(keys, minlength=BUCKETS), out=self._offsets[table, 1:])
            self._order[table] = np.argsort(keys, kind="stable")

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self._order.nbytes + self._offsets.nbytes

    def candidates(self, query: np.ndarray) -> np.ndarray:
        """Rows sharing a substring within the probe radius: a superset of the true neighbours,
        with repeats (deduplicating only the few verified rows is much cheaper than all of these)."""
        subs = query.view(">u2").astype(np.int64)  # (tables,)
        keys = (subs[:, None] ^ self._masks[None, :])  # (tables, probes)
        table_ids = np.repeat(np.arange(self.tables), keys.shape[1])
        flat_keys = keys.ravel()
        starts = self._offsets[table_ids, flat_keys]
        lengths = self._offsets[table_ids, flat_keys + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        # gather all bucket slices at once: position within bucket + bucket start, per table
        bases = np.repeat(starts + table_ids * len(self.hashes) - np.cumsum(lengths) + lengths, lengths)
        return self._order.reshape(-1)[np.arange(total) + bases]

    def search(self, query: np.ndarray, max_distance: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows within ``max_distance`` (default: the built threshold) and their distances."""
        limit = self.max_distance if max_distance is None else max_distance
        if limit > self.max_distance:
            raise ValueError("the index was built for a smaller radius")
        query = np.ascontiguousarray(query, dtype=np.uint8).reshape(-1)
        rows = self.candidates(query)
        if len(rows) == 0:
            return rows.astype(np.int64), np.zeros(0, dtype=np.int32)
        words = np.take(self.hashes.view(np.uint64), rows, axis=0)
        dist = np.bitwise_count(words ^ query.view(np.uint64)).sum(axis=1, dtype=np.int32)
        keep = dist <= limit
        found, first = np.unique(rows[keep], return_index=True)
        return found.astype(np.int64), dist[keep][first]
