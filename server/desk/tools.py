"""The fact-checker's usual tools on the report page: reverse image search, keyframes to search, the forensic views.

Search links are built for the reader's browser: the server sends nothing to any search engine. An engine can
fetch an image by its public address only; an upload (or a keyframe) has none, so the reader downloads it
and uploads it there themselves. The address used is one where this instance saw the image, and only when
the report shows sightings (signed in, ``desk_sightings`` on): the tools reveal nothing the page does not.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

# (name, search by address, page to upload a file to)
ENGINES: tuple[tuple[str, str, str], ...] = (
    ("Google Lens", "https://lens.google.com/uploadbyurl?url={url}", "https://lens.google.com/"),
    ("Bing Visual Search", "https://www.bing.com/images/search?view=detailv2&iss=sbi&q=imgurl:{url}",
     "https://www.bing.com/visualsearch"),
    ("Yandex Images", "https://yandex.com/images/search?rpt=imageview&url={url}", "https://yandex.com/images/"),
    ("TinEye", "https://tineye.com/search?url={url}", "https://tineye.com/"),
)
MAX_KEYFRAMES = 24


def search_links(public_url: str | None) -> list[dict[str, Any]]:
    """One link per engine: a search by the image's address when it has a public one, else the engine's
    upload page."""
    usable = bool(public_url) and public_url.lower().startswith(("http://", "https://"))
    return [{"engine": name,
             "href": by_url.format(url=quote(public_url, safe="")) if usable else upload,
             "by_url": usable} for name, by_url, upload in ENGINES]


def public_url(report: dict[str, Any]) -> str | None:
    """The most recent address this instance fetched the image from, if the report shows where it was seen."""
    urls = ((report.get("sightings") or {}).get("urls")) or []
    latest = max(urls, key=lambda u: u.get("fetched_at") or "", default=None)
    return (latest.get("final_url") or latest.get("url")) if latest else None


def report_tools(report: dict[str, Any], signed_in: bool) -> dict[str, Any] | None:
    """What the report page's Tools section shows (None: nothing, as for readers not signed in, who see no
    image either)."""
    if not signed_in:
        return None
    video = report.get("video") or {}
    keyframes = [{"clock": f.get("clock"), "thumb": f["thumb"], "why": f.get("why")}
                 for f in video.get("keyframes") or [] if isinstance(f, dict) and f.get("thumb")][:MAX_KEYFRAMES]
    url = None if video else public_url(report)
    return {
        "url": url,
        "links": search_links(url),
        "upload_pages": search_links(None),
        "viewable": bool(report.get("viewable")),
        "keyframes": keyframes,
        "forensics": bool(report.get("viewable")),
    }
