"""Rate limits in the shared cache (the database, or Redis when REDIS_URL is set), so they hold
across app servers. Fixed windows: simple, and good enough against scripted abuse."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The caller's address. Behind NUM_PROXIES trusted proxies, from X-Forwarded-For."""
    if settings.NUM_PROXIES:
        forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()]
        if len(forwarded) >= settings.NUM_PROXIES:
            return forwarded[-settings.NUM_PROXIES]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def ratelimit_hit(*, scope: str, key: str) -> int | None:
    """Count one attempt for `key` in `scope`. None if allowed; else seconds until it is again.

    Limits come from settings.RATE_LIMITS[scope] = (attempts, seconds). Keys are hashed so
    that no email address or IP is stored in the cache.
    """
    if not settings.RATELIMIT_ENABLED:
        return None
    limit, period = settings.RATE_LIMITS[scope]
    now = int(time.time())
    window = now // period
    digest = hashlib.sha256(f"{scope}:{key}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    cache_key = f"rl:{scope}:{digest}:{window}"
    cache.add(cache_key, 0, timeout=period + 5)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=period + 5)
        count = 1
    if count > limit:
        return max(1, (window + 1) * period - now)
    return None
