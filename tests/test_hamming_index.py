"""The multi-index never misses a hash within the threshold: exact agreement with brute force."""
from __future__ import annotations

import numpy as np
import pytest

from server.banks.hamming import HammingIndex, brute_force, pack_hex


def planted(rng: np.random.Generator, base: np.ndarray, nbits: int, distance: int) -> np.ndarray:
    bits = np.unpackbits(base)
    bits[rng.choice(nbits, distance, replace=False)] ^= 1
    return np.packbits(bits)


@pytest.mark.parametrize("nbytes,threshold", [(32, 31), (32, 15), (32, 40), (8, 6), (8, 10)])
def test_exact_agreement_with_brute_force(nbytes: int, threshold: int) -> None:
    rng = np.random.default_rng(nbytes * 100 + threshold)
    hashes = rng.integers(0, 256, (20_000, nbytes), dtype=np.uint8)
    # clusters of near-duplicates, like real banks (the same fake re-uploaded many times)
    for i in range(0, 2_000, 10):
        for j in range(1, 10):
            hashes[i + j] = planted(rng, hashes[i], nbytes * 8, int(rng.integers(0, threshold + 3)))
    index = HammingIndex(hashes, threshold)
    queries = [planted(rng, hashes[int(rng.integers(len(hashes)))], nbytes * 8, int(rng.integers(0, threshold + 5)))
               for _ in range(300)] + [rng.integers(0, 256, nbytes, dtype=np.uint8) for _ in range(50)]
    found_any = 0
    for query in queries:
        rows, dist = index.search(query)
        expected_rows, expected_dist = brute_force(hashes, query, threshold)
        order = np.argsort(expected_rows)
        assert rows.tolist() == expected_rows[order].tolist()
        assert dist.tolist() == expected_dist[order].tolist()
        found_any += len(rows) > 0
    assert found_any > 150  # the planted neighbours were really there to find


def test_row_numbers_past_65536_decode_exactly() -> None:
    """Posting lists keep the low 16 bits of a row number and code the rest in unary: rows far past the
    first 65,536 must come back as themselves (a wrong high part would name some other row)."""
    rng = np.random.default_rng(65536)
    n = 300_000
    hashes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    index = HammingIndex(hashes, 31)
    targets = [0, 65_535, 65_536, 131_071, 200_001, n - 1] + rng.integers(0, n, 60).tolist()
    for row in targets:
        query = planted(rng, hashes[row], 256, int(rng.integers(0, 32)))
        rows, dist = index.search(query)
        expected_rows, expected_dist = brute_force(hashes, query, 31)
        assert row in rows.tolist()
        assert rows.tolist() == sorted(expected_rows.tolist())
        assert dist.tolist() == [int(d) for _, d in sorted(zip(expected_rows, expected_dist))]
    # every row a table holds is decoded once per table: all of them together are each row 16 times
    everything = np.concatenate([index.candidates(hashes[row]) for row in range(3)])
    assert set(range(3)) <= set(everything.tolist()) and everything.max() < n
    # Elias-Fano: at most 19 bits per row per table (a uint32 permutation is 32), plus the bucket offsets
    assert index.nbytes <= hashes.nbytes + 16 * (n * 19 // 8 + (65_536 + 1) * 4)


def test_exactly_at_the_threshold_is_found_and_one_over_is_not() -> None:
    rng = np.random.default_rng(7)
    hashes = rng.integers(0, 256, (1000, 32), dtype=np.uint8)
    index = HammingIndex(hashes, 31)
    at = planted(rng, hashes[5], 256, 31)
    over = planted(rng, hashes[5], 256, 32)
    assert 5 in index.search(at)[0].tolist()
    assert 5 not in index.search(over)[0].tolist()


def test_pack_hex_keeps_bit_order_and_empty_indexes_work() -> None:
    packed = pack_hex(["80" + "00" * 31], 32)
    assert np.unpackbits(packed[0])[0] == 1 and packed.shape == (1, 32)
    empty = HammingIndex(pack_hex([], 32), 31)
    assert len(empty) == 0 and empty.search(np.zeros(32, dtype=np.uint8))[0].size == 0
    with pytest.raises(ValueError):
        empty.search(np.zeros(32, dtype=np.uint8), max_distance=40)
