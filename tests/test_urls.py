from __future__ import annotations

import pytest

from server.checks.urls import BadUrl, normalise, url_key


@pytest.mark.parametrize("raw,expected", [
    ("HTTP://Example.COM/a.jpg", "http://example.com/a.jpg"),
    ("https://example.com:443/a.jpg#frag", "https://example.com/a.jpg"),
    ("http://example.com:8080/a.jpg?x=1", "http://example.com:8080/a.jpg?x=1"),
    ("http://example.com", "http://example.com/"),
    ("http://[::1]:80/x", "http://[::1]/x"),
    ("  http://example.com./p  ", "http://example.com/p"),
])
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected
    assert url_key(normalise(raw)) == url_key(expected)


@pytest.mark.parametrize("raw", ["", "   ", "ftp://x/y", "file:///etc/passwd", "javascript:alert(1)",
                                 "data:image/png;base64,AAAA", "//example.com/a.jpg", "http://", "http://u:p@x/",
                                 "http://example.com:99999/", "http://" + "a" * 5000, "http://[::1/"])
def test_refused(raw: str) -> None:
    with pytest.raises(BadUrl):
        normalise(raw)
