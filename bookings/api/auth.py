"""Bearer tokens for the chatbot API, and each API client's rate limit.

Tokens belong to named `ApiClient` rows; only their SHA-256 is stored, and the raw token is
shown once, by `manage.py api_token create NAME`.

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

from django.conf import settings
from django.db import connections, router, transaction
from django.http import HttpRequest
from django.utils import timezone

from bookings.models import ApiClient
from bookings.tokens import token_hash

# A prefix lets people and secret scanners recognise a leaked MindSettler API token.
TOKEN_PREFIX = "msapi_"  # noqa: S105 - a prefix, not a secret
_MAX_TOKEN_LENGTH = 200


class ApiClientExists(Exception):
    pass


def api_client_create(*, name: str) -> tuple[ApiClient, str]:
    """A new API client and its raw token. The token is not stored and cannot be shown again."""
    name = name.strip()
    if not name or len(name) > ApiClient._meta.get_field("name").max_length:
        raise ValueError("The name must be 1 to 100 characters.")
    if ApiClient.objects.filter(name=name).exists():
        raise ApiClientExists(f"An API client named {name!r} already exists; choose another name.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return ApiClient.objects.create(name=name, token_hash=token_hash(raw)), raw


def api_client_revoke(*, name: str) -> bool:
    """Revoke the client's token at once. False if it was already revoked; DoesNotExist if no such client."""
    with transaction.atomic():
        client = ApiClient.objects.select_for_update().get(name=name.strip())  # as api_client_create keeps it
        if client.revoked_at is not None:
            return False
        client.revoked_at = timezone.now()
        client.save(update_fields=["revoked_at"])
    return True


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
    """Authenticate and count one call. None if the token is unknown or revoked. One query."""
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
    # window starts the count again at 1.
    connection = connections[router.db_for_write(ApiClient)]
    table, count, win, used, hashed, revoked, pk = map(
        connection.ops.quote_name,
        (ApiClient._meta.db_table, "rate_count", "rate_window", "last_used_at", "token_hash", "revoked_at", "id"),
    )
    sql = f"UPDATE {table} SET {count} = CASE WHEN {win} = %s THEN {count} + 1 ELSE 1 END, {win} = %s, {used} = %s WHERE {hashed} = %s AND {revoked} IS NULL RETURNING {pk}, {count}"  # noqa: S608 - quoted identifiers only; values are parameters
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [window, window, stamp, token])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None
