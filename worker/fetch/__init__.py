"""The one guarded fetcher: the only code in Credence that touches the network.

Every URL it sees comes from a stranger, so it is written against SSRF first and convenience second.
Its parts, each imported from its own module: ``common`` (FetchRefused, FetchLimits, Fetched, Want),
``policy`` (which addresses may be reached), ``deadline`` (one deadline per fetch and its watchdog),
``transport`` (the guarded request and the redirect loop), ``ranges`` (a video's start by range
requests), ``media`` (``fetch``) and ``documents`` (``fetch_document``). The URL rule itself is
server/checks/urls.py, shared with the API's cache key.
"""
