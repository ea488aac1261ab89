"""Exact Hamming-radius search over packed binary hashes (PDQ 256-bit, pHash 64-bit).

Multi-index hashing (Norouzi, Punjani, Fleet 2012): the hash is cut into 16-bit substrings, each
with its own bucket table. If two hashes differ in at most ``t`` bits over ``m`` substrings, some
substring differs in at most ``ceil((t + 1) / m) - 1`` bits (pigeonhole), so probing every table
within that radius finds every true neighbour; candidates are then verified by popcount. The index
is therefore exact: it can never miss a hash within the threshold (tests compare it with brute force).

Memory is what bounds a worker at millions of entries, so each table's posting lists (the rows of
every bucket, ascending) are Elias-Fano coded: the low 16 bits of each row number as a uint16, the
high bits in unary in one bit array (a bucket's segment starts at bit ``offset + bucket * blocks``,
so no directory is needed beyond the bucket offsets). That is about 18 bits per row per table
against 32 for a plain permutation, close to the ~17.4-bit entropy of a posting list. For PDQ at 10M
hashes: 320 MB of hashes + 360 MB of tables (2.1x raw; plain uint32 tables made it 3.0x).
Any exact multi-index needs about as many table bits per row as the hash has (16 tables x 16 bits),
so about 2x raw is this design's floor; brute force at 1x raw is ~50x slower (bench/pdq_index.py).
"""
from __future__ import annotations

from itertools import combinations
from math import ceil

import numpy as np

SUB_BITS = 16
BUCKETS = 1 << SUB_BITS
LOW_BITS = 16  # Elias-Fano's best split: log2(rows / rows per bucket) = SUB_BITS
LOW_MASK = (1 << LOW_BITS) - 1


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


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each of several concatenated runs begins."""
    return np.cumsum(lengths) - lengths


class HammingIndex:
    """Exact radius search; build once per bank generation, query many times."""

    def __init__(self, hashes: np.ndarray, max_distance: int) -> None:
        hashes = np.ascontiguousarray(hashes, dtype=np.uint8)
        if hashes.ndim != 2 or hashes.shape[1] % 8:
            raise ValueError("hashes must be (n, bytes) with bytes a multiple of 8")
        n = len(hashes)
        if n >= 1 << 32:
            raise ValueError("at most 2**32 - 1 hashes per index")
        self.hashes = hashes
        self._setup(max_distance)
        self._offsets = np.empty((self.tables, BUCKETS + 1), dtype=np.uint32)
        self._low = np.empty((self.tables, n), dtype=np.uint16)
        self._high = np.empty((self.tables, self._table_bytes), dtype=np.uint8)
        subs = hashes.view(">u2")  # (n, tables) substrings, same bit order as the hex
        bucket_base = np.arange(BUCKETS, dtype=np.int64) * self._blocks
        for table in range(self.tables):
            keys = np.ascontiguousarray(subs[:, table])
            counts = np.bincount(keys, minlength=BUCKETS)
            self._offsets[table, 0] = 0
            np.cumsum(counts, out=self._offsets[table, 1:])
            order = np.argsort(keys, kind="stable")  # by bucket, rows ascending within each
            self._low[table] = order & LOW_MASK
            ones = np.repeat(bucket_base, counts)
            ones += np.arange(n, dtype=np.int64)
            ones += order >> LOW_BITS
            flags = np.zeros(self._table_bytes * 8, dtype=bool)
            flags[ones] = True
            self._high[table] = np.packbits(flags)

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything a search reads, to save and map back (worker/banks/index/snapshot_files.py)."""
        return {"hashes": self.hashes, "offsets": self._offsets, "low": self._low, "high": self._high}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], max_distance: int) -> "HammingIndex":
        """An index over saved arrays (read-only maps are fine: a search never writes), not rebuilt."""
        index = cls.__new__(cls)
        index.hashes, index._offsets = arrays["hashes"], arrays["offsets"]
        index._low, index._high = arrays["low"], arrays["high"]
        index._setup(max_distance)
        return index

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self._low.nbytes + self._high.nbytes + self._offsets.nbytes

    def _setup(self, max_distance: int) -> None:
        n = len(self.hashes)
        self.max_distance = max_distance
        self.tables = self.hashes.shape[1] * 8 // SUB_BITS
        self.radius = max(0, ceil((max_distance + 1) / self.tables) - 1)
        self._masks = _probe_masks(self.radius)
        self._blocks = max(1, (n + LOW_MASK) >> LOW_BITS)  # distinct high parts of a row number
        self._table_bytes = (n + BUCKETS * self._blocks + 7) // 8  # a 1 per row, a 0 per (bucket, high part)

    def candidates(self, query: np.ndarray) -> np.ndarray:
        """Rows sharing a substring within the probe radius: a superset of the true neighbours,
        with repeats (deduplicating only the few verified rows is much cheaper than all of these)."""
        n = len(self.hashes)
        subs = query.view(">u2").astype(np.int64)  # (tables,)
        keys = (subs[:, None] ^ self._masks[None, :]).ravel()  # every probed bucket, table-major
        tables = np.repeat(np.arange(self.tables), len(self._masks))
        starts = self._offsets[tables, keys].astype(np.int64)
        counts = self._offsets[tables, keys + 1].astype(np.int64) - starts
        busy = counts > 0
        keys, tables, starts, counts = keys[busy], tables[busy], starts[busy], counts[busy]
        total = int(counts.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        # each probed bucket's unary segment: its bytes gathered, then bits outside it masked off
        seg_start = starts + keys * self._blocks
        seg_end = seg_start + counts + self._blocks
        first_byte = seg_start >> 3
        nbytes = ((seg_end + 7) >> 3) - first_byte
        at = _starts(nbytes)
        flat = np.repeat(first_byte + tables * self._table_bytes - at, nbytes) + np.arange(int(nbytes.sum()))
        chunk = self._high.reshape(-1)[flat]
        chunk[at] &= (0xFF >> (seg_start & 7)).astype(np.uint8)
        chunk[at + nbytes - 1] &= ((0xFF00 >> np.where(seg_end & 7, seg_end & 7, 8)) & 0xFF).astype(np.uint8)
        ones = np.flatnonzero(np.unpackbits(chunk))  # exactly `total` of them, segment by segment
        rank = np.arange(total) - np.repeat(_starts(counts), counts)
        high = ones - np.repeat(at * 8 + (seg_start & 7), counts) - rank
        low = self._low.reshape(-1)[np.repeat(starts + tables * n, counts) + rank]
        return (high << LOW_BITS) | low

    def search(self, query: np.ndarray, max_distance: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows within ``max_distance`` (default: the built threshold) and their distances."""
        limit = self.max_distance if max_distance is None else max_distance
        if limit > self.max_distance:
            raise ValueError("the index was built for a smaller radius")
        query = np.ascontiguousarray(query, dtype=np.uint8).reshape(-1)
        rows = self.candidates(query)
        if len(rows) == 0:
            return rows.astype(np.int64), np.zeros(0, dtype=np.int32)
        counts = np.bitwise_count(np.take(self.hashes.view(np.uint64), rows, axis=0) ^ query.view(np.uint64))
        if counts.shape[1] == 4:  # a PDQ row's four counts add up in one multiply (mod 256: rechecked below)
            near = (counts.view(np.uint32).ravel() * np.uint32(0x01010101)) >> 24 <= limit
            rows, counts = rows[near], counts[near]
        dist = counts.sum(axis=1, dtype=np.int32)  # exact, on the few rows left
        keep = dist <= limit
        found, first = np.unique(rows[keep], return_index=True)
        return found.astype(np.int64), dist[keep][first]
