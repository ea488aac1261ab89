"""Rate limits for anonymous callers (flask-limiter; Redis-backed when Redis is configured)."""
from __future__ import annotations

from flask import g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# Rate-limit headers on every response would cost a second storage round trip per request;
# a 429 still says when to come back (Retry-After, set in server/errors.py).
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=False)


def _has_key() -> bool:
    return getattr(g, "api_key", None) is not None


def _anonymous_limit() -> str:
    from flask import current_app

    return current_app.extensions["credence"].settings.rate_limit


limit_anonymous = limiter.limit(_anonymous_limit, exempt_when=_has_key)
