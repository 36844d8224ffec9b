"""Bearer tokens for the chatbot API, and each API client's rate limit.

Tokens belong to named `ApiClient` rows; only their SHA-256 is stored, and the raw token is
shown once, by `manage.py api_token create NAME` (or `rotate NAME`). A token works until its
`expires_at` (settings.API_TOKEN_DAYS by default); `rotate` gives a client a new one and
keeps the one it replaces working for a few days (`previous_token_hash`), so that the
chatbot can be redeployed without a gap.

One SQL statement per call authenticates the token, stamps `last_used_at` and counts the call
in the client's fixed rate-limit window (an UPDATE ... RETURNING on the client's row). Why not
the shared cache through `bookings.ratelimit.ratelimit_hit`: on the default database cache one
hit costs twelve queries (measured: `add` is a COUNT, a SELECT and an INSERT inside a
savepoint, `incr` is a get plus a set), four times the API's whole budget of three queries per
call, and its get-then-set increment loses counts under concurrent calls. The client's row
lives in the shared database, so the limit holds across app servers whatever the cache, and
the increment is atomic. The limit itself is still `settings.RATE_LIMITS["api"]`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from bookings import notifications
from bookings.models import ApiClient
from bookings.tokens import token_hash
from mindsettler.logging import one_of_a_batch

# A prefix lets people and secret scanners recognise a leaked MindSettler API token.
TOKEN_PREFIX = "msapi_"  # noqa: S105 - a prefix, not a secret
_MAX_TOKEN_LENGTH = 200
# How long the token a rotation replaces keeps working: time to redeploy the chatbot.
ROTATION_OVERLAP_DAYS = 7
# A token's life, and an overlap, in days: at most ten years (and no date overflows).
MAX_TOKEN_DAYS = 3650


class ApiClientExists(Exception):
    pass


class ApiClientRevoked(Exception):
    pass


def _token_days(days: int | None) -> int:
    days = settings.API_TOKEN_DAYS if days is None else days
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise ValueError(f"A token's life must be 1 to {MAX_TOKEN_DAYS} days.")
    return days


def api_client_create(*, name: str, days: int | None = None) -> tuple[ApiClient, str]:
    """A new API client and its raw token, working for `days` (settings.API_TOKEN_DAYS by
    default). The token is not stored and cannot be shown again."""
    name = name.strip()
    if not name or len(name) > ApiClient._meta.get_field("name").max_length:
        raise ValueError("The name must be 1 to 100 characters.")
    days = _token_days(days)
    if ApiClient.objects.filter(name=name).exists():
        raise ApiClientExists(f"An API client named {name!r} already exists; choose another name.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient.objects.create(
        name=name, token_hash=token_hash(raw), expires_at=timezone.now() + timedelta(days=days)
    )
    return client, raw


def api_client_rotate(
    *, name: str, days: int | None = None, overlap_days: int = ROTATION_OVERLAP_DAYS
) -> tuple[ApiClient, str]:
    """Give the client a new token, working for `days`, and keep its current one working for
    `overlap_days` more (never past its own expiry), so that the chatbot can be redeployed
    with the new one without a gap. A token an earlier rotation replaced stops at once: a
    client has at most two. DoesNotExist if no such client; ApiClientRevoked if revoked."""
    days = _token_days(days)
    if not 0 <= overlap_days <= MAX_TOKEN_DAYS:
        raise ValueError(f"The overlap must be 0 to {MAX_TOKEN_DAYS} days.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        client = ApiClient.objects.select_for_update().get(name=name.strip())  # as api_client_create keeps it
        if client.revoked_at is not None:
            # Revoked is for good (the token leaked, or the chatbot is gone): a new client
            # under a new name is a deliberate act, not a side effect of a rotation.
            raise ApiClientRevoked(
                f"The API client {client.name!r} is revoked; create a new one with `api_token create NAME`."
            )
        now = timezone.now()
        client.previous_token_hash = client.token_hash
        client.previous_expires_at = min(client.expires_at, now + timedelta(days=overlap_days))
        client.token_hash = token_hash(raw)
        client.expires_at = now + timedelta(days=days)
        client.expiry_warned_at = None  # the new token is warned about in its turn
        client.save(
            update_fields=["previous_token_hash", "previous_expires_at", "token_hash", "expires_at", "expiry_warned_at"]
        )
    return client, raw


def api_client_revoke(*, name: str) -> bool:
    """Revoke the client's token at once. False if it was already revoked; DoesNotExist if no such client."""
    with transaction.atomic():
        client = ApiClient.objects.select_for_update().get(name=name.strip())  # as api_client_create keeps it
        if client.revoked_at is not None:
            return False
        client.revoked_at = timezone.now()
        client.save(update_fields=["revoked_at"])
    return True


def token_moment(moment: datetime) -> str:
    """A token's dates as the operator reads them, in `api_token list` and the API's 401s:
    2027-03-01 10:00 IST."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def bearer_token(request: HttpRequest) -> str | None:
    """The token from `Authorization: Bearer <token>`, or None if the header is absent or not Bearer."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


@dataclass(frozen=True)
class ApiCall:
    client_id: int
    retry_after: int | None  # None: within the limit; else seconds until the next window


def api_call_authenticate(*, raw_token: str) -> ApiCall | None:
    """Authenticate and count one call. None if the token is unknown, expired or revoked. One query."""
    if not raw_token or len(raw_token) > _MAX_TOKEN_LENGTH:
        return None
    limit, period = settings.RATE_LIMITS["api"]
    now = time.time()
    window = int(now) // period
    row = _count_call(token=token_hash(raw_token), window=window)
    if row is None:
        return None
    client_id, count = row
    retry_after = None
    if settings.RATELIMIT_ENABLED and count > limit:
        retry_after = max(1, (window + 1) * period - int(now))
    return ApiCall(client_id=client_id, retry_after=retry_after)


def _count_call(*, token: str, window: int) -> tuple[int, int] | None:
    # Raw SQL because the ORM's update() cannot return the new count; RETURNING works on
    # PostgreSQL and on SQLite 3.35+. The CASE reads the row's old values, so a call in a new
    # window starts the count again at 1. The token is the client's current one or, during a
    # rotation's overlap, the one it replaced: one row either way, so one count per client.
    connection = connections[router.db_for_write(ApiClient)]
    table, count, win, used, hashed, expires, previous, previous_expires, revoked, pk = map(
        connection.ops.quote_name,
        (
            ApiClient._meta.db_table, "rate_count", "rate_window", "last_used_at", "token_hash", "expires_at",
            "previous_token_hash", "previous_expires_at", "revoked_at", "id",
        ),
    )  # fmt: skip
    sql = f"UPDATE {table} SET {count} = CASE WHEN {win} = %s THEN {count} + 1 ELSE 1 END, {win} = %s, {used} = %s WHERE (({hashed} = %s AND {expires} > %s) OR ({previous} = %s AND {previous_expires} > %s)) AND {revoked} IS NULL RETURNING {pk}, {count}"  # noqa: S608 - quoted identifiers only; values are parameters
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [window, window, stamp, token, stamp, token, stamp])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class TokenExpired:
    expired_at: datetime
    replaced: bool  # a token that a rotation replaced, whose overlap is over


def api_token_expired(*, raw_token: str) -> TokenExpired | None:
    """Whether a refused token is one of a live client that has expired, and when: asked only
    once api_call_authenticate has refused it, so that the chatbot's operator reads why (a
    second query, on that path only). None for a token unknown or revoked."""
    if not raw_token or len(raw_token) > _MAX_TOKEN_LENGTH:
        return None
    hashed = token_hash(raw_token)
    client = (
        ApiClient.objects.filter(Q(token_hash=hashed) | Q(previous_token_hash=hashed), revoked_at__isnull=True)
        .only("token_hash", "expires_at", "previous_expires_at")
        .first()
    )
    if client is None:
        return None
    now = timezone.now()
    if client.token_hash == hashed:
        return TokenExpired(client.expires_at, replaced=False) if client.expires_at <= now else None
    ended = client.previous_expires_at
    return TokenExpired(ended, replaced=True) if ended is not None and ended <= now else None


def api_token_warnings_send(*, now: datetime | None = None) -> int:
    """Email the administrators about each live token with API_TOKEN_WARNING_DAYS or fewer
    left, once per token (a rotation's new token is warned about in its turn), so that it is
    rotated before the chatbot stops. Run daily. Returns how many tokens were warned about."""
    now = now or timezone.now()
    recipients = notifications.administrator_emails()
    if not recipients:
        return 0  # nobody to tell yet: the next run tries again
    due = ApiClient.objects.filter(
        revoked_at__isnull=True,
        expiry_warned_at__isnull=True,
        expires_at__lte=now + timedelta(days=settings.API_TOKEN_WARNING_DAYS),
    ).order_by("expires_at")
    warned = 0
    for client in due:
        with one_of_a_batch("API token warning for client", client.pk):
            warned += _api_token_warning_send(client=client, now=now, recipients=recipients)
    return warned


def _api_token_warning_send(*, client: ApiClient, now: datetime, recipients: list[str]) -> bool:
    with transaction.atomic():
        # Claimed by compare-and-swap, so that two runs at once send it once; and only while
        # the token is the one read (a rotation meanwhile has a new one, not yet due).
        if not ApiClient.objects.filter(
            pk=client.pk, expiry_warned_at__isnull=True, expires_at=client.expires_at, revoked_at__isnull=True
        ).update(expiry_warned_at=now):
            return False
        for email in recipients:
            notifications.api_token_expiring(client=client, to=email, now=now)
    return True
