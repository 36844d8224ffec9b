"""The staff portal. Views parse requests, check permissions (staff.permissions), call
bookings.services, and render; they hold no booking rules."""

from __future__ import annotations

import copy
import csv
import html
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache, wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError
from django.db.models import Max, Min, Prefetch, Q, QuerySet
from django.forms import BoundField
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, get_conditional_response, patch_vary_headers, set_response_etag
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeData, SafeString, mark_safe
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from bookings import selectors as bookings_selectors
from bookings import services
from bookings.clinic_time import zone_abbreviations
from bookings.emails import STAFF_EMAIL_KINDS
from bookings.errors import (
    BookingError,
    PolicyVersionChanged,
    SessionTypeChanged,
    SettingRefused,
    SlotsHeld,
    SlotUnavailable,
    StaleBooking,
    TokenInvalid,
    TooLate,
)
from bookings.forms import id_from
from bookings.lifecycle import FINAL_STATUSES, allowed_targets
from bookings.models import (
    ACTIVE_STATUSES,
    SLOT_HOLDING_STATUSES,
    Actor,
    BlockedPeriod,
    Booking,
    BookingEvent,
    BookingView,
    Clinic,
    Counsellor,
    Mode,
    OutboundEmail,
    Payment,
    SessionType,
    Slot,
    Status,
    WeeklyHours,
)
from bookings.selectors import counsellor_at_work, staff_moment
from bookings.templatetags.mindsettler import day_words, money
from bookings.templatetags.mindsettler import phone as phone_shown  # the filter, for a form's initial value
from bookings.tokens import token_lookup_hash
from mindsettler.forms import select_html
from staff import calendar_subscription, selectors
from staff.forms import (
    CALENDAR_STOPPED,
    ApproveForm,
    BlockedPeriodForm,
    BookingFilterForm,
    CancelForm,
    ClinicForm,
    ClinicPaymentForm,
    ConfirmForm,
    CounsellorProfileForm,
    CounsellorRoomForm,
    EmailCorrectForm,
    GenerateForm,
    InviteForm,
    MeetingUrlForm,
    MoveForm,
    NoShowForm,
    PaymentSettleForm,
    PublishRangeForm,
    RejectForm,
    ReportMonthForm,
    SessionTypeForm,
    SlotForm,
    StaffBookingForm,
    VersionForm,
    WeeklyHoursForm,
)
from staff.models import User
from staff.permissions import (
    admin_required,
    booking_or_404,
    bookings_for,
    can_edit_amount,
    can_read_client_words,
    counsellor_or_404,
    counsellors_for,
    is_administrator,
    slots_for,
    staff_required,
)
from staff.services import (
    InvitationError,
    StaffAccountError,
    calendar_subscription_create,
    calendar_subscription_read,
    calendar_subscription_stop,
    counsellor_profile_add,
    staff_deactivate,
    staff_invite,
    staff_reactivate,
    staff_reinvite,
    staff_second_factor_reset,
)
from staff.templatetags.staff_tags import status_badge, widget_attrs

BOOKING_CHANGED = "bookingChanged"


# --- Dashboard ----------------------------------------------------------------------------


@require_safe
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    own = selectors.own_counsellor(request.user)
    data = selectors.dashboard(user=request.user, own=own)
    data.update(_outcomes(request))
    data["emails_given_up"] = selectors.emails_given_up(user=request.user)
    data["emails_sendable"] = sum(m["can_send_again"] for m in data["emails_given_up"])
    data["emails_waiting"] = selectors.emails_waiting(user=request.user)
    data["email_give_up_hours"] = int(settings.EMAIL_GIVE_UP_AFTER.total_seconds() // 3600)
    data["payments_attention"], data["payments_attention_count"] = selectors.payments_needing_attention(
        user=request.user
    )
    data["online_without_link"] = selectors.online_without_link(user=request.user)
    data.update(selectors.counsellor_left(user=request.user))
    data.update(selectors.sessions_to_record(user=request.user))
    data.update(selectors.bookable_notices(user=request.user, own=own))
    return render(request, "staff/dashboard.html", {**data, "now": timezone.now(), "nav": "dashboard"})


def _outcomes(request: HttpRequest) -> dict[str, Any]:
    """The dashboard's sessions by counsellor: one month at a time (`?month=2026-10`; this month
    by default), each counsellor a row, so a clinic of fifty counsellors reads one screen."""
    this_month = timezone.localdate().replace(day=1)
    raw = request.GET.get("month", "")
    month, problem = this_month, ""
    if raw:
        try:
            month = datetime.strptime(raw, "%Y-%m").date()
        except ValueError:
            problem = f"“{raw[:20]}” is not a month (write it as {this_month:%Y-%m}); showing {this_month:%B %Y}."
        else:
            if month > this_month:
                problem = f"{month:%B %Y} has not come yet; showing {this_month:%B %Y}."
                month = this_month
            elif month.year < 2000:
                problem = f"{month:%B %Y} is before any booking; showing {this_month:%B %Y}."
                month = this_month
    rows = selectors.outcomes_in_month(user=request.user, month=month)
    totals = {key: sum(row[key] for row in rows) for key in ("held", "cancelled", "late", "no_shows")}
    earlier = (month - timedelta(days=1)).replace(day=1)
    later = selectors.month_after(month)
    return {
        "outcomes": rows,
        "outcomes_totals": totals if len(rows) > 1 else None,
        "outcomes_month": month,
        "outcomes_problem": problem,
        "outcomes_earlier": earlier if earlier.year >= 2000 else None,
        "outcomes_later": later if later <= this_month else None,
    }


# --- Calendar ---------------------------------------------------------------------------


@require_safe
@staff_required
def calendar(request: HttpRequest) -> HttpResponse:
    # Everyone at work, shown to clients or not: a counsellor whose profile is still hidden
    # publishes times too (staff book them).
    counsellors = list(selectors.counsellors_at_work(request.user))
    # Their own sessions in their own calendar app: for those with a counsellor profile.
    own = next((c for c in counsellors if c.user_id == request.user.pk), None)
    return render(
        request,
        "staff/calendar.html",
        {
            "counsellors": counsellors,
            "own_counsellor": own,
            "subscription": selectors.calendar_subscription_of(request.user) if own else None,
            "is_admin": is_administrator(request.user),
            "publish_form": PublishRangeForm(counsellors=counsellors_for(request.user)),
            # The calendar shows the clinic's times whatever the browser's zone (calendar.js).
            "time_zone": timezone.get_current_timezone_name(),
            "time_zone_abbreviation": zone_abbreviations(),  # of every date the calendar shows
            "time_zone_name": settings.TIME_ZONE_NAME,
            "nav": "calendar",
        },
    )


def _form_address(to: str, *names: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A form's address: only a POST acts there. A refused form shows its page at that
    address; opened again from the address bar (a GET), it goes back to the page `to` (a URL
    name, given the view's arguments `names`) rather than answering an empty 405."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method in ("GET", "HEAD"):
                return redirect(to, *(kwargs[name] for name in names))
            if request.method != "POST":
                return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


# --- The counsellor's calendar subscription (staff.calendar_subscription) ----------------


def _own_counsellor_or_404(request: HttpRequest) -> Counsellor:
    """The member's own counsellor profile: only a counsellor has sessions to subscribe to."""
    own = selectors.own_counsellor(request.user)
    if own is None:
        raise Http404("No counsellor profile.")
    return own


@_form_address("staff:calendar")
@staff_required
def calendar_app_new(request: HttpRequest) -> HttpResponse:
    """Make the member's calendar address (replacing any earlier one) and show it, this once:
    only its hash is kept, so the page that shows it is this POST's answer, never a GET's."""
    _own_counsellor_or_404(request)
    replaced = selectors.calendar_subscription_of(request.user) is not None
    try:
        url = calendar_subscription_create(user=request.user)
    except StaffAccountError as exc:
        messages.error(request, exc.message)
        return redirect(f"{reverse('staff:calendar')}#calendar-app")
    return render(
        request,
        "staff/calendar_subscription_new.html",
        {"feed_url": url, "replaced": replaced, "nav": "calendar"},
    )


@_form_address("staff:calendar")
@staff_required
def calendar_app_stop(request: HttpRequest) -> HttpResponse:
    _own_counsellor_or_404(request)
    stopped = calendar_subscription_stop(user=request.user)
    messages.success(request, CALENDAR_STOPPED if stopped else "You had no calendar subscription.")
    return redirect(f"{reverse('staff:calendar')}#calendar-app")


def _feed_gone() -> HttpResponse:
    """The one answer for every address that shows nothing: unknown, replaced, stopped, of a
    deactivated member or of one without a counsellor profile. No page, no hint of which."""
    response = HttpResponseNotFound(b"Not found.\n", content_type="text/plain; charset=utf-8")
    add_never_cache_headers(response)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# Calendar apps poll; one that asks again within five minutes gets its own copy. `private`:
# never a shared cache (the address is the credential, and the answer is the member's).
FEED_CACHE_CONTROL = "private, max-age=300"


@require_safe
def calendar_app_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The member's sessions as an iCalendar feed, for their calendar app. Outside sign-in:
    the secret in the address is the credential. Three queries at most: the subscription
    with its member and the clinic's address, the sessions, and, at most once an hour, when
    it was last read."""
    try:
        hashed = token_lookup_hash(token)
    except TokenInvalid:
        return _feed_gone()
    owner = selectors.calendar_feed_owner(token_hash=hashed)
    if owner is None:
        return _feed_gone()
    now = timezone.now()
    sessions = selectors.calendar_feed_sessions(counsellor_id=owner["counsellor_id"], now=now)
    body = calendar_subscription.sessions_ics(sessions=sessions, address=owner["address"] or "")
    calendar_subscription_read(subscription_id=owner["pk"], last_read_at=owner["last_read_at"], now=now)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = FEED_CACHE_CONTROL
    response["X-Robots-Tag"] = "noindex, nofollow"
    # The same sessions give the same bytes (calendar_subscription.sessions_ics): an app that
    # sends the ETag back gets 304 and no body.
    set_response_etag(response)
    return get_conditional_response(request, etag=response["ETag"], response=response)


def _parse_moment(text: str) -> datetime | None:
    """A moment FullCalendar sent (ISO 8601, with an offset, Z, or none: the clinic's time), in
    UTC; None if it is not one: malformed, impossible (30 February, an offset of 99 hours),
    or at the very edge of datetime's range. A "+" in a query string arrives as a space."""
    try:
        moment = parse_datetime(text.replace(" ", "+"))
        if moment is None:
            return None
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, timezone.get_current_timezone())
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _parse_range(request: HttpRequest) -> tuple[datetime, datetime] | None:
    """FullCalendar's start/end (see _parse_moment), at most ~6 weeks apart."""
    start, end = _parse_moment(request.GET.get("start", "")), _parse_moment(request.GET.get("end", ""))
    if start is None or end is None or end <= start or end - start > timedelta(days=45):
        return None
    return start, end


def _safe_json(data: Any, status: int = 200) -> HttpResponse:
    """Compact JSON with <, > and & escaped, so no client-written text can ever read as markup."""
    return _json_response(json.dumps(data, default=str, separators=(",", ":")), status=status)


def _json_response(body: str, status: int = 200) -> HttpResponse:
    """`body`, JSON, with <, > and & escaped (in JSON strings, the only place they can be)."""
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return HttpResponse(body, status=status, content_type="application/json")


# The Month view of every counsellor (static/js/calendar.js asks with summary=month): a day of
# a clinic of fifty counsellors has hundreds of sessions, of which a Month cell shows four,
# and every one of them made a feed of megabytes, slow to fetch and to draw. Each day comes
# as its totals instead, and the Day view, a click away, has its sessions and free time.
# Longer than any Week view, even one across a change of clocks.
SUMMARY_AFTER = timedelta(days=8)


def _day_totals(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All-day events for each day of selectors.calendar_day_totals' `days`: its sessions
    (with how many of each status), its free slots (and of how many counsellors) and its
    cancelled bookings, in that order (`rank`), each only if there are any; each `summary`
    starts with its title (static/js/calendar.js reads out the rest). Counts only: no
    acknowledgement ID, no name."""

    def plural(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    held = [(status, label) for status, label in Status.choices if status in SLOT_HOLDING_STATUSES]
    events = []
    for day in days:
        totals = []
        if sessions := [(day[status], label) for status, label in held if day[status]]:
            title = plural(sum(count for count, _ in sessions), "session")
            parts = ", ".join(f"{count} {label.lower()}" for count, label in sessions)
            totals.append((title, f"{title}: {parts}", "ms-day-sessions"))
        if count := day["free"]:
            title = plural(count, "free slot")
            totals.append((title, f"{title}, of {plural(day['free_counsellors'], 'counsellor')}", "ms-day-free"))
        if count := day["cancelled"]:
            totals.append((f"{count} cancelled", plural(count, "cancelled booking"), "ms-day-cancelled"))
        events.extend(
            {
                "title": title,
                "start": day["day"].isoformat(),
                "allDay": True,
                "classNames": ["ms-day", kind],
                "extendedProps": {"rank": rank, "summary": summary},
            }
            for rank, (title, summary, kind) in enumerate(totals, start=1)
        )
    return events


@require_safe
@staff_required
def calendar_feed(request: HttpRequest) -> HttpResponse:
    """Events for FullCalendar, with only what static/js/calendar.js uses: booked and cancelled
    sessions (acknowledgement ID and the client's initials, never their name or words) and
    free slots as background events; or, with summary=month, for every counsellor over more
    than a week, each day's totals (_day_totals). One query for the rows, or for the totals."""
    bounds = _parse_range(request)
    if bounds is None:
        return _safe_json({"error": "Give start and end, at most 45 days apart."}, status=400)
    counsellor_id = id_from(request.GET.get("counsellor", ""))
    if request.GET.get("summary") == "month" and not counsellor_id and bounds[1] - bounds[0] > SUMMARY_AFTER:
        return _safe_json(_day_totals(selectors.calendar_day_totals(user=request.user, start=bounds[0], end=bounds[1])))
    rows = selectors.calendar_rows(user=request.user, start=bounds[0], end=bounds[1], counsellor_id=counsellor_id)
    # The events are written as JSON text, the same JSON that json.dumps() wrote of them as
    # dicts, in half the time (a month is hundreds of events). Every text read from the
    # database is written by json.dumps() (and its <, > and & escaped with the whole body);
    # the times are CalendarTime's (digits, "-", ":", "T" and "Z"), the ids numbers.
    text = json.dumps
    detail = text(reverse("staff:booking_detail", args=[0])[:-2])[1:-1]  # "/staff/bookings/"
    labels = {status: text(str(label)) for status, label in Status.choices}  # translated once, not per event
    looks: dict[tuple[str, str], str] = {}  # an event's colour, status and counsellor, by status and counsellor
    now = timezone.now().strftime(selectors.CALENDAR_TIME_FORMAT)  # compared as text, as the rows give times
    cancelled, movable, initials = Status.CANCELLED, services.RESCHEDULABLE_BY_STAFF, selectors.initials
    events: list[str] = []
    free: dict[int, tuple[str, str]] = {}  # by slot: free unless a row shows a booking holding it
    held: set[int] = set()
    for slot_id, start, end, session_end, counsellor, blocked, booking_id, ack_id, client_name, status, version in rows:
        if status is None or status == cancelled:
            if not blocked:  # free slots inside a blocked period are not offered
                free[slot_id] = (start, end)
            if booking_id is None:
                continue
        else:
            held.add(slot_id)
        look = looks.get((status, counsellor))
        if look is None:
            # The status and counsellor are read out to screen readers and shown on hover.
            colour = text(selectors.STATUS_COLOURS.get(status, "#57534e"))
            look = f'"color":{colour},"extendedProps":{{"status":{labels[status]},"counsellor":{text(counsellor)}'
            looks[status, counsellor] = look
        title = text(f"{ack_id} · {initials(client_name)}")
        # The url opens the booking in the side panel. A session ends when its time is over
        # (start plus its type's length), which may be before its slot, held whole, ends.
        event = f'{{"title":{title},"start":"{start}","end":"{session_end}","url":"{detail}{int(booking_id)}/",{look}'
        if status == cancelled:
            events.append(f'{event}}},"classNames":["ms-cancelled"]}}')
        elif status in movable and start > now:
            # Future sessions that can move are draggable onto another free slot (see booking_drop).
            drop = f'"version":{int(version)},"dropUrl":"{detail}{int(booking_id)}/drop/"'
            events.append(f'{event},{drop}}},"startEditable":true}}')
        else:
            events.append(f"{event}}}}}")
    # Free time is only shaded: overlapping and touching slots (every counsellor's, when the
    # calendar shows them all) make one background event, which looks the same. A week of
    # fifty counsellors has thousands of slots; the shading takes a few dozen.
    shaded: list[list[str]] = []
    for start, end in sorted(times for slot_id, times in free.items() if slot_id not in held):
        if shaded and start <= shaded[-1][1]:  # the times are UTC text of one format: ordered as text
            shaded[-1][1] = max(shaded[-1][1], end)
        else:
            shaded.append([start, end])
    events.extend(f'{{"start":"{start}","end":"{end}","display":"background"}}' for start, end in shaded)
    return _json_response(f"[{','.join(events)}]")


@require_POST
@staff_required
def calendar_publish(request: HttpRequest) -> HttpResponse:
    """Publish free slots in a range selected on the calendar (JSON in, JSON out)."""
    form = PublishRangeForm(request.POST, counsellors=counsellors_for(request.user))
    if not form.is_valid():
        message = " ".join(str(e) for errors in form.errors.values() for e in errors)
        return _safe_json({"ok": False, "message": message or "Check the details and try again."}, status=400)
    data = form.cleaned_data
    try:
        created, skipped = services.slots_publish(
            counsellor=data["counsellor"],
            start=data["start"],
            end=data["end"],
            session_minutes=data["session_minutes"],
            buffer_minutes=data["buffer_minutes"],
        )
    except BookingError as exc:
        return _safe_json({"ok": False, "message": exc.message}, status=409)
    message = f"Published {len(created)} free slot{'s' if len(created) != 1 else ''} for {data['counsellor']}."
    if skipped:
        message += f" Skipped {skipped} (in the past, blocked, or overlapping existing slots)."
    if created:
        # As the availability page says it: calendar.js shows the message as it comes.
        message += _too_short_said(
            data["counsellor"], data["session_minutes"], what="it" if len(created) == 1 else "them"
        )
    response = _safe_json({"ok": True, "created": len(created), "skipped": skipped, "message": message})
    response["HX-Trigger"] = BOOKING_CHANGED
    return response


# --- Booking list -------------------------------------------------------------------------


def _filter_form(request: HttpRequest) -> BookingFilterForm:
    session_types, counsellors = selectors.list_filter_choices(counsellors=is_administrator(request.user))
    return BookingFilterForm(request.GET or None, counsellors=counsellors, session_types=session_types)


def _fields_to_resend(request: HttpRequest, form: BookingFilterForm) -> list[BoundField]:
    """The filter fields an htmx request re-sends with the results (out of band), so their
    errors show and go as on a whole page: those with an error now, and those that showed one
    on the page the request came from. That page's address holds the filters last applied
    (htmx pushes each), so its errors are its query's. Mostly none: what was chosen is on the
    page already."""
    names = set(form.errors)
    query = urlsplit(request.htmx.current_url or "").query
    if query:
        # The same fields, choices included: no second read of the counsellors and types.
        shown = BookingFilterForm(QueryDict(query), counsellors=[], session_types=[])
        shown.fields = form.fields
        names.update(shown.errors)
    return [form[name] for name in form.fields if name in names]


# The filter form's fields, written here rather than by an include of staff/_field.html per
# field: the same markup (staff/tests/test_list.py compares the two) without ~100 template
# nodes per request. f-strings: str.format() and format_html() took several times as long.
_OOB = ' hx-swap-oob="true"'


def _field_html(field: BoundField, *, oob: bool = False) -> SafeString:
    """staff/_field.html for a field with a plain input or select; radios, checkboxes and
    hidden fields go through the template. `oob`: marked for htmx to swap in by its id
    (hx-swap-oob), wherever it comes in an answer."""
    if field.is_hidden or field.widget_type in ("radioselect", "checkboxselectmultiple", "checkbox"):
        return render_to_string("staff/_field.html", {"field": field})
    auto_id = _text(field.auto_id)
    hint = error = ""
    if field.help_text:
        hint = f'<span class="field-hint" id="{auto_id}-hint">{_text(field.help_text)}</span>\n'
    if errors := field.errors:
        texts = "".join(f"{_text(e)} " for e in errors)
        error = f'<span class="field-error" id="{auto_id}-error">{texts}</span>\n'
    # Every filter is optional: saying so on each would be noise.
    label = f'<label class="field-label" for="{_text(field.id_for_label)}">{_text(field.label)}</label>'
    return mark_safe(  # noqa: S308 (every value escaped by _text)
        f'<div class="mb-4" id="{auto_id}-group"{_OOB if oob else ""}>\n{label}\n{hint}{error}{_widget_html(field)}\n</div>'
    )


def _widget_html(field: BoundField) -> SafeString:
    """staff_tags' {% widget field %}: field.as_widget() with our attributes, a plain select
    (the filter's counsellors) written straight from the field (mindsettler.forms.select_html)."""
    attrs = widget_attrs(field)
    return select_html(field, attrs) or field.as_widget(attrs=attrs)


def _text(value: Any) -> str:
    """conditional_escape() for the values of the filter and the rows: stored text escaped,
    markup built here (SafeData) kept."""
    return value if isinstance(value, SafeData) else html.escape(str(value))


def _list_rows(rows: list[dict[str, Any]]) -> SafeString:
    """The list's table rows, written here rather than by the template: a page of rows cost
    a few hundred template nodes (and a model instance and two choice lookups per row) for
    the same markup. Every value is escaped: the stored ones per row, the labels and the
    link once a page."""
    escape = html.escape  # Django's escape(), without its lazy-string checks
    statuses, modes = dict(Status.choices), dict(Mode.choices)

    # Labels translated and escaped once a page, when a row first shows them.
    @cache
    def status_label(status: str) -> str:
        return escape(str(statuses.get(status, status)))

    @cache
    def mode_label(mode: str) -> str:
        return escape(str(modes.get(mode, mode)))

    # The detail URL of booking 0, split around the id: one reverse() for the whole page.
    head, tail = map(escape, reverse("staff:booking_detail", args=[0]).rsplit("/0/", 1))
    tz = timezone.get_current_timezone()

    days: dict[date, str] = {}

    def short(value: datetime) -> str:
        """bookings' when_short ('Thu 26 Nov, 10:50 IST') as HTML writes it, escaped; the zone and
        each day's words looked up once a page, the time written as numbers (strftime() took four
        times as long)."""
        local = value.astimezone(tz)
        if (words := days.get(day := local.date())) is None:
            words = days[day] = day_words(day, "D j M")
        return escape(f"{words}, {local.hour:02d}:{local.minute:02d}\N{NO-BREAK SPACE}{local.tzname()}")

    def session_span(start: datetime, minutes: int) -> str:
        """bookings' span filter ('Thu 26 Nov, 10:00 to 10:50 IST', with an en dash for 'to'):
        the session from its start to its type's length, the zone named once, or each time's
        own across a change of clocks."""
        begun = short(start)
        last = (start + timedelta(minutes=minutes)).astimezone(tz)
        zone = last.tzname()
        if start.astimezone(tz).tzname() == zone:
            begun = begun.removesuffix(f"\N{NO-BREAK SPACE}{escape(zone)}")
        day, _, begun = begun.partition(", ")
        # On a phone the day and the times each keep to one line, the line breaking between
        # them; the zone stays with the times (a no-break space), never alone on a line.
        times = f"{begun}\N{EN DASH}{last.hour:02d}:{last.minute:02d}"
        return f'<span class="whitespace-nowrap">{day},</span> <span class="whitespace-nowrap">{times}</span>\N{NO-BREAK SPACE}{escape(zone)}'

    out = []
    for b in rows:
        length = b["session_type__duration_minutes"]
        if b["slot__start"]:
            session = session_span(b["slot__start"], length)
        elif b["session_at"]:
            session = f'<span class="text-muted">asked for {session_span(b["session_at"], length)}</span>'
        else:
            session = '<span class="text-muted">no time yet</span>'
        status, mode = b["status"], b["mode"]
        link = f"{head}/{int(b['pk'])}/{tail}"
        ack_id, name, email = escape(b["ack_id"]), escape(b["client_name"]), escape(b["email"])
        counsellor = escape(b["counsellor__display_name"] or "—")
        kind = f'{escape(b["session_type__name"])}<span class="block text-muted">{mode_label(mode)}</span>'
        # An f-string: str.format() of the same row took four times as long.
        badge, label = status_badge(status), status_label(status)
        # On a phone (below sm) a row is the booking with its status under it, the client and the
        # session: what a counsellor looks for there. The other columns are on the booking's page.
        # The cells' padding is the table's (templates/staff/booking_list.html), not each cell's.
        out.append(
            f'<tr><td class="whitespace-nowrap"><a href="{link}" class="font-semibold">{ack_id}</a>'
            f'<span class="mt-1 block sm:hidden"><span class="badge {badge} max-sm:rounded-lg max-sm:text-xs max-sm:whitespace-normal">{label}</span></span></td>'
            f'<td>{name}<span class="block text-muted max-sm:hidden">{email}</span></td>'
            f'<td class="whitespace-nowrap max-sm:hidden"><span class="badge {badge}">{label}</span></td>'
            f'<td class="sm:whitespace-nowrap">{session}</td><td class="max-sm:hidden">{counsellor}</td>'
            f'<td class="max-sm:hidden">{kind}</td><td class="whitespace-nowrap max-sm:hidden">{short(b["created_at"])}</td></tr>'
        )
    return mark_safe("\n".join(out))  # noqa: S308 (every value escaped)


LAST_PAGE = 10_000  # a page number past this is a bad link, not a page


def _page_number(value: str | None) -> int:
    """The requested page number; 1 when it is missing or not a page number."""
    try:
        number = int(value or 1)
    except ValueError:
        return 1
    return number if 1 <= number <= LAST_PAGE else 1


# The filter form's fields as written for a query and the choices it offered. Most views of
# the list are one of a few filters (each status, a counsellor, this week...) asked for again
# and again; their fields are the same HTML each time. A form with errors, or a search, is
# written afresh. Bounded as the {% fixed %} fragments are: once full, the rest are written
# each time (workers are recycled every few thousand requests).
_FIELDS_HTML: dict[tuple[Any, ...], SafeString] = {}
_FIELDS_HTML_MAX = 128


# The filters always in view; on a phone the others fold away under "More filters" (they
# filled the first screen), unfolded when one of them is in use. Wide screens show them all.
FIRST_FILTERS = ("q", "status")
FILTERS_GRID = '<div class="grid gap-x-4 sm:grid-cols-2 lg:grid-cols-4">\n'
MORE_FILTERS = '\n</div>\n<details class="filters-more mb-2"{0}>\n{1}\n'
# Its count of filters in use is swapped in again with each htmx answer (out of band).
MORE_SUMMARY = (
    '<summary id="filters-more-summary" class="mb-4 cursor-pointer font-semibold text-brand-800"{0}>'
    "More filters{1}</summary>"
)


def _filter_in_use(request: HttpRequest, field: BoundField) -> bool:
    """A filter given a value other than its default (an untouched select sends its first
    choice: sort "newest", 25 per page), or one with an error."""
    value = request.GET.get(field.name)
    choices = getattr(field.field, "choices", None)
    default = str(next(iter(choices))[0]) if choices else ""
    return bool(field.errors) or value not in (None, "", default)


def _more_filters_in_use(request: HttpRequest, form: BookingFilterForm) -> int:
    return sum(1 for name in form.fields if name not in FIRST_FILTERS and _filter_in_use(request, form[name]))


def _more_summary(in_use: int, *, oob: bool = False) -> str:
    return MORE_SUMMARY.format(_OOB if oob else "", f" ({in_use} in use)" if in_use else "")


def _filter_fields_markup(request: HttpRequest, form: BookingFilterForm) -> SafeString:
    first = [_field_html(form[name]) for name in FIRST_FILTERS]
    others = [form[name] for name in form.fields if name not in FIRST_FILTERS]
    in_use = _more_filters_in_use(request, form)
    more = MORE_FILTERS.format(" open" if in_use else "", _more_summary(in_use))
    # Each field is escaped by _field_html (or the template), so joining them keeps them safe.
    rest = "\n".join(_field_html(f) for f in others)
    return mark_safe(f"{FILTERS_GRID}{''.join(first)}{more}{FILTERS_GRID}{rest}\n</div>\n</details>")  # noqa: S308


def _filter_fields_html(request: HttpRequest, form: BookingFilterForm) -> SafeString:
    if form.errors or request.GET.get("q"):
        # A search is typed (a client's name, an address): nothing to gain, and not to be kept.
        return _filter_fields_markup(request, form)
    key = (
        tuple(sorted((name, tuple(values)) for name, values in request.GET.lists() if name != "page")),
        tuple(form.fields["session_type"].choices),
        tuple(form.fields["counsellor"].choices) if "counsellor" in form.fields else None,
    )
    html = _FIELDS_HTML.get(key)
    if html is None:
        html = _filter_fields_markup(request, form)
        if len(_FIELDS_HTML) < _FIELDS_HTML_MAX:
            _FIELDS_HTML[key] = html
    return html


@require_safe
@staff_required
def booking_list(request: HttpRequest) -> HttpResponse:
    """The bookings the user may see, filtered, a page at a time. The page reads one row more
    than it shows to know whether a next page exists: no COUNT(*) over the whole filtered set
    (counting 1,500 pending requests cost as much as reading and showing 25 of them). The
    total is shown when the last page tells it."""
    form = _filter_form(request)
    filters = form.cleaned()
    per_page = filters.get("per_page") or 25
    number = _page_number(request.GET.get("page"))
    offset = (number - 1) * per_page
    rows = selectors.booking_list_rows(user=request.user, filters=filters, offset=offset, limit=per_page + 1)
    has_next = len(rows) > per_page
    rows = rows[:per_page]
    # The filters as given (QueryDict.urlencode's encoding), without copying the QueryDict.
    query = urlencode([(name, value) for name, values in request.GET.lists() if name != "page" for value in values])
    page_link = f"?{query}&page=" if query else "?page="  # the filters kept, then the page
    # The filters and pager swap in the results alone; Back, when htmx has no copy of the
    # page it left, asks for the whole page again (a history-restore request).
    fragment = request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request
    # Each field is escaped by _field_html (or the template), so joining them keeps them safe.
    if fragment:
        fields = None
        resent = mark_safe(  # noqa: S308 (each field escaped; the summary is ours)
            "\n".join(_field_html(f, oob=True) for f in _fields_to_resend(request, form))
            + _more_summary(_more_filters_in_use(request, form), oob=True)
        )
    else:
        fields, resent = _filter_fields_html(request, form), None
    context = {
        "fields": fields,
        "resent_fields": resent,
        "rows": _list_rows(rows),
        "page_number": number,
        "first": offset + 1,
        "last": offset + len(rows),
        "total": None if has_next else offset + len(rows),
        "previous_page": f"{page_link}{number - 1}" if number > 1 else None,
        "next_page": f"{page_link}{number + 1}" if has_next else None,
        "query": query,
        "is_admin": is_administrator(request.user),
        "nav": "bookings",
        "announce": fragment,  # the new count, into the page's status line
    }
    response = render(request, "staff/booking_list.html#results" if fragment else "staff/booking_list.html", context)
    patch_vary_headers(response, ("HX-Request",))  # one URL, two bodies: caches must keep both
    return response


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A spreadsheet-safe cell: text a spreadsheet would run as a formula is prefixed with '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_amount(minor: int) -> str:
    """An amount in minor units (paise) as major units with two decimals, exactly: 1500.00."""
    sign = "-" if minor < 0 else ""
    major, cents = divmod(abs(minor), 100)
    return f"{sign}{major}.{cents:02d}"


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_HEADER = [
    "Acknowledgement ID",
    "Status",
    "Requested at ({zone})",  # times in the clinic's zone, named in the header
    "Session start ({zone})",  # a reserved time only
    "Asked for ({zone})",  # the time the client chose when asking, reserved or not
    "Counsellor",
    "Session type",
    "Mode",
    "Client name",
    "Email",
    "Phone",
    "Amount",
    "Currency",
]


@require_safe
@admin_required
def booking_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered list as CSV, for administrators. Never the client's own words."""
    form = _filter_form(request)
    qs = selectors.booking_search(user=request.user, filters=form.cleaned())
    writer = csv.writer(_Echo())

    # Labels translated once, not per row.
    statuses, modes = ({key: str(label) for key, label in choices} for choices in (Status.choices, Mode.choices))
    zone = timezone.get_current_timezone()

    def moment(value: datetime | None) -> str:
        if value is None:
            return ""
        local = value.astimezone(zone)
        text = local.strftime("%Y-%m-%d %H:%M")
        # The hour a daylight-saving zone repeats when its clocks go back: say which of the two.
        if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
            text += local.strftime(" UTC%:z")
        return text

    def rows():
        yield writer.writerow([name.format(zone=settings.TIME_ZONE) for name in CSV_HEADER])
        for (
            ack_id,
            status,
            created_at,
            session_start,
            asked_for,
            counsellor,
            session_type,
            mode,
            *client,
            amount,
            currency,
        ) in qs.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    csv_cell(v)
                    for v in (
                        ack_id,
                        statuses[status],
                        moment(created_at),
                        moment(session_start),
                        moment(asked_for),
                        counsellor or "",
                        session_type,
                        modes[mode],
                        *client,
                        csv_amount(amount),
                        currency,
                    )
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="mindsettler-bookings-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- The month's report -------------------------------------------------------------------

# The report's columns: the key of staff.selectors.month_report's rows, the heading, and what
# it counts, in one line each (the page and the CSV say the same).
REPORT_COLUMNS = (
    ("completed", "Completed", "Sessions marked as held."),
    ("no_shows", "No-shows", "Confirmed sessions the client did not come to."),
    ("cancelled", "Cancelled", "Cancelled by the client or by staff, whether paid or not."),
    ("late", "Of which late", "Of those, cancelled at the client's request inside the cancellation cutoff."),
    ("lapsed", "Lapsed unpaid", "Approved but never paid: released when the payment window ran out."),
    ("confirmed", "Confirmed", "Paid sessions still to take place, or held but not yet marked held or a no-show."),
    ("awaiting_payment", "Awaiting payment", "Approved, the client has not paid yet."),
    ("received", "Received", "Payments taken for these sessions, online or at the clinic, whatever their status now."),
    ("refunded", "Refunded", "Refunds of those payments, started or done; a refund that failed is not counted."),
    ("net", "Net", "Received less refunded."),
)
REPORT_MONEY_COLUMNS = frozenset(selectors.REPORT_MONEY)


def _report_context(request: HttpRequest) -> tuple[dict[str, Any], int]:
    """The report page's context and its status: the month asked for (this month if none).
    A month the form refuses is answered with the form and its error alone, and 400: showing
    another month's numbers instead could be taken for the month asked for."""
    data = request.GET.copy()
    if not data.get("month", "").strip():  # the field shows the month the page shows
        data["month"] = f"{timezone.localdate():%Y-%m}"
    form = ReportMonthForm(data)
    context: dict[str, Any] = {"form": form, "columns": REPORT_COLUMNS, "nav": "reports"}
    if not form.is_valid():
        return context, 400
    month = form.cleaned_data["month"]
    report = selectors.month_report(user=request.user, month=month)
    earlier = (month - timedelta(days=1)).replace(day=1)
    later = selectors.month_after(month)
    context.update(
        report=report,
        month=month,
        earlier=earlier if earlier.year >= ReportMonthForm.FIRST_YEAR else None,
        later=later if later.year <= ReportMonthForm.LAST_YEAR else None,
        this_month=timezone.localdate().replace(day=1),
        time_zone_name=settings.TIME_ZONE_NAME,
        table=[(row["name"], _report_cells(row)) for row in report["rows"]],
        table_totals=_report_cells(report["totals"]),
    )
    return context, 200


def _report_cells(row: dict[str, Any]) -> list[str]:
    """A row's numbers as the page shows them: amounts in rupees (the `money` filter)."""
    return [money(row[key]) if key in REPORT_MONEY_COLUMNS else str(row[key]) for key, _, _ in REPORT_COLUMNS]


@require_safe
@admin_required
def report(request: HttpRequest) -> HttpResponse:
    """A month's sessions and money by counsellor, for administrators: counts and sums only,
    never a client's name, address or words."""
    context, status = _report_context(request)
    return render(request, "staff/report.html", context, status=status)


@require_safe
@admin_required
def report_export(request: HttpRequest) -> HttpResponse:
    """The report's table as CSV: a row per counsellor and the total row."""
    context, status = _report_context(request)
    if status != 200:
        return render(request, "staff/report.html", context, status=status)
    report, month = context["report"], context["month"]
    keys = [key for key, _, _ in REPORT_COLUMNS]
    writer = csv.writer(_Echo())

    def line(name: str, row: dict[str, Any]) -> str:
        # Numbers as numbers (a negative one too); only the name is text someone typed.
        values = [csv_amount(row[k]) if k in REPORT_MONEY_COLUMNS else row[k] for k in keys]
        return writer.writerow([f"{month:%Y-%m}", csv_cell(name), *values, "INR"])

    header = ["Month", "Counsellor", *(heading for _, heading, _ in REPORT_COLUMNS), "Currency"]
    lines = [writer.writerow(header)]
    lines += [line(row["name"], row) for row in report["rows"]]
    lines.append(line("All counsellors", report["totals"]))
    response = HttpResponse("".join(lines), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="mindsettler-report-{month:%Y-%m}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- Booking detail and actions ---------------------------------------------------------

DETAIL_RELATED = ("session_type", "counsellor", "counsellor__user", "slot", "preferred_slot", "created_by")


def _detail_booking(request: HttpRequest, pk: int) -> Booking:
    qs = (
        Booking.objects.select_related(*DETAIL_RELATED)
        .annotate(
            preferred_slot_taken=selectors.preferred_slot_taken(), next_asked_for=bookings_selectors.next_asked_for()
        )
        .prefetch_related(Prefetch("events", queryset=BookingEvent.objects.select_related("actor_user")), "payments")
    )
    return booking_or_404(request.user, pk, qs)


def _detail_context(
    request: HttpRequest,
    booking: Booking,
    *,
    forms: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    notice: str = "",
    typed: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """`typed`: (action, reason) a stale refusal did not send, shown at the top if the action
    is no longer offered (its form, which would keep it, is gone with it)."""
    forms = forms or {}
    user = request.user
    staff_moves = allowed_targets(booking.status, Actor.STAFF)
    version = {"version": booking.version}
    ctx: dict[str, Any] = {
        "booking": booking,
        "show_client_words": can_read_client_words(user, booking),
        "is_admin": is_administrator(user),
        "events": list(booking.events.all()),
        "payments": list(booking.payments.all()),
        "emails": list(
            OutboundEmail.objects.filter(booking=booking)
            .exclude(kind__in=STAFF_EMAIL_KINDS)
            .defer("body_text", "body_html", "ics")  # the page lists them: when, subject, status
            .order_by("-created_at", "-id")[:10]
        ),
        "views_log": selectors.views_log(user=user, booking=booking),
        "errors": errors or {},
        "notice": notice,
        "meeting_url_effective": booking.join_url,
        # The booking's counsellor has left (their account is deactivated): approving or
        # moving it hands it to another counsellor. DETAIL_RELATED reads their account.
        "counsellor_away": booking.counsellor is not None and not counsellor_at_work(booking.counsellor),
        "meeting_form": forms.get("meeting") or MeetingUrlForm(initial={"meeting_url": booking.meeting_url}),
        # An open booking's address, mistyped on the phone or by the client, can be corrected.
        "email_form": (forms.get("address") or EmailCorrectForm())
        if booking.status in ACTIVE_STATUSES and booking.anonymised_at is None
        else None,
        "now": timezone.now(),
        "nav": "bookings",
        # Ended (held, missed, cancelled or turned down): the client's next booking starts from
        # this one's details (booking_new's ?after=, _booking_again).
        "book_again": booking.status in FINAL_STATUSES and booking.anonymised_at is None,
    }
    if Status.APPROVED in staff_moves:
        counsellors, times_of = _times_of(request, booking)
        slots = selectors.approve_slot_choices(user=user, booking=booking, counsellor_id=times_of)
        initial: dict[str, Any] = {**version, "amount": Decimal(booking.amount) / 100}  # 1500, not 1500.0
        form = forms.get("approve") or ApproveForm(initial=initial, slots=slots, amount_editable=can_edit_amount(user))
        # The client's preferred time is chosen for them if it is offered; else no time is,
        # so that approving takes a choice. A refused form was checked against every
        # counsellor's times: it shows those it is choosing among.
        form.offer(slots, chosen=booking.preferred_slot_id)
        action = reverse("staff:booking_approve", args=[booking.pk])
        ctx.update(
            approve_form=form,
            approve_slots_count=len(form.fields["slot"].queryset),
            approve_counsellors=counsellors,
            approve_times_of=times_of,
            approve_times_of_name=dict(counsellors).get(times_of, ""),
            approve_action=f"{action}?times_of={times_of}" if times_of else action,
        )
        ctx["preferred_conflict"] = booking.preferred_slot_taken  # _detail_booking's annotation
    if Status.REJECTED in staff_moves:
        ctx["reject_form"] = forms.get("reject") or RejectForm(initial=version)
    if Status.COMPLETED in staff_moves:
        ctx["complete_form"] = forms.get("complete") or VersionForm(initial=version, prefix="complete")
        ctx["session_ended"] = booking.session_over
        # The client has asked for their next session, held until this one is recorded.
        ctx["next_waiting"] = booking.session_over and booking.next_asked_for  # _detail_booking's annotation
    # Money handed over at the clinic's desk: administrators record it, which confirms the booking.
    if ctx["is_admin"] and booking.status in (Status.APPROVED, Status.PAYMENT_PENDING):
        ctx["clinic_payment_form"] = forms.get(ClinicPaymentForm.prefix) or ClinicPaymentForm(
            initial=version, booking=booking
        )
    if Status.NO_SHOW in staff_moves:
        ctx["no_show_form"] = forms.get("no_show") or NoShowForm(initial=version)
    if Status.CANCELLED in staff_moves:
        ctx["cancel_form"] = forms.get("cancel") or CancelForm(initial=version)
        ctx["cancel_is_late"] = booking.slot is not None and services.cancellation_is_late(
            session_start=booking.slot.start
        )
        ctx["cutoff_hours"] = settings.CANCELLATION_CUTOFF_HOURS
        ctx["paid_at_clinic"] = any(p.at_clinic and p.confirmed_at for p in ctx["payments"])
    # Moving or cancelling a session whose time has passed is for one the clinic did not hold.
    ctx["after_the_fact"] = (
        booking.slot is not None and booking.slot.start <= ctx["now"] and Status.CANCELLED in staff_moves
    )
    ctx["late_cancellation"] = booking.status == Status.CANCELLED and any(
        e.action == "late_cancellation" for e in ctx["events"]
    )
    if booking.status in services.RESCHEDULABLE_BY_STAFF and booking.slot_id:
        counsellors, times_of = _times_of(request, booking)
        slots = selectors.approve_slot_choices(user=user, booking=booking, counsellor_id=times_of)
        form = forms.get("move") or MoveForm(initial=version, slots=slots)
        form.offer(slots)  # no time chosen for staff: the client's preferred one may be one they left
        action = reverse("staff:booking_move", args=[booking.pk])
        ctx.update(
            move_form=form,
            move_counsellors=counsellors,
            move_times_of=times_of,
            move_times_of_name=dict(counsellors).get(times_of, ""),
            move_action=f"{action}?times_of={times_of}" if times_of else action,
        )
    try:
        ctx["can_resend"] = bool(services.email_to_resend(booking, ctx["emails"]))
    except BookingError:
        ctx["can_resend"] = False
    # Administrators say what they did about each payment that needs attention.
    ctx["settle"] = [
        {
            "payment": p,
            "form": forms.get(f"settle-{p.pk}") or PaymentSettleForm(payment=p),
            "error": ctx["errors"].get(f"settle-{p.pk}", ""),
        }
        for p in ctx["payments"]
        if p.needs_attention and ctx["is_admin"]
    ]
    # A refusal for an action no longer on the page (the status moved on), or of a stale
    # page ("stale"): show it at the top.
    shown = {
        "approve": "approve_form" in ctx,
        "reject": "reject_form" in ctx,
        "complete": "complete_form" in ctx,
        "no_show": "no_show_form" in ctx,
        ClinicPaymentForm.prefix: "clinic_payment_form" in ctx,
        "cancel": "cancel_form" in ctx,
        "move": "move_form" in ctx,
        "resend": True,
        "address": ctx["email_form"] is not None,
        "meeting": booking.mode == Mode.ONLINE,
        **{f"settle-{s['payment'].pk}": True for s in ctx["settle"]},
    }
    ctx["orphan_errors"] = [message for action, message in ctx["errors"].items() if not shown.get(action)]
    if typed and typed[1] and not shown.get(typed[0]):
        ctx["orphan_errors"].append(f"Your reason was not sent, and this action is no longer offered: “{typed[1]}”")
    # The page's title starts with "Error: " when an action was refused, as on every form page.
    ctx["failed"] = bool(ctx["errors"] or ctx["orphan_errors"]) or any(form.errors for form in forms.values())
    return ctx


def _times_of(request: HttpRequest, booking: Booking) -> tuple[list[tuple[int, str]], int | None]:
    """For approving or moving `booking` (one of the two at a time): the counsellors whose
    times an administrator may choose among (selectors.schedule_counsellors), and whose are
    shown, one counsellor's at a time (?times_of=, else the first: the booking's own, or the
    preferred slot's). Every counsellor's would be thousands of choices. No list and None for
    a counsellor, who sees their own times only."""
    counsellors = selectors.schedule_counsellors(user=request.user, booking=booking)
    if not counsellors:
        return [], None
    asked = id_from(request.GET.get("times_of", ""))
    return counsellors, asked if any(pk == asked for pk, _ in counsellors) else counsellors[0][0]


# Where the calendar opens a booking (templates/staff/calendar.html, static/js/calendar.js).
BOOKING_PANEL = "booking-panel"


def _render_detail(request: HttpRequest, booking: Booking, *, status: int = 200, **kwargs: Any) -> HttpResponse:
    """The whole page, or for htmx the #booking-detail fragment: the calendar's side panel when
    htmx swaps it into #booking-panel (HX-Target), else an action's result on the full page,
    laid out as that page."""
    fragment = request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request
    context = _detail_context(request, booking, **kwargs)
    context["panel"] = bool(fragment) and request.htmx.target == BOOKING_PANEL
    template = "staff/booking_detail.html#detail" if fragment else "staff/booking_detail.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))  # one URL, three bodies
    return response


@require_safe
@staff_required
def booking_detail(request: HttpRequest, pk: int) -> HttpResponse:
    booking = _detail_booking(request, pk)
    # Another counsellor's times shown in place (htmx, ?times_of=) are not another opening of
    # the page they are on, already recorded in this sign-in. The answer is the whole booking,
    # though, and the headers are the asker's to send: unrecorded only after such a page.
    in_place = request.htmx and "times_of" in request.GET
    shown = request.method != "HEAD"  # answered with headers only: nothing of it is shown
    if shown and not (
        in_place
        and BookingView.objects.filter(
            booking=booking,
            user=request.user,
            viewed_at__gte=timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE),
        ).exists()
    ):
        BookingView.objects.create(booking=booking, user=request.user)
    return _render_detail(request, booking)


def _after_action(request: HttpRequest, pk: int, message: str) -> HttpResponse:
    """Success: a redirect (no JavaScript) or the fresh fragment with HX-Trigger (htmx)."""
    if request.htmx:
        response = _render_detail(request, _detail_booking(request, pk), notice=message)
        response["HX-Trigger"] = BOOKING_CHANGED
        return response
    messages.success(request, message)
    return redirect("staff:booking_detail", pk=pk)


def _refused(request: HttpRequest, pk: int, action: str, form: Any, exc: BookingError | None) -> HttpResponse:
    """The action was refused: show why next to it, with the booking's current state."""
    booking = _detail_booking(request, pk)
    errors = {action: exc.message} if exc else {}
    forms_: dict[str, Any] = {}
    typed = None
    if isinstance(exc, StaleBooking):
        # Once, at the top (no action shows "stale"): the whole page is the booking's new
        # state, with the new version. The form that was sent keeps what was typed in it (a
        # long cancellation reason, say), so that pressing again acts on the booking as it is
        # now; if the booking's new state no longer offers that action, the form is not shown.
        errors = {"stale": exc.message}
        if isinstance(form, VersionForm):
            forms_[action] = form.resubmittable(version=booking.version)
        typed = (action, request.POST.get(f"{action}-reason", "").strip())
    elif form is not None:
        forms_[action] = form
    # htmx swaps only 2xx responses; a plain form post gets an honest status code.
    status = 200 if request.htmx else (409 if exc else 400)
    return _render_detail(request, booking, status=status, forms=forms_, errors=errors, typed=typed)


def _back_to(request: HttpRequest) -> str | None:
    """The page of ours a booking action was sent from, to go back to (the form's `next`): the
    dashboard's sessions to record. None if it is not given, or not an address of this site."""
    url = request.POST.get("next", "")
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


def _act(
    request: HttpRequest,
    pk: int,
    action: str,
    form: Any,
    do: Callable[[dict[str, Any]], Any],
    done: str | Callable[[Any], str],
    *,
    back: str | None = None,
    book_again: bool = False,
) -> HttpResponse:
    """What every booking action shares: check the form, call the service, then show the
    fresh booking, or the refusal next to the action. `do` gets the cleaned data. `back`
    (see _back_to): on success, go back there instead, the message naming the booking (`do`
    returns it), and with `book_again` offering to book the client's next session (the
    booking's own page offers it too); a refusal still shows the booking as it is now, and why."""
    if form is not None and not form.is_valid():
        return _refused(request, pk, action, form, None)
    try:
        result = do(form.cleaned_data if form is not None else {})
    except BookingError as exc:
        if form is not None and exc.field in form.fields:
            # The value typed was refused: said with its field, as the form's own errors are.
            form.add_error(exc.field, exc.message)
            return _refused(request, pk, action, form, None)
        return _refused(request, pk, action, form, exc)
    message = done(result) if callable(done) else done
    if back and not request.htmx:
        messages.success(request, f"{result.ack_id}: {message}", extra_tags=f"book-again:{pk}" if book_again else "")
        return redirect(back)
    return _after_action(request, pk, message)


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_approve(request: HttpRequest, pk: int) -> HttpResponse:
    booking = _detail_booking(request, pk)
    editable = can_edit_amount(request.user)
    form = ApproveForm(
        request.POST,
        slots=selectors.approve_slot_choices(user=request.user, booking=booking),
        amount_editable=editable,
        booking=booking,
    )

    def do(data: dict[str, Any]) -> Booking:
        return services.booking_approve(
            booking_id=pk,
            slot_id=data["slot"].pk,
            user=request.user,
            amount=form.amount_paise() if editable else None,
            expected_version=data["version"],
        )

    return _act(
        request, pk, "approve", form, do, lambda b: f"Approved. {b.ack_id} is reserved and the client has been emailed."
    )


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_reject(request: HttpRequest, pk: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    return _act(
        request,
        pk,
        "reject",
        RejectForm(request.POST),
        lambda d: services.booking_reject(
            booking_id=pk, user=request.user, reason=d["reason"], expected_version=d["version"]
        ),
        # The email says only that the request was not accepted; the reason is on the booking page.
        "Rejected. The client has been emailed; the reason shows on their booking page.",
    )


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_complete(request: HttpRequest, pk: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    return _act(
        request,
        pk,
        "complete",
        VersionForm(request.POST, prefix="complete"),
        lambda d: services.booking_complete(booking_id=pk, user=request.user, expected_version=d["version"]),
        "Marked as completed.",
        back=_back_to(request),
        book_again=True,
    )


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    return _act(
        request,
        pk,
        "cancel",
        CancelForm(request.POST),
        lambda d: services.booking_cancel(
            booking_id=pk,
            actor=Actor.STAFF,
            user=request.user,
            reason=d["reason"],
            expected_version=d["version"],
            client_asked=d["client_asked"],
        ),
        _cancelled_text,
    )


def _cancelled_text(booking: Booking) -> str:
    """What cancelling did besides: money going back to the client, a late cancellation."""
    text = "Cancelled. The client has been emailed."
    refunds = [p for p in booking.payments.all() if p.refund_status]
    # Money taken at the desk goes back from the desk: nothing is refunded online.
    if desk := [p for p in refunds if p.at_clinic and p.refund_status != Payment.RefundState.PROCESSED]:
        text += (
            f" They paid {money(sum(p.refund_in_hand for p in desk), desk[0].currency)} at the clinic: give it "
            "back from there, then record it under Payments below."
        )
    refunds = [p for p in refunds if not p.at_clinic]
    if going := [p for p in refunds if p.refund_status != Payment.RefundState.FAILED]:
        text += f" {money(sum(p.refund_in_hand for p in going), going[0].currency)} is being refunded to them."
    if len(going) < len(refunds):
        text += " A refund could not be made: see Payments below."
    if booking.events.filter(action="late_cancellation").exists():
        text += f" Recorded as a late cancellation (inside {settings.CANCELLATION_CUTOFF_HOURS} hours)."
    return text


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_resend(request: HttpRequest, pk: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    return _act(
        request,
        pk,
        "resend",
        None,
        lambda d: services.booking_resend_last_email(booking_id=pk, user=request.user),
        lambda email: f"Sent again: “{email.subject}”.",
    )


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_email(request: HttpRequest, pk: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    form = EmailCorrectForm(request.POST)
    return _act(
        request,
        pk,
        form.prefix,
        form,
        lambda d: services.booking_correct_email(booking_id=pk, user=request.user, email=d["email"]),
        _corrected,
    )


def _corrected(done: tuple[Booking, str]) -> str:
    booking, subject = done
    if subject:
        return f"Email address corrected. {booking.email} has been sent “{subject}” again, with a new link."
    return f"Email address corrected. {booking.email} has been sent a new link to the booking's page."


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_meeting_url(request: HttpRequest, pk: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    return _act(
        request,
        pk,
        "meeting",
        MeetingUrlForm(request.POST),
        lambda d: services.booking_set_meeting_url(booking_id=pk, user=request.user, meeting_url=d["meeting_url"]),
        "Meeting link saved.",
    )


_SETTLED = {
    services.Settle.REFUND: "Refund asked for. The client's page says it is on its way.",
    services.Settle.REFUNDED: "Refund recorded. The client's page shows it as refunded.",
    services.Settle.DEALT_WITH: "Marked as dealt with.",
}


@_form_address("staff:booking_detail", "pk")
@admin_required
def booking_payment_settle(request: HttpRequest, pk: int, payment_id: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    payment = get_object_or_404(Payment, pk=payment_id, booking_id=pk)
    form = PaymentSettleForm(request.POST, payment=payment)
    return _act(
        request,
        pk,
        form.prefix,
        form,
        lambda d: services.payment_settle(
            payment_id=payment.pk, user=request.user, how=d["how"], note=d["note"], reference=d.get("reference", "")
        ),
        lambda _: _SETTLED[form.cleaned_data["how"]],
    )


@_form_address("staff:booking_detail", "pk")
@admin_required
def booking_paid_at_clinic(request: HttpRequest, pk: int) -> HttpResponse:
    booking = booking_or_404(request.user, pk)
    return _act(
        request,
        pk,
        ClinicPaymentForm.prefix,
        ClinicPaymentForm(request.POST, booking=booking),
        lambda d: services.payment_record_at_clinic(
            booking_id=pk,
            user=request.user,
            method=d["method"],
            reference=d["reference"],
            expected_version=d["version"],
        ),
        "Payment recorded. The booking is confirmed, and the client has been emailed.",
    )


# --- Bookings made by staff -------------------------------------------------------------


def _render_new(
    request: HttpRequest, form: StaffBookingForm, *, error: str = "", notice: str = "", status: int = 200
) -> HttpResponse:
    """The new-booking form, its times those of the counsellor chosen: none before one is."""
    chosen = id_from(str(form["counsellor"].value() or ""))
    slot = form.fields["slot"]
    if chosen is None:
        slot.queryset = Slot.objects.none()
        slot.help_text = f"Choose a counsellor to see their free times. {slot.help_text}"
    else:
        slot.queryset = selectors.new_booking_slots(user=request.user, counsellor_id=chosen)
    context = {
        "form": form,
        "error": error,
        "notice": notice,
        "nav": "new",
        # What the summary read to the client says: the notice's version, how long details are kept.
        "policy_version": settings.POLICY_VERSION,
        "retention_months": settings.RETENTION_MONTHS,
    }
    return render(request, "staff/booking_new.html", context, status=status)


def _booking_again(request: HttpRequest) -> Booking | None:
    """The ended booking a new one for the same client starts from (?after=, from its page's
    "Book another session"), if `request.user` may see it and its details are still held."""
    pk = id_from(request.GET.get("after", ""))
    if pk is None:
        return None
    ended = Booking.objects.filter(pk=pk, status__in=FINAL_STATUSES, anonymised_at=None)
    return bookings_for(request.user, ended).first()


def _active_booking_refusal(user: Any, email: str) -> str:
    """Why no booking can be made for `email` while it has an active booking (a client has
    one at a time), or "" if it has none."""
    existing = (
        bookings_for(user)
        .filter(email=email, status__in=ACTIVE_STATUSES)
        .select_related("slot", "session_type")
        .first()
    )
    if existing is None:
        if not Booking.objects.filter(email=email, status__in=ACTIVE_STATUSES).exists():
            return ""
        # Another counsellor's client: the portal never confirms that one exists.
        return "A booking for this email address can't be made here. Please ask an administrator."
    if existing.session_over:
        # Held, most likely, and not recorded yet: cancelling it would refund it.
        return (
            f"This email address's session {existing.ack_id} ended {staff_moment(existing.session_end)} "
            "and is not recorded yet. Open it and record it as held (or missed), then book the next one."
        )
    return (
        f"This email address already has an active booking ({existing.ack_id}). A client can "
        "have one active booking at a time: open it, or cancel it first."
    )


@require_http_methods(["GET", "HEAD", "POST"])
@staff_required
def booking_new(request: HttpRequest) -> HttpResponse:
    user = request.user
    kwargs = {
        "slots": selectors.new_booking_slots(user=user),
        "counsellors": selectors.counsellors_at_work(user),
        "amount_editable": can_edit_amount(user),
        "clinic_payment": is_administrator(user),
    }
    if request.method != "POST":
        initial: dict[str, Any] = {}
        if not is_administrator(user):
            own = counsellors_for(user).first()
            initial["counsellor"] = own.pk if own else None
        earlier = _booking_again(request)
        notice = ""
        if earlier is not None:
            if request.method == "GET":  # HEAD shows nothing of it
                # The form shows the client's details from it: an opening of that booking,
                # recorded as its page's are.
                BookingView.objects.create(booking=earlier, user=user)
            # Their contact details and the session's kind, as before: what is asked of the
            # client each time (their age, their agreement) and the time are left to ask.
            initial.update(
                client_name=earlier.client_name,
                email=earlier.email,
                phone=phone_shown(earlier.phone),
                language=earlier.language,
                session_type=earlier.session_type_id,
                mode=earlier.mode,
            )
            if earlier.counsellor_id in {c.pk for c in kwargs["counsellors"]}:
                initial["counsellor"] = earlier.counsellor_id
            notice = _active_booking_refusal(user, earlier.email) or (
                f"The client's details are from {earlier.ack_id}: check them with the client, and ask again "
                "whether they are 18 or over and agree to the privacy notice."
            )
        return _render_new(request, StaffBookingForm(initial=initial, **kwargs), notice=notice)
    if "_refresh" in request.POST:
        # Another counsellor chosen ("Show their times", or htmx on change): the same form, what
        # was typed kept, nothing checked yet.
        return _render_new(request, StaffBookingForm(initial=request.POST.dict(), **kwargs))
    form = StaffBookingForm(request.POST, **kwargs)
    error = ""
    if form.is_valid():
        data = form.cleaned_data
        counsellor = data["counsellor"]
        if counsellor is None and not is_administrator(user):
            # A counsellor's own bookings stay theirs: otherwise they could not see them.
            counsellor = counsellors_for(user).first()
        try:
            booking = services.booking_create_by_staff(
                user=user,
                status=form.booking_status(),
                session_type=data["session_type"],
                mode=data["mode"],
                client_name=data["client_name"],
                email=data["email"],
                phone=data["phone"],
                slot=data["slot"],
                counsellor=counsellor,
                amount=form.amount_paise() if can_edit_amount(user) else None,
                age_confirmation=data["age"],
                language=data["language"],
                consent=data["consent_by"],
                policy_version=data["policy_shown"],
                paid_at_clinic=form.paid_at_clinic(),
            )
        except TooLate as exc:
            # Too soon to pay online: unless they pay at the desk, which an administrator records.
            also = (
                " Or, if they pay at the clinic now, choose “Paid at the clinic now”."
                if "clinic_method" in form.fields
                else ""
            )
            form.add_error("slot", exc.message + also)
        except SlotUnavailable as exc:
            form.add_error("slot", exc.message)  # taken since the page was shown
        except PolicyVersionChanged as exc:
            form.add_error("consent", exc.message)  # published since the form was checked
        except BookingError as exc:
            error = exc.message
            if exc.field in ("method", "reference"):
                # The payment taken at the desk, refused (a receipt number recorded before): the
                # booking was not made either.
                form.add_error(f"clinic_{exc.field}", exc.message)
                error = ""
            elif exc.code == "active_booking_exists":
                form.add_error("email", _active_booking_refusal(user, data["email"]) or exc.message)
                error = ""
        else:
            # The amount too: a slip ("1.5" for ₹1,500) shows at once.
            amount = money(booking.amount, booking.currency)
            messages.success(
                request,
                f"Booking {booking.ack_id} created and confirmed: {booking.session_type.name}, {amount} paid at "
                "the clinic. The client has been emailed their confirmation."
                if booking.status == Status.CONFIRMED
                else f"Booking {booking.ack_id} created: {booking.session_type.name}, {amount}. The client has been "
                "emailed their link.",
            )
            return redirect("staff:booking_detail", pk=booking.pk)
    return _render_new(request, form, error=error, status=400)


# --- Availability -------------------------------------------------------------------------


@require_safe
@staff_required
def availability_index(request: HttpRequest) -> HttpResponse:
    counsellors = list(counsellors_for(request.user))
    if len(counsellors) == 1 and not is_administrator(request.user):
        return redirect("staff:availability", counsellor_id=counsellors[0].pk)
    return render(request, "staff/availability_index.html", {"counsellors": counsellors, "nav": "availability"})


def _too_short_said(counsellor: Counsellor, minutes: int, *, what: str = "them") -> str:
    """A word after publishing times of `minutes` (`what`: "it", "them", "some of them") that
    clients cannot book, or "": on the availability page and in the calendar's answer."""
    shortest = bookings_selectors.shortest_session_with(counsellor)
    name = counsellor.display_name
    if shortest is None:
        return f" Clients cannot book {what}: no kind of session is offered in the ways {name} meets clients."
    if minutes < shortest:
        return f" Clients cannot book {what}: the shortest kind of session with {name} lasts {shortest} minutes."
    return ""


# The page lists the upcoming slots four weeks at a time: twelve weeks of half-hour sessions
# are two thousand rows, each with its own form (seconds to render, megabytes to send).
SLOTS_SHOWN_DAYS = 28


def _slots_from(request: HttpRequest) -> date:
    """The first day of the slots listed (?from=, a date): today, unless a later one is asked for."""
    today = timezone.localdate()
    try:
        asked = date.fromisoformat(request.GET.get("from", ""))
    except ValueError:
        return today
    if asked > today + timedelta(days=5 * 366):
        return today  # typed by hand: no slot is that far, and near 9999 the weeks would not fit
    return max(asked, today)


def _availability_context(request: HttpRequest, counsellor: Counsellor, **forms: Any) -> dict[str, Any]:
    now = timezone.now()
    # The upcoming slots of four weeks (SLOTS_SHOWN_DAYS), from ?from=: hours generate up to 12
    # weeks ahead and a calendar selection may be further out, and this list is the only place
    # to remove one; "Later" goes to the week of the next slot after them.
    first_day = _slots_from(request)
    until = first_day + timedelta(days=SLOTS_SHOWN_DAYS)
    start = max(now, timezone.make_aware(datetime.combine(first_day, time.min)))
    end = timezone.make_aware(datetime.combine(until, time.min))
    upcoming = slots_for(request.user, Slot.objects.filter(counsellor=counsellor))
    slots = list(upcoming.filter(start__gte=start, start__lt=end).order_by("start"))
    # The slots on either side of these weeks, in one query: "Earlier" goes back to the four
    # weeks ending with the last slot before them, as "Later" goes on to the next one.
    around = upcoming.filter(start__gte=now).aggregate(
        before=Max("start", filter=Q(start__lt=start)), after=Min("start", filter=Q(start__gte=end))
    )
    today = timezone.localdate()
    # Per slot, the active bookings holding it, and the requests that asked for it (a slot
    # either keeps from being removed, so neither is shown as free).
    by_slot = {s.pk: s for s in slots}
    for s in slots:
        s.active_bookings, s.asked_for_by = [], []
    asking = Booking.objects.filter(
        Q(slot_id__in=by_slot, status__in=ACTIVE_STATUSES) | Q(preferred_slot_id__in=by_slot, status=Status.PENDING)
    ).only("pk", "ack_id", "status", "slot_id", "preferred_slot_id")
    for booking in asking.order_by("pk"):
        if booking.slot_id in by_slot:
            by_slot[booking.slot_id].active_bookings.append(booking)
        elif booking.preferred_slot_id in by_slot:
            by_slot[booking.preferred_slot_id].asked_for_by.append(booking)
    blocked = list(BlockedPeriod.objects.filter(counsellor=counsellor, end__gte=now))
    # What clients are not offered, though free: a slot kept for the records inside a blocked
    # period (it cannot be removed, and need not be), and one shorter than every session.
    shortest = bookings_selectors.shortest_session_with(counsellor)
    for s in slots:
        s.day = timezone.localdate(s.start)  # listed by day
        s.blocked = any(p.start < s.end and p.end > s.start for p in blocked)
        s.too_short = shortest is None or s.end - s.start < timedelta(minutes=shortest)
    return {
        "counsellor": counsellor,
        "hours": list(WeeklyHours.objects.filter(counsellor=counsellor)),
        "slots": slots,
        "slots_from": first_day,
        "slots_until": until - timedelta(days=1),
        "slots_paged": first_day > today,  # not the first four weeks: a slot removed comes back here
        "slots_later": timezone.localdate(around["after"]) if around["after"] else None,
        "slots_earlier": max(timezone.localdate(around["before"]) - timedelta(days=SLOTS_SHOWN_DAYS - 1), today)
        if around["before"]
        else None,
        "blocked": blocked,
        "shortest": shortest,
        # Each form with its own prefix (the key its refusals use), so no two share an id.
        "hours_form": forms.get("hours") or WeeklyHoursForm(),
        "generate_form": forms.get("generate") or GenerateForm(),
        "slot_form": forms.get("slot") or SlotForm(),
        "blocked_form": forms.get("blocked") or BlockedPeriodForm(),
        "room_form": forms.get("room") or CounsellorRoomForm(instance=counsellor),
        "errors": forms.get("errors") or {},
        "held": forms.get("held") or [],
        "refused": forms.get("refused"),
        "nav": "availability",
    }


@require_safe
@staff_required
def availability(request: HttpRequest, counsellor_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    return render(request, "staff/availability.html", _availability_context(request, counsellor))


def _availability_done(request: HttpRequest, counsellor: Counsellor, message: str, *, section: str) -> HttpResponse:
    """Back to the page at the section acted in (`{section}-h`, its heading), with the message
    shown there: the page is long, and its top is far from a slot removed near the bottom. A
    slot removed from later weeks of the list (?from=) goes back to those weeks."""
    messages.success(request, message, extra_tags=f"section:{section}")
    page = reverse("staff:availability", args=[counsellor.pk])
    first_day = _slots_from(request)
    if section == "slots" and first_day > timezone.localdate():
        page += f"?{urlencode({'from': first_day.isoformat()})}"
    return redirect(f"{page}#{section}-h")


def _availability_refused(
    request: HttpRequest, counsellor: Counsellor, key: str, form: Any = None, exc: BookingError | None = None
) -> HttpResponse:
    extra: dict[str, Any] = {"errors": {key: exc.message} if exc else {}}
    if form is not None:
        extra[key] = form
    if isinstance(exc, SlotsHeld):
        extra["held"] = exc.bookings
    else:
        # The page is long: what went wrong is summed up at its top, where focus goes.
        anchor = f"{key}-form" if form is not None else f"{key}-h"  # the form, else its section
        extra["refused"] = {"form": form, "message": exc.message if exc else "", "anchor": anchor}
    return render(
        request,
        "staff/availability.html",
        _availability_context(request, counsellor, **extra),
        status=409 if exc else 400,
    )


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_hours_add(request: HttpRequest, counsellor_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    form = WeeklyHoursForm(request.POST)
    if not form.is_valid():
        return _availability_refused(request, counsellor, "hours", form)
    try:
        services.weekly_hours_add(counsellor=counsellor, **form.cleaned_data)
    except BookingError as exc:
        if exc.field in form.fields:  # the time typed was refused: said beside it, and in the summary
            form.add_error(exc.field, exc.message)
            return _availability_refused(request, counsellor, "hours", form)
        return _availability_refused(request, counsellor, "hours", form, exc)
    return _availability_done(
        request, counsellor, "Working hours added. Generate slots to publish them.", section="hours"
    )


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_hours_delete(request: HttpRequest, counsellor_id: int, hours_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    return _availability_removed(
        request,
        counsellor,
        WeeklyHours.objects.filter(counsellor=counsellor, pk=hours_id),
        ("Working hours removed. Slots already published stay.", "Those working hours had already been removed."),
        section="hours",
    )


def _availability_removed(
    request: HttpRequest, counsellor: Counsellor, row: QuerySet, said: tuple[str, str], *, section: str
) -> HttpResponse:
    """Remove `row` (the counsellor's own, or nothing) and say so: `said` is what to say if it
    was removed, and if it had gone already (a second click, a colleague on the same page)."""
    removed, _ = row.delete()
    return _availability_done(request, counsellor, said[0] if removed else said[1], section=section)


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_generate(request: HttpRequest, counsellor_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    form = GenerateForm(request.POST)
    if not form.is_valid():
        return _availability_refused(request, counsellor, "generate", form)
    if not WeeklyHours.objects.filter(counsellor=counsellor).exists():
        nothing = BookingError(
            "There are no weekly hours yet, so there is nothing to generate. Add hours above, then generate slots."
        )
        return _availability_refused(request, counsellor, "generate", form, nothing)
    try:
        created, skipped = services.availability_generate(counsellor=counsellor, weeks=form.cleaned_data["weeks"])
    except BookingError as exc:
        return _availability_refused(request, counsellor, "generate", form, exc)
    message = (
        f"Published {created} new free slot{'s' if created != 1 else ''}." if created else "Nothing new to publish."
    )
    if skipped:
        message += f" Skipped {skipped} (already published, in the past, blocked, or overlapping other slots)."
    if created:
        shortest_hours = min(
            WeeklyHours.objects.filter(counsellor=counsellor).values_list("session_minutes", flat=True)
        )
        message += _too_short_said(counsellor, shortest_hours, what="some of them")
    return _availability_done(request, counsellor, message, section="hours")


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_slot_add(request: HttpRequest, counsellor_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    form = SlotForm(request.POST)
    if not form.is_valid():
        return _availability_refused(request, counsellor, "slot", form)
    start = form.cleaned_data["start"]
    try:
        if start <= timezone.now():
            raise BookingError("Choose a time in the future.")
        services.slot_create(
            counsellor=counsellor, start=start, end=start + timedelta(minutes=form.cleaned_data["minutes"])
        )
    except BookingError as exc:
        return _availability_refused(request, counsellor, "slot", form, exc)
    said = "Slot published." + _too_short_said(counsellor, form.cleaned_data["minutes"], what="it")
    return _availability_done(request, counsellor, said, section="oneoff")


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_slot_delete(request: HttpRequest, counsellor_id: int, slot_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    if not Slot.objects.filter(pk=slot_id, counsellor=counsellor).exists():
        return _availability_done(request, counsellor, "That slot had already been removed.", section="slots")
    try:
        blocked = services.slot_delete(slot_id=slot_id)
    except BookingError as exc:
        return _availability_refused(request, counsellor, "slots", None, exc)
    if blocked is not None:
        message = (
            "Slot removed. It is within the weekly hours, so its time is now a blocked period"
            " (under Blocked periods) and is not published again; remove that to offer the time again."
        )
        return _availability_done(request, counsellor, message, section="slots")
    return _availability_done(request, counsellor, "Slot removed.", section="slots")


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_blocked_add(request: HttpRequest, counsellor_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    form = BlockedPeriodForm(request.POST)
    if not form.is_valid():
        return _availability_refused(request, counsellor, "blocked", form)
    try:
        _, removed = services.blocked_period_create(counsellor=counsellor, **form.cleaned_data)
    except BookingError as exc:
        return _availability_refused(request, counsellor, "blocked", form, exc)
    return _availability_done(
        request,
        counsellor,
        f"Period blocked. {removed} free slot{'s' if removed != 1 else ''} removed.",
        section="blocked",
    )


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_blocked_delete(request: HttpRequest, counsellor_id: int, period_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    removed = services.blocked_period_delete(counsellor=counsellor, period_id=period_id)
    said = (
        "Blocked period removed. Generate slots to fill it again."
        if removed
        else "That blocked period had already been removed."
    )
    return _availability_done(request, counsellor, said, section="blocked")


@_form_address("staff:availability", "counsellor_id")
@staff_required
def availability_room(request: HttpRequest, counsellor_id: int) -> HttpResponse:
    counsellor = counsellor_or_404(request.user, counsellor_id)
    form = CounsellorRoomForm(request.POST, instance=counsellor)
    if not form.is_valid():
        return _availability_refused(request, counsellor, "room", form)
    if not (form.cleaned_data["offers_online"] or form.cleaned_data["offers_in_person"]):
        form.add_error(None, "Offer at least one way of meeting: online or in person.")
        return _availability_refused(request, counsellor, "room", form)
    try:
        told = services.counsellor_save(counsellor=form.save(commit=False))
    except SettingRefused as exc:
        form.add_error(exc.field, exc.message)
        return _availability_refused(request, counsellor, "room", form)
    return _availability_done(
        request, counsellor, "Online room and modes saved." + _waitlist_told_text(told), section="room"
    )


# --- Administrators: emails the outbox gave up on (the dashboard's list) -----------------


@_form_address("staff:dashboard")
@admin_required
def email_send_again(request: HttpRequest, email_id: int) -> HttpResponse:
    """One email of the dashboard's "Emails that could not be sent", back in the queue. Back to
    the dashboard with what happened, or why it was not sent again and what to do instead."""
    try:
        email, requeued = services.email_send_again(email_id=email_id, user=request.user)
    except OutboundEmail.DoesNotExist:
        raise Http404("No such email.") from None
    except BookingError as exc:
        messages.error(request, exc.message)
        return redirect("staff:dashboard")
    if requeued:
        messages.success(request, f"Sent again: “{email.subject}”.")
    elif email.status == OutboundEmail.State.PENDING:
        messages.info(request, f"“{email.subject}” is already waiting to be sent.")
    else:
        messages.info(request, f"“{email.subject}” has been sent already.")
    return redirect("staff:dashboard")


@_form_address("staff:dashboard")
@admin_required
def emails_send_again(request: HttpRequest) -> HttpResponse:
    """Every email the dashboard lists as given up that can go as it is (their links intact),
    back in the queue: after an outage, or once the email settings are mended."""
    sent, refused = [], []
    for row in selectors.emails_given_up(user=request.user, limit=None):
        if not row["can_send_again"]:
            continue
        try:
            email, requeued = services.email_send_again(email_id=row["pk"], user=request.user)
        except OutboundEmail.DoesNotExist:  # deleted meanwhile (retention)
            continue
        except BookingError:
            refused.append(row)
            continue
        if requeued:
            sent.append(email)
    if not sent and not refused:
        messages.info(request, "No email was waiting to be sent again.")
        return redirect("staff:dashboard")
    text = f"Sent again: {_emails_text(len(sent))}." if sent else ""
    if refused:
        # Each one's reason is long (what to do instead): its own button says it.
        text += (
            f" Not sent again, as no longer true: {_emails_text(len(refused))} (the booking changed, a later email"
            " went out, or its day passed); “Send again” beside each says why."
        )
    (messages.success if sent else messages.error)(request, text.strip())
    return redirect("staff:dashboard")


def _emails_text(count: int) -> str:
    return f"{count} email{'s' if count != 1 else ''}"


# --- Administrators: staff and clinic ---------------------------------------------------


@require_safe
@admin_required
def team(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/team.html", _team_context())


def _team_context(
    form: InviteForm | None = None, error: str = "", refused: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "members": selectors.team_members(),
        "events": selectors.account_events(),
        "form": form or InviteForm(),
        "error": error,
        # A refused account action: {"member": pk, "action": ..., "message": ...}, shown next to it.
        "refused": refused or {},
        "nav": "team",
    }


@_form_address("staff:team")
@admin_required
def team_invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            user = staff_invite(invited_by=request.user, **form.cleaned_data)
        except InvitationError as exc:
            # Beside the field it is about (an address in use: Email), and in the summary.
            if exc.field in form.fields:
                form.add_error(exc.field, exc.message)
                return render(request, "staff/team.html", _team_context(form), status=409)
            return render(request, "staff/team.html", _team_context(form, exc.message), status=409)
        messages.success(request, f"Invitation sent to {user.email}.")
        return redirect("staff:team")
    return render(request, "staff/team.html", _team_context(form), status=400)


@_form_address("staff:team")
@admin_required
def team_reinvite(request: HttpRequest, user_id: int) -> HttpResponse:
    member = get_object_or_404(User, pk=user_id)
    try:
        staff_reinvite(user=member)
    except InvitationError as exc:
        return render(request, "staff/team.html", _team_context(error=exc.message), status=409)
    messages.success(request, f"A new invitation link was sent to {member.email}.")
    return redirect("staff:team")


def _team_account_action(
    request: HttpRequest,
    user_id: int,
    action: str,
    do: Callable[[User], str],
    *,
    confirm: bool,
) -> HttpResponse:
    """What the Team page's account actions share: the member or 404, the confirmation tick
    (400 without it), the service call (409 with the reason next to the action), then back to
    the Team page with a message."""
    member = get_object_or_404(User, pk=user_id)
    if confirm and not ConfirmForm(request.POST).is_valid():
        refused = {"member": member.pk, "action": action, "message": "Tick the box to confirm."}
        return render(request, "staff/team.html", _team_context(refused=refused), status=400)
    try:
        message = do(member)
    except StaffAccountError as exc:
        refused = {"member": member.pk, "action": action, "message": exc.message}
        return render(request, "staff/team.html", _team_context(refused=refused), status=409)
    messages.success(request, message)
    return redirect("staff:team")


@_form_address("staff:team")
@admin_required
def team_counsellor_profile(request: HttpRequest, user_id: int) -> HttpResponse:
    """An administrator who also counsels: a counsellor profile under their account."""
    member = get_object_or_404(User, pk=user_id)
    try:
        profile = counsellor_profile_add(member=member, name=request.POST.get("name", ""), by=request.user)
    except StaffAccountError as exc:
        refused = {"member": member.pk, "action": "counsellor_profile", "message": exc.message}
        return render(request, "staff/team.html", _team_context(refused=refused), status=409)
    messages.success(
        request,
        f"Counsellor profile added for {member}, hidden from clients for now. Fill it in and publish free times"
        " under Availability; then tick “Show this profile to clients” here.",
    )
    return redirect("staff:profile_edit", profile.pk)


def _open_bookings_text(count: int) -> str:
    return f"{count} open booking{'s' if count != 1 else ''}"


@_form_address("staff:team")
@admin_required
def team_deactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    def do(member: User) -> str:
        result = staff_deactivate(user=member, by=request.user)
        if not result.changed:
            message = f"The account of {member} was already deactivated."
        else:
            message = f"{member} can no longer sign in; their open sessions have ended."
            if result.profile_hidden:
                message += " Their profile is hidden from clients." + _waitlist_told_text(result.waitlist_told)
        if result.open_bookings:
            message += (
                f" Still assigned to them, unchanged: {_open_bookings_text(result.open_bookings)} (requests, and"
                " sessions not yet marked held). Review them in the booking list: on a booking's page, approve or move it"
                " into another counsellor's time to hand it over."
            )
        return message

    return _team_account_action(request, user_id, "deactivate", do, confirm=True)


@_form_address("staff:team")
@admin_required
def team_reactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    def do(member: User) -> str:
        if not staff_reactivate(user=member, by=request.user):
            return f"The account of {member} is already active."
        message = f"{member} can sign in again."
        counsellor = Counsellor.objects.filter(user=member).first()
        if counsellor is not None and not counsellor.is_active:
            message += " Their profile stays hidden from clients until you show it again on their profile page."
        return message

    return _team_account_action(request, user_id, "reactivate", do, confirm=False)


@_form_address("staff:team")
@admin_required
def team_second_factor_reset(request: HttpRequest, user_id: int) -> HttpResponse:
    def do(member: User) -> str:
        staff_second_factor_reset(user=member, by=request.user)
        return (
            f"The second factor of {member} was reset and their open sessions have ended. At their next sign-in"
            " they set up a new authenticator app, after opening a link emailed to their address."
        )

    return _team_account_action(request, user_id, "second_factor_reset", do, confirm=True)


@_form_address("staff:team")
@admin_required
def team_calendar_stop(request: HttpRequest, user_id: int) -> HttpResponse:
    def do(member: User) -> str:
        if not calendar_subscription_stop(user=member, by=request.user):
            return f"{member} had no calendar subscription."
        return f"The calendar subscription of {member} is stopped: calendar apps can no longer read their sessions."

    return _team_account_action(request, user_id, "calendar_stop", do, confirm=False)


@require_http_methods(["GET", "HEAD", "POST"])
@admin_required
def clinic_settings(request: HttpRequest) -> HttpResponse:
    clinic = Clinic.load()
    form = ClinicForm(request.POST if request.method == "POST" else None, instance=clinic)
    context = {
        "form": form,
        "session_types": list(SessionType.objects.all()),
        "time_zone_name": settings.TIME_ZONE_NAME,
        "nav": "clinic",
    }
    if request.method == "POST":
        if form.is_valid():
            try:
                services.clinic_save(clinic=form.save(commit=False))
            except SettingRefused as exc:
                form.add_error(exc.field, exc.message)
            else:
                messages.success(request, "Clinic details saved. Clients see them on their pages and in their emails.")
                return redirect("staff:clinic")
        return render(request, "staff/clinic.html", context, status=400)
    return render(request, "staff/clinic.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@admin_required
def session_type_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Add a session type (no `pk`) or change one."""
    session_type = get_object_or_404(SessionType, pk=pk) if pk is not None else SessionType()
    title = f"Session type: {session_type.name}" if pk is not None else "Add a session type"  # before the form edits it
    form = SessionTypeForm(request.POST if request.method == "POST" else None, instance=session_type)
    context = {"form": form, "title": title, "adding": pk is None, "nav": "clinic"}
    if request.method == "POST":
        saved = session_type_save(form) if form.is_valid() else None
        if saved is not None:
            session_type, told = saved
            offered = "Clients can book it." if session_type.is_active else "Clients no longer see it."
            messages.success(request, f"“{session_type.name}” saved. {offered}" + _waitlist_told_text(told))
            return redirect(reverse("staff:clinic") + "#session-types")
        return render(request, "staff/session_type.html", context, status=400)
    return render(request, "staff/session_type.html", context)


def session_type_save(form: SessionTypeForm) -> tuple[SessionType, int] | None:
    """Save a valid form (services.session_type_save): the session type, and how many clients
    waiting for it were told their place has ended. None, with the reason on the form, if the
    save was refused, or another administrator took its link name a moment before (the unique
    index refuses the second)."""
    session_type = form.save(commit=False)
    try:
        told = services.session_type_save(session_type=session_type, seen=form.seen_values())
    except (SessionTypeChanged, SettingRefused) as error:
        form.refused(error)
        return None
    except IntegrityError:
        form.add_error("slug", "Another session type has just been given this link name. Save again for another.")
        return None
    return session_type, told


def _waitlist_told_text(told: int) -> str:
    """The end of a success message after services.waitlist_end_unserved."""
    if not told:
        return ""
    if told == 1:
        return " 1 client on the waitlist was emailed that their place has ended."
    return f" {told} clients on the waitlist were emailed that their places have ended."


# --- Outcomes ---------------------------------------------------------------------------


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_no_show(request: HttpRequest, pk: int) -> HttpResponse:
    booking_or_404(request.user, pk)
    return _act(
        request,
        pk,
        "no_show",
        NoShowForm(request.POST),
        lambda d: services.booking_no_show(booking_id=pk, user=request.user, expected_version=d["version"]),
        "Marked as a no-show.",
        back=_back_to(request),
    )


# --- Counsellor profiles ----------------------------------------------------------------


@require_safe
@staff_required
def profile_index(request: HttpRequest) -> HttpResponse:
    """A counsellor goes straight to their own profile; administrators choose one."""
    counsellors = list(counsellors_for(request.user))
    if len(counsellors) == 1 and not is_administrator(request.user):
        return redirect("staff:profile_edit", counsellor_id=counsellors[0].pk)
    return render(request, "staff/profile_index.html", {"counsellors": counsellors, "nav": "profile"})


@require_http_methods(["GET", "HEAD", "POST"])
@staff_required
def profile_edit(request: HttpRequest, counsellor_id: int) -> HttpResponse:
    """The public profile: a counsellor edits only their own (others answer 404); administrators any."""
    counsellor = counsellor_or_404(request.user, counsellor_id)
    # The form edits a copy: a refused save leaves the page's heading and its "shown to
    # clients" line saying what is stored.
    form = CounsellorProfileForm(
        request.POST if request.method == "POST" else None,
        instance=copy.copy(counsellor),
        can_publish=is_administrator(request.user),
    )
    context = {"counsellor": counsellor, "form": form, "nav": "profile"}
    if counsellor.user_id == request.user.pk and request.method != "POST":
        # A calendar subscription a password reset stopped: said here too, as the member may
        # not open the calendar page (staff.services.calendar_subscription_stop_on_reset).
        context["subscription"] = selectors.calendar_subscription_of(request.user)
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "staff/profile.html", context, status=400)
        saved = form.save(commit=False)
        try:
            told = services.counsellor_save(counsellor=saved)
        except SettingRefused as exc:
            form.add_error(exc.field, exc.message)
            return render(request, "staff/profile.html", context, status=400)
        shown = "Clients see it on the “Our counsellors” page." if saved.is_active else "It is hidden from clients."
        messages.success(request, f"Profile saved. {shown}" + _waitlist_told_text(told))
        return redirect("staff:profile_edit", counsellor_id=counsellor.pk)
    return render(request, "staff/profile.html", context)


# --- Moving a booking to another slot -----------------------------------------------------


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_move(request: HttpRequest, pk: int) -> HttpResponse:
    """ "Move to another slot" on the detail page: same rules as a client's move (one
    transaction, old slot released, new one taken), no limit, and the client is emailed.
    A counsellor chooses among their own free times; an administrator among anyone's, which
    hands the booking to that counsellor (when one leaves, say)."""
    booking = _detail_booking(request, pk)

    def done(moved: Booking) -> str:
        with_whom = f", with {moved.counsellor.display_name}" if moved.counsellor_id != booking.counsellor_id else ""
        return f"Moved to {staff_moment(moved.slot.start)}{with_whom}. The client has been emailed."

    return _act(
        request,
        pk,
        "move",
        MoveForm(request.POST, slots=selectors.approve_slot_choices(user=request.user, booking=booking)),
        lambda d: services.booking_reschedule(
            booking_id=pk,
            slot_id=d["slot"].pk,
            actor=Actor.STAFF,
            user=request.user,
            expected_version=d["version"],
            client_asked=d["client_asked"],
        ),
        done,
    )


@_form_address("staff:booking_detail", "pk")
@staff_required
def booking_drop(request: HttpRequest, pk: int) -> HttpResponse:
    """A booking dragged on the calendar (JSON in the form body, JSON out): move it to its
    counsellor's free slot starting at the dropped time, or refuse so the calendar puts the
    event back. Scoped like every staff view: another counsellor's booking answers 404."""
    booking_or_404(request.user, pk)
    start = _parse_moment(request.POST.get("start", ""))
    version = request.POST.get("version", "")
    if start is None or id_from(version) is None:
        return _safe_json({"ok": False, "message": "The new time could not be read. Please try again."}, status=400)
    try:
        moved = services.booking_move_to_start(
            booking_id=pk, start=start, user=request.user, expected_version=int(version)
        )
    except BookingError as exc:
        return _safe_json({"ok": False, "code": exc.code, "message": exc.message}, status=409)
    response = _safe_json(
        {
            "ok": True,
            "version": moved.version,
            "message": f"{moved.ack_id} moved to {staff_moment(moved.slot.start)}. The client has been emailed.",
        }
    )
    response["HX-Trigger"] = BOOKING_CHANGED
    return response
