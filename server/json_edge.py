"""Text that enters from outside is checked once, at the edge, so nothing stored can break an export later.

JSON may spell lone UTF-16 surrogates (``"\\udfff"``): Python accepts them as ``str`` but they cannot be
encoded as UTF-8, so one stored in a label broke every export, feed page and desk page that showed it.
NUL cannot be stored in a PostgreSQL text column. Both are refused where they arrive (API bodies,
query strings, desk forms, imports, peers' feeds), with the place they were found.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # far deeper than any body this API takes; a 1,000-deep one used to crash the parser
_BAD = re.compile("[\ud800-\udfff\x00]")


class UnsafeText(ValueError):
    """Input that is not storable text; the message says where."""


def bad_char(text: str) -> str | None:
    """A description of the first unstorable character in ``text``, or None."""
    found = _BAD.search(text)
    if found is None:
        return None
    char = found.group()
    return "a NUL character" if char == "\x00" else f"a lone surrogate U+{ord(char):04X} (not a Unicode scalar value)"


def check_text(text: str, where: str) -> str:
    problem = bad_char(text)
    if problem is not None:
        raise UnsafeText(f"{where} contains {problem}")
    return text


def check_value(value: Any, where: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """Walk parsed JSON (iteratively: no recursion to exhaust) checking keys and strings and the depth."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, path)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise UnsafeText(f"{path} is nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text(str(key), f"{path}: a key")
                    stack.append((child, f"{path}.{key}" if _plain(key) else f"{path}[...]", depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
    return value


def _plain(key: Any) -> bool:
    return isinstance(key, str) and bad_char(key) is None and len(key) <= 100


def loads(data: str | bytes, where: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses what cannot be stored and what nests too deep, always as UnsafeText
    or ValueError (never RecursionError)."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError as exc:
        raise UnsafeText(f"{where} is nested deeper than {max_depth} levels") from exc
    return check_value(value, where, max_depth)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def scrub(text: str | None) -> str | None:
    """Replace unstorable characters (U+FFFD): for rows stored before the edge checked them."""
    return None if text is None else _BAD.sub("\ufffd", text)
