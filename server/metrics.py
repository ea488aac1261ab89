"""Prometheus metrics of the API process."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_LATENCY = Histogram("credence_http_request_seconds", "API request latency", ["endpoint", "method", "status"])
CACHE_LOOKUPS = Counter("credence_cache_lookups_total", "Verdict cache lookups by URL", ["result"])
CACHE_HITS = CACHE_LOOKUPS.labels("hit")
CACHE_MISSES = CACHE_LOOKUPS.labels("miss")
CHECKS_CREATED = Counter("credence_checks_created_total", "Checks queued", ["source"])
