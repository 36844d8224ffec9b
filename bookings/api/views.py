"""The chatbot API's views: read-only, token-authenticated, at most three SQL queries each.

No personal data ever leaves here: a booking answers with its status, the lifecycle's label
and next step, as the public status page does, never with who booked it or why, nor with
when or how the session takes place (an acknowledgement ID alone does not prove who asks).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, wraps
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt

from bookings.api import problems
from bookings.api.auth import api_call_authenticate, api_token_expired, bearer_token, token_moment
from bookings.api.openapi import CURSOR_PATTERN, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, openapi_document
from bookings.api.problems import ApiProblem, invalid_parameter
from bookings.lifecycle import CLIENT_LABELS, next_step
from bookings.models import Booking, Mode, SessionType, session_end_expression, session_has_ended
from bookings.selectors import (
    client_window,
    day_bounds,
    fits_q,
    session_types_bookable,
    shortest_by_mode,
    slot_modes,
    slots_free,
)
from bookings.services import ack_id_normalise
from bookings.templatetags.mindsettler import money
from mindsettler.compiled import PLACEHOLDER_TIME, CompiledQuery

MAX_RANGE_DAYS = 31
DEFAULT_RANGE_DAYS = 14
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]*$")
_SLUG_MAX_LENGTH = 50
_CURSOR = re.compile(CURSOR_PATTERN)
_MAX_ID = 2**63 - 1  # a slot id is a bigint

View = Callable[..., HttpResponse]


def api_view(*, authenticate: bool = True) -> Callable[[View], View]:
    """GET (and HEAD, its headers alone); with `authenticate`, a valid bearer token within its rate limit. Errors as problems."""

    def decorator(view: View) -> View:
        @csrf_exempt  # token-authenticated and read-only; no cookies are trusted here
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in ("GET", "HEAD"):
                    raise problems.method_not_allowed(request.method or "")
                if authenticate:
                    _authenticate(request)
                response = view(request, *args, **kwargs)
            except ApiProblem as problem:
                response = problem.response()
            response.setdefault("Cache-Control", "no-store")
            if authenticate:
                # The answer depends on who asks: a cache that ignores no-store must still key it
                # by the token, never hand it to another caller.
                patch_vary_headers(response, ["Authorization"])
            return response

        return wrapper

    return decorator


def _authenticate(request: HttpRequest) -> None:
    # RFC 6750's query parameter: refused even beside a good header, so that a token put in
    # URLs (which logs and proxies keep) is noticed at once.
    if "access_token" in request.GET:
        raise problems.unauthorized(
            "Never send the API token in the URL, where logs keep it: send it in the header "
            "'Authorization: Bearer <token>', and revoke a token that was sent in a URL.",
            bad_token=False,
        )
    raw = bearer_token(request)
    if raw is None:
        raise problems.unauthorized("Send an API token in the header 'Authorization: Bearer <token>'.", bad_token=False)
    call = api_call_authenticate(raw_token=raw)
    if call is None:
        # Why, when the token was a good one once: its operator then knows what to ask for.
        # (A second query, on this path only: a good token still costs one.)
        expired = api_token_expired(raw_token=raw)
        if expired is None:
            raise problems.unauthorized("The API token is not valid or has been revoked.", bad_token=True)
        when = token_moment(expired.expired_at)
        if expired.replaced:
            detail = (
                f"This token was replaced by a new one and stopped working on {when}; use the new token, "
                "or ask an administrator for it."
            )
        else:
            detail = f"This token expired on {when}; ask an administrator for a new one."
        raise problems.unauthorized(detail, bad_token=True)
    if call.retry_after is not None:
        raise problems.too_many_requests(call.retry_after)


# --- Endpoints --------------------------------------------------------------------------


@api_view()
def booking_status(request: HttpRequest, acknowledgement_id: str) -> HttpResponse:
    ack_id = ack_id_normalise(acknowledgement_id)
    if ack_id is None:
        raise invalid_parameter(
            "acknowledgement_id", "an acknowledgement ID looks like MS-XXXXXX: MS- and six letters or digits."
        )
    rows = _BOOKING_BY_ACK_ID(ack_id=ack_id)
    if not rows:
        raise ApiProblem("booking-not-found", f"There is no booking {ack_id}. Check the acknowledgement ID.")
    return JsonResponse(_booking_json(rows[0]))


# Only the fields the answer shows are read: personal data never even leaves the database.
# A plain row (with the session's end, for the next step), not a Booking and its Slot, and no
# ORDER BY (ack_id is unique; the default newest-first ordering only makes PostgreSQL plan
# longer).
_BOOKING_BY_ACK_ID = CompiledQuery(
    lambda ack_id: (
        Booking.objects.filter(ack_id=ack_id)
        .order_by()
        .values("ack_id", "status", "updated_at", "anonymised_at", session_end=session_end_expression())[:1]
    ),
    ack_id="MS-000000",
)


_AVAILABILITY_PARAMETERS = ("from", "to", "session_type", "counsellor", "limit", "cursor")


@api_view()
def availability(request: HttpRequest) -> HttpResponse:
    _known_parameters_once(request.GET, _AVAILABILITY_PARAMETERS)
    first, last = _date_range(request.GET)
    session_type_slug = _slug_param(request.GET, "session_type")
    counsellor_slug = _slug_param(request.GET, "counsellor")
    limit = _limit_param(request.GET)
    after = _cursor_param(request.GET)

    session_types, counsellor_id, counsellor = _session_types_bookable(counsellor_slug=counsellor_slug)
    chosen = None
    if session_type_slug:
        chosen = next((t for t in session_types if t.slug == session_type_slug), None)
        if chosen is None:
            raise invalid_parameter(
                "session_type", "no bookable session type has this slug; see /api/v1/session-types."
            )
    if counsellor_slug and session_types and counsellor_id is None:
        raise invalid_parameter("counsellor", "no counsellor taking bookings has this slug.")

    page = _FreeSlotsPage()
    if session_types:
        page = _free_slots_page(
            first=first,
            last=last,
            session_types=[chosen] if chosen else session_types,
            counsellor_id=counsellor_id,
            limit=limit,
            after=after,
        )
    next_url = None
    if page.last_read is not None:
        # The same question, from where this page stopped. The dates are written out, so a
        # client that follows the link after midnight still reads the range it asked about.
        params: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat()}
        if session_type_slug:
            params["session_type"] = session_type_slug
        if counsellor_slug:
            # By the counsellor's current slug, the one the answer names them by, if the call
            # gave one their profile had before.
            params["counsellor"] = counsellor["slug"] if counsellor else counsellor_slug
        params.update(limit=limit, cursor=_cursor(*page.last_read))
        next_url = f"{settings.SITE_URL}{reverse('api:availability')}?{urlencode(params)}"
    return JsonResponse(
        {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "time_zone": settings.TIME_ZONE,
            "booking_url_template": f"{settings.SITE_URL}{reverse('bookings:wizard')}?slot={{slot_id}}",
            # The counsellor asked about, even with no free time: the chatbot can say who is full.
            "counsellors": page.counsellors or ([counsellor] if counsellor else []),
            "session_types": [_session_type_json(t) for t in session_types if t.slug in page.session_types],
            "slots": page.slots,
            "next": next_url,
        }
    )


@api_view()
def session_types(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"session_types": [_session_type_json(t) for t in _session_types_bookable()[0]]})


@api_view(authenticate=False)
def openapi(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(openapi_document(), json_dumps_params={"indent": 2})
    response["Cache-Control"] = "public, max-age=300"
    return response


@api_view(authenticate=False)
def unknown_path(request: HttpRequest, path: str = "") -> HttpResponse:
    raise ApiProblem("not-found", "There is no such API endpoint. See /api/v1/openapi.json.")


# --- Parameters ---------------------------------------------------------------------------


def _known_parameters_once(query: QueryDict, known: tuple[str, ...]) -> None:
    """A misspelt filter would be ignored, and the answer read as filtered; of a repeated one,
    only the last would count. Both are refused."""
    for name in query:
        if name not in known:
            raise invalid_parameter(name, f"is not a parameter of this endpoint; they are: {', '.join(known)}.")
        if len(query.getlist(name)) > 1:
            raise invalid_parameter(name, "may be given only once.")


def _date_param(query: QueryDict, name: str) -> date | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid_parameter(name, "must be a date written YYYY-MM-DD.") from None


def _date_range(query: QueryDict) -> tuple[date, date]:
    """`from` and `to`, inclusive, in the clinic's calendar; by default the next two weeks."""
    first = _date_param(query, "from") or timezone.localdate()
    last = _date_param(query, "to")
    if last is None:
        try:
            last = first + timedelta(days=DEFAULT_RANGE_DAYS - 1)
        except OverflowError:  # from=9999-12-31 is a date, if not a useful one
            last = date.max
    if last < first:
        raise invalid_parameter("to", "must be the same day as 'from' or later.")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise invalid_parameter("to", f"the range may cover at most {MAX_RANGE_DAYS} days.")
    return first, last


def _slug_param(query: QueryDict, name: str) -> str:
    raw = query.get(name, "")
    if len(raw) > _SLUG_MAX_LENGTH or not _SLUG.match(raw):
        raise invalid_parameter(name, "must be a slug: letters, digits, hyphens and underscores.")
    return raw


def _limit_param(query: QueryDict) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    # The length first: int() refuses a string of thousands of digits with a ValueError.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise invalid_parameter("limit", f"must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    return int(raw)


# The cursor is the last slot a page read: its start and id, the order the slots are listed
# in. Base64 keeps it opaque (clients pass it back, they do not build it) and URL-safe. It
# needs no signature: it only says where to continue, and any position is public.


def _cursor(start: datetime, pk: int) -> str:
    raw = f"{start.astimezone(UTC).isoformat()}|{pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_param(query: QueryDict) -> tuple[datetime, int] | None:
    raw = query.get("cursor")
    if raw is None:
        return None
    try:
        if not _CURSOR.match(raw):
            raise ValueError
        start, _, pk = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().partition("|")
        moment = datetime.fromisoformat(start)
        if moment.utcoffset() is None or not (pk.isascii() and pk.isdigit()) or int(pk) > _MAX_ID:
            raise ValueError
        # In UTC here, where a moment at the very edge of datetime's range (year 1 with a
        # positive offset) fails as a bad cursor, not later in the query.
        return moment.astimezone(UTC), int(pk)
    except (ValueError, OverflowError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise invalid_parameter("cursor", "must be the cursor from a previous answer's 'next' link.") from None


# --- Answers ------------------------------------------------------------------------------


def _moment(value: Any) -> str:
    """ISO 8601 in the clinic's time zone, with its offset: 2026-12-01T10:00:00+05:30."""
    return timezone.localtime(value).isoformat(timespec="seconds")


def _booking_json(row: dict[str, Any]) -> dict[str, Any]:
    status = row["status"]
    return {
        "acknowledgement_id": row["ack_id"],
        "status": status,
        "status_label": str(CLIENT_LABELS[status]),
        "next_step": str(next_step(status, session_over=session_has_ended(row["session_end"]))),
        "updated_at": _moment(row["updated_at"]),
        # As /status/ says: the client's details are gone (at their request, or once the
        # retention period ended), and with them the booking page and its links. Still found:
        # "no such booking" would tell a client holding the right ID that they mistyped it.
        "details_erased": row["anonymised_at"] is not None,
    }


_SESSION_TYPE_FIELDS = (
    "slug", "name", "description", "duration_minutes", "price", "currency", "offers_online", "offers_in_person",
)  # fmt: skip

# The bookable session types and, in the same query, the id, current slug and name of the
# active counsellor a call names, by their slug or a former one (None if it names none, or one
# not taking bookings): an old slug costs no query more, within the budget of three.
_SESSION_TYPES_BOOKABLE = CompiledQuery(
    lambda counsellor_slug: session_types_bookable(counsellor_slug=counsellor_slug).values(
        *_SESSION_TYPE_FIELDS, "counsellor_pk", "counsellor_slug", "counsellor_display_name"
    ),
    counsellor_slug="placeholder",
)


def _session_types_bookable(
    *, counsellor_slug: str = ""
) -> tuple[list[SessionType], int | None, dict[str, str] | None]:
    """The session types clients can book, and the id of the counsellor `counsellor_slug`
    names (now, or before their link name changed) if they take bookings, with their current
    slug and name as the answer describes a counsellor: one query."""
    rows = _SESSION_TYPES_BOOKABLE(counsellor_slug=counsellor_slug)
    session_types = [SessionType(**{name: row[name] for name in _SESSION_TYPE_FIELDS}) for row in rows]
    if not (rows and counsellor_slug) or rows[0]["counsellor_pk"] is None:
        return session_types, None, None
    row = rows[0]
    return (
        session_types,
        row["counsellor_pk"],
        {"slug": row["counsellor_slug"], "display_name": row["counsellor_display_name"]},
    )


@dataclass
class _FreeSlotsPage:
    """One page of /availability: its slots, and the counsellors and session types they name."""

    slots: list[dict[str, Any]] = field(default_factory=list)
    counsellors: list[dict[str, str]] = field(default_factory=list)
    session_types: set[str] = field(default_factory=set)  # the slugs `slots` name
    last_read: tuple[datetime, int] | None = None  # where the next page starts; None: no more


def _free_slots_page(
    *,
    first: date,
    last: date,
    session_types: list[SessionType],
    counsellor_id: int | None,
    limit: int,
    after: tuple[datetime, int] | None,
) -> _FreeSlotsPage:
    page = _FreeSlotsPage()
    # Clip to the booking horizon before making datetimes: dates far from today are valid
    # input, but there is nothing to show there (and year 9999 would overflow).
    today = timezone.localdate()
    first = max(first, today)
    last = min(last, today + timedelta(days=settings.BOOKING_HORIZON_DAYS))
    if first > last:
        return page
    start, end = client_window(day_bounds(first)[0], day_bounds(last)[1])
    if start >= end:
        return page
    # Which slots can hold one of the session types depends only on the shortest of them in
    # each mode: the same lengths find the same compiled query.
    shortest = tuple(shortest_by_mode(session_types).items())
    values: dict[str, Any] = {"start": start, "end": end}
    if counsellor_id is not None:
        values["counsellor_id"] = counsellor_id
    if after is not None:
        values["after_start"], values["after_pk"] = after
    query = _free_slots_query(shortest, by_counsellor=counsellor_id is not None, after=after is not None, limit=limit)
    rows = query(**values)
    if len(rows) > limit:
        rows = rows[:limit]
        page.last_read = (rows[-1]["start"], rows[-1]["pk"])
    tz = timezone.get_current_timezone()
    seen: set[str] = set()
    # Which session types fit, and in which modes, depends only on the slot's length and the
    # modes its counsellor offers: slot_modes (the rule) is asked once per such combination.
    # (fits_q only spared the database sending slots that fit nothing.)
    offers: dict[tuple[timedelta, bool, bool], tuple[list[str], list[str]] | None] = {}
    # Many slots of a page share their start and end: each moment is written once.
    moments: dict[datetime, str] = {}

    def moment(value: datetime) -> str:
        text = moments.get(value)
        if text is None:
            text = moments[value] = value.astimezone(tz).isoformat(timespec="seconds")
        return text

    for row in rows:
        slot_start, slot_end, online, in_person = (
            row["start"], row["end"], row["counsellor__offers_online"], row["counsellor__offers_in_person"],
        )  # fmt: skip
        key = (slot_end - slot_start, online, in_person)
        if key not in offers:
            offers[key] = _fits(*key, session_types)
            page.session_types.update(offers[key][0] if offers[key] else ())
        fit = offers[key]
        if fit is None:
            continue
        c_slug = row["counsellor__slug"]
        if c_slug not in seen:
            seen.add(c_slug)
            page.counsellors.append({"slug": c_slug, "display_name": row["counsellor__display_name"]})
        page.slots.append(
            {
                "slot_id": row["pk"],
                "start": moment(slot_start),
                "end": moment(slot_end),
                "counsellor": c_slug,
                "session_types": fit[0],
                "modes": fit[1],
            }
        )
    return page


@lru_cache(maxsize=128)
def _free_slots_query(
    shortest: tuple[tuple[str, int], ...], *, by_counsellor: bool, after: bool, limit: int
) -> CompiledQuery:
    """The query for one shape of page: the slots free for clients between `start` and `end`
    (the client window: slots_free's own is not applied again, since it depends on the
    moment) that can hold a session type of these `shortest` lengths per mode, maybe of one
    counsellor, maybe after a cursor; `limit` and one more. Built and compiled once: that
    cost more than the database takes to answer it."""

    def build(
        start: datetime,
        end: datetime,
        counsellor_id: int | None = None,
        after_start: datetime | None = None,
        after_pk: int | None = None,
    ) -> Any:
        wanted = fits_q(dict(shortest))
        if by_counsellor:
            wanted &= Q(counsellor_id=counsellor_id)
        # Keyset paging: by start, then id, which never change, so following `next` neither
        # skips nor repeats a slot. One row more than the page says whether there is a next one.
        if after:
            wanted &= Q(start__gt=after_start) | Q(start=after_start, pk__gt=after_pk)
        return (
            slots_free(start=start, end=end, for_clients=False)
            .filter(wanted)
            .order_by("start", "pk")
            .values(
                "pk", "start", "end", "counsellor__slug", "counsellor__display_name",
                "counsellor__offers_online", "counsellor__offers_in_person",
            )[: limit + 1]
        )  # fmt: skip

    placeholders: dict[str, Any] = {"start": PLACEHOLDER_TIME, "end": PLACEHOLDER_TIME + timedelta(days=1)}
    if by_counsellor:
        placeholders["counsellor_id"] = -1
    if after:
        placeholders["after_start"], placeholders["after_pk"] = PLACEHOLDER_TIME + timedelta(days=2), -2
    return CompiledQuery(build, **placeholders)


def _fits(
    length: timedelta, offers_online: bool, offers_in_person: bool, session_types: list[SessionType]
) -> tuple[list[str], list[str]] | None:
    """The slugs of the session types a slot can hold and the modes it offers, or None. The
    slot: its length and the modes its counsellor offers."""
    fits = {
        t.slug: slot_modes(
            length=length, offers_online=offers_online, offers_in_person=offers_in_person, session_type=t
        )
        for t in session_types
    }
    fits = {slug: modes for slug, modes in fits.items() if modes}
    if not fits:
        return None
    offered = {mode for modes in fits.values() for mode in modes}
    return list(fits), [mode for mode in Mode.values if mode in offered]


def _session_type_json(session_type: SessionType) -> dict[str, Any]:
    return {
        "slug": session_type.slug,
        "name": session_type.name,
        "description": session_type.description,
        "duration_minutes": session_type.duration_minutes,
        "price": {
            "amount_minor": session_type.price,
            "currency": session_type.currency,
            "display": money(session_type.price, session_type.currency),
        },
        "modes": [str(mode) for mode in session_type.modes],
    }
