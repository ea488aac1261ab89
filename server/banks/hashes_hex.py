"""Hex lengths of the hashes Credence stores (lowercase hex everywhere, as the ecosystem writes them)."""

HEX_LENGTHS = {"sha256": 64, "pdq": 64, "phash": 16}
