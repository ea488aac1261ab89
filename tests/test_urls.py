"""One URL rule for the API's cache key and for what the fetcher requests (server/checks/urls.py).

Expected values are written out by hand; e.g. 1572395042 = 93*2^24 + 184*2^16 + 216*2^8 + 34.
"""
from __future__ import annotations

import ipaddress

import pytest

from server.checks.urls import BadUrl, normalise, url_key
from tests.helpers import MediaServer, make_png
from worker.fetch.common import FetchLimits, FetchRefused
from worker.fetch.media import fetch
from worker.fetch.transport import fetch_target


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


# (raw URL, what both the cache key and the fetch are made from)
SAME: list[tuple[str, str]] = [
    # the three spellings the two normalisers used to read differently
    ("http://\uff45xample.com/a.jpg", "http://example.com/a.jpg"),  # full-width e
    ("http://1572395042/a.jpg", "http://93.184.216.34/a.jpg"),  # decimal IPv4
    ("http://example.com/a b.jpg", "http://example.com/a%20b.jpg"),  # a space
    # IDNA
    ("http://B\u00fccher.test/a.jpg", "http://xn--bcher-kva.test/a.jpg"),
    ("http://example\u3002com/a.jpg", "http://example.com/a.jpg"),  # ideographic full stop
    ("http://\uff19\uff13.184.216.34/a.jpg", "http://93.184.216.34/a.jpg"),  # full-width digits
    # percent-encoding: UTF-8 then %XX, existing escapes kept as written (never encoded twice)
    ("http://example.com/caf\u00e9 x.jpg?q=\u00e9", "http://example.com/caf%C3%A9%20x.jpg?q=%C3%A9"),
    ("http://example.com/a%20b.jpg", "http://example.com/a%20b.jpg"),
    ("http://example.com/a%2fb.jpg", "http://example.com/a%2fb.jpg"),
    ("http://example.com/a.jpg?", "http://example.com/a.jpg"),
    # default ports, and ports that are not the scheme's default
    ("http://example.com:80/a.jpg", "http://example.com/a.jpg"),
    ("https://example.com:443/a.jpg", "https://example.com/a.jpg"),
    ("http://example.com:443/a.jpg", "http://example.com:443/a.jpg"),
    ("https://example.com:80/a.jpg", "https://example.com:80/a.jpg"),
    # IPv4 in octal, hex, short and mixed forms
    ("http://0135.0270.0330.042/a.jpg", "http://93.184.216.34/a.jpg"),
    ("http://0x5d.0xb8.0xd8.0x22/a.jpg", "http://93.184.216.34/a.jpg"),
    ("http://0x5DB8D822/a.jpg", "http://93.184.216.34/a.jpg"),
    ("http://93.184.55330/a.jpg", "http://93.184.216.34/a.jpg"),
    ("http://0x5d.184.0330.34/a.jpg", "http://93.184.216.34/a.jpg"),
    # trailing dots
    ("http://example.com./a.jpg", "http://example.com/a.jpg"),
    ("http://93.184.216.34./a.jpg", "http://93.184.216.34/a.jpg"),
    # IPv6: compressed, lower case, default port dropped
    ("http://[2001:DB8:0:0:0:0:0:1]:80/a.jpg", "http://[2001:db8::1]/a.jpg"),
    ("https://[2606:4700:4700:0::1111]:8443/a.jpg", "https://[2606:4700:4700::1111]:8443/a.jpg"),
]


@pytest.mark.parametrize("raw,expected", SAME)
def test_cache_key_is_the_key_of_what_is_fetched(raw: str, expected: str) -> None:
    assert normalise(raw) == expected
    assert fetch_target(raw).url == expected
    assert url_key(normalise(raw)) == url_key(fetch_target(raw).url)


def test_the_fetched_url_is_the_keyed_one_end_to_end(media_server: MediaServer) -> None:
    media_server.add("/a%20b.png", make_png(), "image/png")
    raw = f"http://127.0.0.1:{media_server.port}/a b.png"
    limits = FetchLimits(max_bytes=1 << 20, timeout_s=5, max_redirects=0, max_pixels=1 << 20,
                         allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    got = fetch(raw, limits)
    assert got.final_url == normalise(raw) == f"http://127.0.0.1:{media_server.port}/a%20b.png"
    assert media_server.hits["/a%20b.png"] == 1


# (raw URL, code, the API's message, the fetcher's message)
REFUSED: list[tuple[str, str, str, str]] = [
    ("ftp://example.com/a.jpg", "scheme", "only http and https URLs can be checked, not ftp:",
     "refused: only http and https URLs are fetched, not ftp:"),
    ("//example.com/a.jpg", "scheme", "only http and https URLs can be checked, not a URL without a scheme",
     "refused: only http and https URLs are fetched, not a URL without a scheme"),
    ("http://user:pw@example.com/a.jpg", "credentials", "the URL carries a username or password",
     "refused: the URL carries a username or password"),
    ("http://example.com\\@93.184.216.34/a.jpg", "credentials", "the URL carries a username or password",
     "refused: the URL carries a username or password"),
    # the API used to queue these and leave the fetcher to refuse them
    ("http://1.2.3.4.5/a.jpg", "bad-url", "1.2.3.4.5 is not a valid IP address",
     "refused: 1.2.3.4.5 is not a valid IP address"),
    ("http://256.0.0.1/a.jpg", "bad-url", "256.0.0.1 is not a valid IP address",
     "refused: 256.0.0.1 is not a valid IP address"),
    ("http://example.com/a\tb.jpg", "bad-url", "the URL contains control characters",
     "refused: the URL contains control characters"),
    ("http://example.com:+80/a.jpg", "bad-url", "'+80' is not a valid port", "refused: '+80' is not a valid port"),
    ("http://[fe80::1%25eth0]/a.jpg", "bad-url", "scoped IPv6 addresses (zone ids) cannot be fetched",
     "refused: scoped IPv6 addresses (zone ids) cannot be fetched"),
    ("http://::1/a.jpg", "bad-url", "IPv6 addresses in URLs must be in brackets",
     "refused: IPv6 addresses in URLs must be in brackets"),
]


@pytest.mark.parametrize("raw,code,api_message,fetch_message", REFUSED)
def test_both_sides_refuse_the_same_urls(raw: str, code: str, api_message: str, fetch_message: str) -> None:
    with pytest.raises(BadUrl) as bad:
        normalise(raw)
    assert (str(bad.value), bad.value.code) == (api_message, code)
    with pytest.raises(FetchRefused) as refused:
        fetch_target(raw)
    assert (refused.value.reason, refused.value.code) == (fetch_message, code)


def test_a_blocked_address_is_a_fetch_refusal_not_a_url_refusal() -> None:
    # The key names the address the URL means; the address policy is the fetcher's, at fetch time.
    assert normalise("http://2130706433/a.jpg") == "http://127.0.0.1/a.jpg"
    limits = FetchLimits(max_bytes=1 << 20, timeout_s=5, max_redirects=0, max_pixels=1 << 20)
    with pytest.raises(FetchRefused) as refused:
        fetch("http://2130706433/a.jpg", limits)
    assert (refused.value.reason, refused.value.code) == (
        "refused: 2130706433 means 127.0.0.1, a loopback address", "blocked-address")
