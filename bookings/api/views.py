"""The chatbot API's views: read-only, token-authenticated, at most three SQL queries each.

No personal data ever leaves here: a booking answers with its status, the lifecycle's label
and next step, and its session time and mode, never with who booked it or why.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce, wraps
from operator import or_
from typing import Any

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt

from bookings.api import problems
from bookings.api.auth import api_call_authenticate, bearer_token
from bookings.api.openapi import CURSOR_PATTERN, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, openapi_document
from bookings.api.problems import ApiProblem, invalid_parameter
from bookings.lifecycle import CLIENT_LABELS, NEXT_STEPS
from bookings.models import Booking, Mode, SessionType
from bookings.selectors import day_bounds, session_types_bookable, slot_modes, slots_free
from bookings.services import ack_id_normalise
from bookings.templatetags.mindsettler import money

MAX_RANGE_DAYS = 31
DEFAULT_RANGE_DAYS = 14
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]*$")
_SLUG_MAX_LENGTH = 50
_CURSOR = re.compile(CURSOR_PATTERN)
_MAX_ID = 2**63 - 1  # a slot id is a bigint

View = Callable[..., HttpResponse]


def api_view(*, authenticate: bool = True) -> Callable[[View], View]:
    """GET only; with `authenticate`, a valid bearer token within its rate limit. Errors as problems."""

    def decorator(view: View) -> View:
        @csrf_exempt  # token-authenticated and read-only; no cookies are trusted here
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method != "GET":
                    raise problems.method_not_allowed(request.method or "")
                if authenticate:
                    _authenticate(request)
                response = view(request, *args, **kwargs)
            except ApiProblem as problem:
                response = problem.response()
            response.setdefault("Cache-Control", "no-store")
            return response

        return wrapper

    return decorator


def _authenticate(request: HttpRequest) -> None:
    raw = bearer_token(request)
    if raw is None:
        raise problems.unauthorized("Send an API token in the header 'Authorization: Bearer <token>'.", bad_token=False)
    call = api_call_authenticate(raw_token=raw)
    if call is None:
        raise problems.unauthorized("The API token is not valid or has been revoked.", bad_token=True)
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
    # Only the fields the answer shows are read: personal data never even leaves the database.
    # A plain row, not a Booking and its Slot, and no ORDER BY (ack_id is unique; the default
    # newest-first ordering only makes PostgreSQL plan longer): this costs less than first().
    rows = Booking.objects.filter(ack_id=ack_id).order_by()
    row = next(
        iter(rows.values_list("ack_id", "status", "mode", "updated_at", "slot_id", "slot__start", "slot__end")), None
    )
    if row is None:
        raise ApiProblem("booking-not-found", f"There is no booking {ack_id}. Check the acknowledgement ID.")
    return JsonResponse(_booking_json(*row))


@api_view()
def availability(request: HttpRequest) -> HttpResponse:
    first, last = _date_range(request.GET)
    session_type_slug = _slug_param(request.GET, "session_type")
    counsellor_slug = _slug_param(request.GET, "counsellor")
    limit = _limit_param(request.GET)
    after = _cursor_param(request.GET)

    session_types = list(session_types_bookable(counsellor_slug=counsellor_slug))
    chosen = None
    if session_type_slug:
        chosen = next((t for t in session_types if t.slug == session_type_slug), None)
        if chosen is None:
            raise invalid_parameter(
                "session_type", "no bookable session type has this slug; see /api/v1/session-types."
            )
    counsellor_id = None
    if counsellor_slug and session_types:
        counsellor_id = session_types[0].counsellor_pk
        if counsellor_id is None:
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
            params["counsellor"] = counsellor_slug
        params.update(limit=limit, cursor=_cursor(*page.last_read))
        next_url = f"{settings.SITE_URL}{reverse('api:availability')}?{urlencode(params)}"
    return JsonResponse(
        {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "time_zone": settings.TIME_ZONE,
            "booking_url_template": f"{settings.SITE_URL}{reverse('bookings:wizard')}?slot={{slot_id}}",
            "counsellors": page.counsellors,
            "session_types": [_session_type_json(t) for t in session_types if t.slug in page.session_types],
            "slots": page.slots,
            "next": next_url,
        }
    )


@api_view()
def session_types(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"session_types": [_session_type_json(t) for t in session_types_bookable()]})


@api_view(authenticate=False)
def openapi(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(openapi_document(), json_dumps_params={"indent": 2})
    response["Cache-Control"] = "public, max-age=300"
    return response


@api_view(authenticate=False)
def unknown_path(request: HttpRequest, path: str = "") -> HttpResponse:
    raise ApiProblem("not-found", "There is no such API endpoint. See /api/v1/openapi.json.")


# --- Parameters ---------------------------------------------------------------------------


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
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
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
        return moment, int(pk)
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise invalid_parameter("cursor", "must be the cursor from a previous answer's 'next' link.") from None


# --- Answers ------------------------------------------------------------------------------


def _moment(value: Any) -> str:
    """ISO 8601 in the clinic's time zone, with its offset: 2026-12-01T10:00:00+05:30."""
    return timezone.localtime(value).isoformat(timespec="seconds")


def _booking_json(
    ack_id: str, status: str, mode: str, updated_at: Any, slot_id: int | None, start: Any, end: Any
) -> dict[str, Any]:
    session = None
    if slot_id is not None:
        session = {"start": _moment(start), "end": _moment(end), "mode": mode}
    return {
        "acknowledgement_id": ack_id,
        "status": status,
        "status_label": str(CLIENT_LABELS[status]),
        "next_step": str(NEXT_STEPS[status]),
        "session": session,
        "updated_at": _moment(updated_at),
    }


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
    # Which session types fit is asked of the database once, by _fits_some, also for a single
    # type: slots_free(session_type=...) would only repeat its conditions.
    qs = slots_free(start=day_bounds(first)[0], end=day_bounds(last)[1])
    # Keyset paging: by start, then id, which never change, so following `next` neither
    # skips nor repeats a slot. One row more than the page says whether there is a next one.
    wanted = _fits_some(session_types)
    if counsellor_id is not None:
        wanted &= Q(counsellor_id=counsellor_id)
    if after is not None:
        wanted &= Q(start__gt=after[0]) | Q(start=after[0], pk__gt=after[1])
    # Plain rows, not model instances; what repeats is worked out once per page (below).
    rows = list(
        qs.filter(wanted).order_by("start", "pk").values_list(
            "pk", "start", "end", "counsellor__slug", "counsellor__display_name",
            "counsellor__offers_online", "counsellor__offers_in_person",
        )[: limit + 1]
    )  # fmt: skip
    if len(rows) > limit:
        rows = rows[:limit]
        page.last_read = (rows[-1][1], rows[-1][0])
    tz = timezone.get_current_timezone()
    seen: set[str] = set()
    # Which session types fit, and in which modes, depends only on the slot's length and the
    # modes its counsellor offers: slot_modes (the rule) is asked once per such combination.
    # (_fits_some only spared the database sending slots that fit nothing.)
    offers: dict[tuple[timedelta, bool, bool], tuple[list[str], list[str]] | None] = {}
    # Many slots of a page share their start and end: each moment is written once.
    moments: dict[datetime, str] = {}

    def moment(value: datetime) -> str:
        text = moments.get(value)
        if text is None:
            text = moments[value] = value.astimezone(tz).isoformat(timespec="seconds")
        return text

    for pk, start, end, c_slug, c_name, online, in_person in rows:
        key = (end - start, online, in_person)
        if key not in offers:
            offers[key] = _fits(*key, session_types)
            page.session_types.update(offers[key][0] if offers[key] else ())
        fit = offers[key]
        if fit is None:
            continue
        if c_slug not in seen:
            seen.add(c_slug)
            page.counsellors.append({"slug": c_slug, "display_name": c_name})
        page.slots.append(
            {
                "slot_id": pk,
                "start": moment(start),
                "end": moment(end),
                "counsellor": c_slug,
                "session_types": fit[0],
                "modes": fit[1],
            }
        )
    return page


def _fits_some(session_types: list[SessionType]) -> Q:
    """In SQL, the slots that can hold at least one of `session_types`: long enough, and in a
    mode that both the type and the slot's counsellor offer (slot_modes's rule). Among types
    offering the same modes, only the shortest matters."""
    shortest: dict[tuple[bool, bool], int] = {}
    for t in session_types:
        modes = (t.offers_online, t.offers_in_person)
        shortest[modes] = min(shortest.get(modes, t.duration_minutes), t.duration_minutes)
    fits = []
    for (online, in_person), minutes in shortest.items():
        offered = []  # a session type offers at least one mode (a database constraint)
        if online:
            offered.append(Q(counsellor__offers_online=True))
        if in_person:
            offered.append(Q(counsellor__offers_in_person=True))
        long_enough = ExpressionWrapper(F("start") + Value(timedelta(minutes=minutes)), output_field=DateTimeField())
        fits.append(Q(end__gte=long_enough) & reduce(or_, offered))
    return reduce(or_, fits)


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
