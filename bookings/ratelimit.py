"""Rate limits shared by every app server: fixed windows counted in Redis when REDIS_URL is
set, otherwise in one database row per key, bumped by a single atomic upsert.

Why not Django's cache API: on the database cache backend an add-then-increment costs about
a dozen queries and can lose counts under concurrency; one upsert costs one query and cannot.
"""

from __future__ import annotations

import ipaddress
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from django.utils.crypto import salted_hmac

from bookings.models import RateCounter


def client_ip(request: HttpRequest) -> str:
    """The caller's address, as rate limits count callers. Behind NUM_PROXIES trusted
    proxies, from X-Forwarded-For. An IPv6 address counts as its /64 network: one home, phone
    or server is given a whole /64, and counted address by address, anyone could start a new
    count with each request. An IPv4 address written as IPv6 (::ffff:a.b.c.d) is that one."""
    address = request.META.get("REMOTE_ADDR", "") or "unknown"
    if settings.NUM_PROXIES:
        forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",") if p.strip()]
        if len(forwarded) >= settings.NUM_PROXIES:
            address = forwarded[-settings.NUM_PROXIES]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


def _count_in_database(key: str, period_start: int) -> int:
    table = connection.ops.quote_name(RateCounter._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, period_start, count) VALUES (%s, %s, 1) "  # noqa: S608 - table name is ours
            "ON CONFLICT (key) DO UPDATE SET "
            f"count = CASE WHEN {table}.period_start = excluded.period_start THEN {table}.count + 1 ELSE 1 END, "
            "period_start = excluded.period_start "
            "RETURNING count",
            [key, period_start],
        )
        return cursor.fetchone()[0]


def _count_in_redis(key: str, period_start: int, period: int) -> int:
    from django.core.cache import cache

    client = cache._cache.get_client(key, write=True)  # the redis-py client behind Django's backend
    redis_key = f"rl:{key}:{period_start}"
    pipe = client.pipeline()
    pipe.incr(redis_key)
    pipe.expire(redis_key, period + 5)
    return int(pipe.execute()[0])


def ratelimit_hit(*, scope: str, key: str) -> int | None:
    """Count one attempt for `key` in `scope`. None if allowed; else seconds until it is again.

    Limits come from settings.RATE_LIMITS[scope] = (attempts, seconds). Keys are stored as an
    HMAC keyed by SECRET_KEY: no email address or IP address is stored, nor a plain hash of
    one, which anyone holding the table could match against every IPv4 address or a list of
    addresses in minutes.
    """
    if not settings.RATELIMIT_ENABLED:
        return None
    limit, period = settings.RATE_LIMITS[scope]
    now = int(time.time())
    period_start = now - now % period
    digest = salted_hmac("mindsettler.ratelimit", f"{scope}:{key}", algorithm="sha256").hexdigest()[:40]
    counter_key = f"{scope[:30]}:{digest}"
    if settings.REDIS_URL:
        count = _count_in_redis(counter_key, period_start, period)
    else:
        count = _count_in_database(counter_key, period_start)
    if count > limit:
        return max(1, period_start + period - now)
    return None


def counters_prune(*, older_than_seconds: int = 86400) -> int:
    """Delete counters whose window ended long ago (run from retention)."""
    deleted, _ = RateCounter.objects.filter(period_start__lt=int(time.time()) - older_than_seconds).delete()
    return deleted
