"""The booking list: filters, search, sorting, pagination, htmx, CSV export, query budget."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from bookings.models import Booking, Counsellor, Mode, SessionType, Slot, Status
from bookings.templatetags.mindsettler import span, when_short
from staff import selectors
from staff import views as staff_views
from staff.forms import BookingFilterForm
from staff.templatetags.staff_tags import widget
from staff.tests.conftest import HX, seen_just_now
from staff.views import _field_html, _list_rows, _widget_html, csv_amount, csv_cell

URL = "/staff/bookings/"


def acks(response) -> set[str]:
    return set(re.findall(r"MS-[A-Z0-9]{6}", response.content.decode()))


@pytest.fixture
def spread(counsellor, other_counsellor, make_booking):
    couples = SessionType.objects.create(name="Couples", slug="couples", duration_minutes=80, price=250000)
    return {
        "pending": make_booking(
            Status.PENDING, counsellor=counsellor, client_name="Anita Pending", email="anita@example.com"
        ),
        "confirmed": make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="Bala Confirmed"),
        "other": make_booking(Status.APPROVED, counsellor=other_counsellor, client_name="Chitra Other"),
        "couples": make_booking(
            Status.CANCELLED, counsellor=counsellor, session_type=couples, mode=Mode.IN_PERSON, client_name="Dev Couple"
        ),
        "draft": make_booking(Status.DRAFT, counsellor=counsellor, client_name="Unverified Draft"),
    }


def test_filters_search_and_scoping(admin_client, spread):
    b = spread
    assert acks(admin_client.get(URL)) == {
        b["pending"].ack_id,
        b["confirmed"].ack_id,
        b["other"].ack_id,
        b["couples"].ack_id,
    }
    assert acks(admin_client.get(URL, {"status": "pending"})) == {b["pending"].ack_id}
    assert acks(admin_client.get(URL, {"status": "active"})) == {
        b["pending"].ack_id,
        b["confirmed"].ack_id,
        b["other"].ack_id,
    }
    assert acks(admin_client.get(URL, {"counsellor": b["other"].counsellor_id})) == {b["other"].ack_id}
    assert acks(admin_client.get(URL, {"session_type": b["couples"].session_type_id})) == {b["couples"].ack_id}
    assert acks(admin_client.get(URL, {"mode": Mode.IN_PERSON})) == {b["couples"].ack_id}
    assert acks(admin_client.get(URL, {"q": "anita@EXAMPLE"})) == {b["pending"].ack_id}
    assert acks(admin_client.get(URL, {"q": "bala"})) == {b["confirmed"].ack_id}
    assert acks(admin_client.get(URL, {"q": b["other"].ack_id.lower().replace("-", "")})) == {b["other"].ack_id}
    day = b["confirmed"].slot.start.date()
    assert b["confirmed"].ack_id in acks(admin_client.get(URL, {"date_from": day, "date_to": day}))
    assert b["confirmed"].ack_id not in acks(admin_client.get(URL, {"date_from": day + timedelta(days=1)}))


def test_counsellors_see_only_their_own(counsellor_client, spread):
    found = acks(counsellor_client.get(URL))
    assert spread["other"].ack_id not in found and spread["pending"].ack_id in found
    assert acks(counsellor_client.get(URL, {"q": "Chitra"})) == set()
    # No counsellor filter, no export link for counsellors.
    html = counsellor_client.get(URL).content.decode()
    assert 'name="counsellor"' not in html and "Export" not in html


def test_sorting(admin_client, spread):
    html = admin_client.get(URL, {"sort": "client"}).content.decode()
    assert html.index("Anita") < html.index("Bala") < html.index("Chitra") < html.index("Dev Couple")
    html = admin_client.get(URL, {"sort": "oldest"}).content.decode()
    assert html.index(spread["pending"].ack_id) < html.index(spread["couples"].ack_id)


def test_names_sort_whatever_their_case(admin_client, counsellor, make_booking):
    for name in ("zed Zaveri", "anand Rao", "Bala Iyer", "Élan Das"):
        make_booking(Status.PENDING, counsellor=counsellor, client_name=name)
    html = admin_client.get(URL, {"sort": "client"}).content.decode()
    assert html.index("anand Rao") < html.index("Bala Iyer") < html.index("zed Zaveri")


@pytest.mark.parametrize("sort", ["session", "session_desc"])
def test_bookings_with_no_time_yet_come_after_the_sessions(admin_client, counsellor, make_booking, sort):
    """The calendar's list of upcoming sessions (without JavaScript) is this sort: a request
    with no time is not the next session. Alike on SQLite and PostgreSQL."""
    untimed = make_booking(Status.PENDING, counsellor=counsellor)
    timed = [make_booking(Status.CONFIRMED, counsellor=counsellor) for _ in range(2)]
    html = admin_client.get(URL, {"status": "active", "sort": sort}).content.decode()
    soonest, latest = sorted(timed, key=lambda b: b.slot.start)
    first, second = (soonest, latest) if sort == "session" else (latest, soonest)
    assert html.index(first.ack_id) < html.index(second.ack_id) < html.index(untimed.ack_id)


def test_htmx_returns_the_results_fragment_and_bad_filters_do_not_break_the_page(admin_client, spread):
    response = admin_client.get(URL, {"status": "pending"}, **HX)
    html = response.content.decode()
    assert 'id="results"' in html and "<html" not in html and 'role="search"' not in html
    assert admin_client.get(URL, {"status": "nonsense", "date_from": "31/31/2026", "page": "x"}).status_code == 200
    assert "HX-Request" in response["Vary"]


def test_a_screen_reader_hears_the_new_count_not_the_whole_table(admin_client, spread):
    """The results are not a live region (a screen reader would read the table out after each
    change of filter): an htmx answer puts its count into the page's status line instead."""
    page = admin_client.get(URL, {"status": "pending"}).content.decode()
    assert '<p id="results-status" role="status" class="sr-only"></p>' in page
    assert "aria-live" not in page and "hx-swap-oob" not in page
    assert 'tabindex="0" role="region" aria-label="Table of bookings"' in page  # scrolls by keyboard on a phone

    pending = Booking.objects.filter(status=Status.PENDING).count()
    html = admin_client.get(URL, {"status": "pending"}, **HX).content.decode()
    assert f'<div hx-swap-oob="innerHTML:#results-status">{pending} booking{"s" if pending != 1 else ""}</div>' in html
    html = admin_client.get(URL, {"q": "nobody-at-all"}, **HX).content.decode()
    assert '<div hx-swap-oob="innerHTML:#results-status">No bookings match these filters.</div>' in html


def test_back_to_a_filtered_list_gets_the_whole_page(admin_client, spread):
    # htmx's history-restore request (Back, when its own copy of the page is gone) is an htmx
    # request too, but it replaces the whole body: the page, not the results fragment.
    response = admin_client.get(URL, {"status": "pending"}, **HX, HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    html = response.content.decode()
    assert "<html" in html and 'role="search"' in html and 'id="results"' in html


def test_pagination_keeps_the_filters(admin_client, counsellor, make_booking):
    for _ in range(30):
        make_booking(Status.PENDING, counsellor=counsellor)
    html = admin_client.get(URL, {"status": "pending", "per_page": 25}).content.decode()
    assert "Bookings 1\N{EN DASH}25 · more on the next page" in html and "Page 1" in html
    assert "?status=pending&amp;per_page=25&amp;page=2" in html and "Previous page" not in html
    second = admin_client.get(URL, {"status": "pending", "per_page": 25, "page": 2})
    assert len(acks(second)) == 5
    html = second.content.decode()
    # The last page knows the total; it links back, not on.
    assert "Bookings 26\N{EN DASH}30 of 30" in html and "Next page" not in html
    assert "?status=pending&amp;per_page=25&amp;page=1" in html
    # Everything on one page: just the number.
    assert "30 bookings" in admin_client.get(URL, {"status": "pending", "per_page": 50}).content.decode()


def test_a_page_past_the_end_or_a_bad_page_number(admin_client, counsellor, make_booking):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    html = admin_client.get(URL, {"status": "pending", "page": 3}).content.decode()
    assert booking.ack_id not in html and "No bookings on page 3" in html
    assert 'href="?status=pending"' in html  # back to the first page, filters kept
    for bad in ("0", "-1", "x", "9" * 5000, "99999999999999999999"):
        response = admin_client.get(URL, {"page": bad})
        assert response.status_code == 200 and booking.ack_id in response.content.decode(), bad


def test_rows_show_what_triage_needs(admin_client, counsellor, slot, make_booking):
    booked = make_booking(Status.CONFIRMED, slot=slot, client_name="Bala Booked")
    preferred = Slot.objects.create(
        counsellor=counsellor, start=slot.start + timedelta(days=1), end=slot.end + timedelta(days=1)
    )
    asked = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=preferred, mode=Mode.IN_PERSON)
    unplaced = make_booking(Status.PENDING, counsellor=None)
    html = admin_client.get(URL).content.decode()
    for booking in (booked, asked, unplaced):
        link = (
            f'<a href="{reverse("staff:booking_detail", args=[booking.pk])}" class="font-semibold">{booking.ack_id}</a>'
        )
        assert link in html
        assert when_short(booking.created_at, autoescape=True) in html
    # Each session from its start to its end, as everywhere: "Fri 27 Nov, 10:00 to 10:50 IST"
    # (the slot may be longer than the 50-minute session), on one line (on a phone, two: the
    # day, then the times).
    fifty = timedelta(minutes=50)
    assert (
        f'<td class="sm:whitespace-nowrap">{session_cell(span(slot.start, slot.start + fifty, autoescape=True))}</td>'
        in html
    )
    assert "Confirmed" in html and "Bala Booked" in html
    assert (
        f"asked for {session_cell(span(preferred.start, preferred.start + fifty, autoescape=True))}" in html
        and "Pending review" in html
    )
    assert 'Individual session<span class="block text-muted">In person</span>' in html and "Asha Menon" in html
    assert "no time yet" in html and "—" in html  # no counsellor yet
    # On a phone the email folds away, so the status is in view beside the name.
    assert f'Bala Booked<span class="block text-muted max-sm:hidden">{booked.email}</span>' in html


def _row(pk: int, **values) -> dict:
    """A row as selectors.booking_list_rows gives it, for _list_rows."""
    return {
        **dict(
            pk=pk,
            ack_id="MS-ABCDEF",
            client_name="A",
            email="a@example.com",
            status=Status.PENDING,
            mode=Mode.ONLINE,
            session_at=None,
            slot__start=None,
            counsellor__display_name=None,
            session_type__name="Individual session",
            session_type__duration_minutes=50,
        ),
        **values,
    }


def test_row_times_name_their_zone_each():
    # 01:30 happens twice in London on 25 October 2026: once in BST, once in GMT.
    first, second = (datetime(2026, 10, 25, h, 30, tzinfo=UTC) for h in (0, 1))
    rows = [_row(pk, created_at=created) for pk, created in ((1, first), (2, second))]
    with timezone.override("Europe/London"):
        html = _list_rows(rows)
        assert when_short(first) == "Sun 25 Oct, 01:30 BST" and when_short(second) == "Sun 25 Oct, 01:30 GMT"
    assert "Sun 25 Oct, 01:30\N{NO-BREAK SPACE}BST" in html and "Sun 25 Oct, 01:30\N{NO-BREAK SPACE}GMT" in html


def test_row_sessions_span_the_change_of_clocks():
    """A session across the night the clocks go back names each time's own zone, as the
    span filter does; one within a zone names it once."""
    across, within = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 10, 0, tzinfo=UTC)
    rows = [
        _row(
            pk,
            status=Status.CONFIRMED,
            created_at=start,
            session_at=start,
            slot__start=start,
            counsellor__display_name="Asha",
        )
        for pk, start in ((1, across), (2, within))
    ]
    with timezone.override("Europe/London"):
        html = _list_rows(rows)
        expected = [span(start, start + timedelta(minutes=50), autoescape=True) for start in (across, within)]
    assert [text.replace("\N{NO-BREAK SPACE}", " ") for text in expected] == [
        "Sun 25 Oct, 01:30 BST\N{EN DASH}01:20 GMT",
        "Mon 26 Oct, 10:00\N{EN DASH}10:50 GMT",
    ]
    assert all(f">{session_cell(text)}</td>" in html for text in expected)


def session_cell(text: str) -> str:
    """The list's session cell for the span filter's `text` (as HTML writes it): the day and
    the times, each kept on one line, then the zone, kept with the times."""
    day, times = text.split(", ", 1)
    times, zone = times.rsplit("\N{NO-BREAK SPACE}", 1)
    return f'<span class="whitespace-nowrap">{day},</span> <span class="whitespace-nowrap">{times}</span>\N{NO-BREAK SPACE}{zone}'


def test_on_a_phone_a_row_shows_the_booking_with_its_status_the_client_and_the_session(admin_client, make_booking):
    """Below sm the table keeps four columns' worth to three: the status moves under the ID, and
    the counsellor, kind and request time (all on the booking's page) are hidden."""
    booking = make_booking(Status.PENDING)
    html = admin_client.get(URL).content.decode()
    row = re.search(rf"<tr><td[^>]*><a [^>]*>{booking.ack_id}</a>.*?</tr>", html).group(0)
    cells = re.findall(r'<td(?: class="([^"]*)")?>', row)
    assert [("max-sm:hidden" in cell) for cell in cells] == [False, False, True, False, True, True, True]
    assert '<span class="mt-1 block sm:hidden"><span class="badge' in row and row.count("Pending review") == 2
    headers = re.findall(r'<th scope="col"(?: class="([^"]*)")?>', html)
    assert [("max-sm:hidden" in header) for header in headers] == [False, False, True, False, True, True, True]


def test_filter_choices_are_every_session_type_and_counsellor_in_their_order(counsellor, other_counsellor):
    SessionType.objects.create(name="Couples", slug="couples", duration_minutes=80, price=250000, sort_order=0)
    SessionType.objects.create(name="Brief", slug="brief", duration_minutes=30, price=90000, sort_order=0)
    SessionType.objects.create(name="Assessment", slug="assessment", duration_minutes=50, price=150000, sort_order=9)
    Counsellor.objects.filter(pk=other_counsellor.pk).update(sort_order=0, display_name="Zoya <Z> & co")
    Counsellor.objects.filter(pk=counsellor.pk).update(sort_order=0, display_name="Asha")
    types, counsellors = selectors.list_filter_choices(counsellors=True)
    assert types == list(SessionType.objects.values_list("pk", "name"))
    assert [name for _, name in types] == ["Brief", "Couples", "Assessment"]
    assert counsellors == list(Counsellor.objects.values_list("pk", "display_name")) and len(counsellors) >= 2
    assert counsellors.index((counsellor.pk, "Asha")) < counsellors.index((other_counsellor.pk, "Zoya <Z> & co"))
    # A counsellor filters only their own bookings: no counsellor choices.
    assert selectors.list_filter_choices(counsellors=False) == (types, None)


def test_filter_fields_are_the_shared_field_template(admin_client, counsellor, session_type):
    def squeeze(html: str) -> str:
        return re.sub(r"\s+", " ", str(html)).strip()

    choices = dict(
        counsellors=[(counsellor.pk, counsellor.display_name)], session_types=[(session_type.pk, session_type.name)]
    )
    unbound = BookingFilterForm(None, **choices)
    bound = BookingFilterForm(
        {"q": "<b>x</b>", "status": "nonsense", "counsellor": counsellor.pk, "date_from": "31/31/2026"}, **choices
    )
    bound.is_valid()
    assert bound["status"].errors and bound["date_from"].errors  # both branches: with and without errors
    for form in (unbound, bound):
        for field in form:
            # Every filter is optional: none says so.
            shared = render_to_string("staff/_field.html", {"field": field, "optional": False})
            assert squeeze(_field_html(field)) == squeeze(shared)
            assert "(optional)" not in _field_html(field)
    # And the page shows them.
    html = admin_client.get(URL, {"date_from": "31/31/2026"}).content.decode()
    assert 'id="id_date_from-error"' in html and 'aria-invalid="true"' in html and 'id="id_counsellor"' in html


def test_filter_fields_are_written_once_per_query_and_choices(admin_client, counsellor, session_type):
    def fields(html: str) -> str:
        return html[html.index('role="search"') : html.index("Apply filters")]

    query = {"status": "pending", "counsellor": counsellor.pk}
    first = fields(admin_client.get(URL, query).content.decode())
    assert first == fields(admin_client.get(URL, {**query, "page": 2}).content.decode())  # the page is not a filter
    assert 'value="pending" selected' in first
    # Another query, or choices that changed (a counsellor renamed), are written afresh.
    assert 'value="confirmed" selected' in fields(admin_client.get(URL, {"status": "confirmed"}).content.decode())
    Counsellor.objects.filter(pk=counsellor.pk).update(display_name="Dr Asha Menon-Rao")
    assert "Dr Asha Menon-Rao" in fields(admin_client.get(URL, query).content.decode())
    # A search is never stored (it holds a client's name or address), nor a form with errors.
    staff_views._FIELDS_HTML.clear()
    admin_client.get(URL, {"q": "Meera"})
    assert not staff_views._FIELDS_HTML
    # And the errors shown are what was typed.
    assert 'id="id_date_from-error"' in fields(admin_client.get(URL, {"date_from": "31/31/2026"}).content.decode())
    assert 'id="id_date_from-error"' not in fields(admin_client.get(URL, query).content.decode())


def test_filter_selects_are_djangos_markup(counsellor, session_type):
    """staff.views writes plain selects itself: byte for byte what the widget renders, with the
    chosen option selected and stored names escaped."""
    counsellors = [(counsellor.pk, "Zoya <Z> & co"), (counsellor.pk + 1, mark_safe("<b>kept</b>"))]
    choices = dict(counsellors=counsellors, session_types=[(session_type.pk, 'Couples "x"')])
    data = [
        None,
        {"status": "pending", "counsellor": str(counsellor.pk), "session_type": str(session_type.pk)},
        {"status": "active", "mode": Mode.IN_PERSON, "sort": "client", "per_page": "50"},
        {"status": "nonsense", "counsellor": "999", "per_page": "7"},  # errors
    ]
    for form in (BookingFilterForm(d, **choices) for d in data):
        form.is_valid()
        for field in form:
            assert _widget_html(field) == widget(field), field.name
    html = str(_widget_html(BookingFilterForm(data[1], **choices)["counsellor"]))
    assert f'<option value="{counsellor.pk}" selected>Zoya &lt;Z&gt; &amp; co</option>' in html
    assert "<b>kept</b>" in html and html.count(" selected") == 1


@pytest.mark.parametrize("role", ["admin", "counsellor"])
def test_the_compiled_list_reads_what_the_orm_reads(
    role, admin_user, counsellor_user, counsellor, session_type, make_booking
):
    """booking_list_rows compiles the first page of each shape of filters (mindsettler/compiled.py):
    the same rows as the ORM query, for every shape, scoped by staff.permissions."""
    for i in range(40):
        make_booking(
            (Status.PENDING, Status.CONFIRMED, Status.CANCELLED, Status.DRAFT)[i % 4],
            counsellor=counsellor if i % 3 else None,
            mode=Mode.IN_PERSON if i % 5 == 0 else Mode.ONLINE,
            client_name=f"Client {i:02d}",
        )
    user = admin_user if role == "admin" else counsellor_user
    day = timezone.localdate()
    shapes = [
        {},
        {"status": "pending"},
        {"status": "active", "sort": "session"},
        {"status": Status.CONFIRMED, "counsellor": counsellor.pk, "sort": "client"},
        {"mode": Mode.IN_PERSON, "session_type": session_type.pk, "sort": "oldest"},
        {"date_from": day, "date_to": day + timedelta(days=30), "sort": "session_desc"},
        {"q": "client 1"},  # a search: through the ORM
    ]
    for filters in shapes:
        for offset, limit in ((0, 26), (0, 11), (10, 11)):
            expected = list(
                selectors._search(selectors._LIST_ROWS, user=user, filters=filters)[offset : offset + limit]
            )
            got = selectors.booking_list_rows(user=user, filters=filters, offset=offset, limit=limit)
            assert got == expected, (filters, offset, limit)


def test_the_compiled_list_keeps_a_counsellor_to_their_own(counsellor_user, counsellor, other_counsellor, make_booking):
    mine = make_booking(Status.PENDING, counsellor=counsellor)
    theirs = make_booking(Status.PENDING, counsellor=other_counsellor)
    rows = selectors.booking_list_rows(user=counsellor_user, filters={"status": "pending"}, offset=0, limit=26)
    assert [r["ack_id"] for r in rows] == [mine.ack_id]
    # Naming the other counsellor (the form offers counsellors no such filter) finds nothing.
    other = {"counsellor": other_counsellor.pk}
    assert selectors.booking_list_rows(user=counsellor_user, filters=other, offset=0, limit=26) == []
    assert theirs.ack_id not in {
        r["ack_id"] for r in selectors.booking_list_rows(user=counsellor_user, filters={}, offset=0, limit=26)
    }


@pytest.mark.parametrize("per_page", [25, 100])
def test_constant_queries_whatever_the_page_size(
    admin_client, counsellor, other_counsellor, make_booking, per_page, django_assert_max_num_queries
):
    for i in range(120):
        make_booking(
            Status.CONFIRMED if i % 2 else Status.PENDING, counsellor=counsellor if i % 3 else other_counsellor
        )
    admin_client.get(URL)
    # Session, user, the filter's counsellors and session types (one query), the page: no COUNT(*).
    with django_assert_max_num_queries(4):
        response = admin_client.get(URL, {"per_page": per_page, "sort": "session"})
    assert len(acks(response)) == per_page


def test_stored_markup_is_escaped_in_the_list_and_detail(admin_client, counsellor, make_booking):
    counsellor.display_name = "<i>Asha</i>"
    counsellor.save()
    booking = make_booking(
        Status.PENDING,
        counsellor=counsellor,
        client_name='<script>alert("x")</script>',
        concerns="<img src=x onerror=alert(1)>",
        preferred_times="<b>mornings</b>",
    )
    for url in (URL, reverse("staff:booking_detail", args=[booking.pk]), reverse("staff:dashboard")):
        html = admin_client.get(url).content.decode()
        assert '<script>alert("x")' not in html and "<img src=x" not in html and "<b>mornings" not in html
        assert "<i>Asha" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in admin_client.get(URL).content.decode()
    detail = admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert "&lt;script&gt;" in detail and "&lt;img src=x onerror=alert(1)&gt;" in detail


def test_csv_cell_neutralises_formulas():
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("+91 98765") == "'+91 98765"
    assert csv_cell("-1") == "'-1"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("Asha") == "Asha"
    assert csv_cell(None) == ""


def test_csv_amounts_are_exact_with_two_decimals():
    """Both exports (the booking list, the month's report) write amounts this way."""
    assert [csv_amount(v) for v in (150000, 99, 5, 0, -150)] == ["1500.00", "0.99", "0.05", "0.00", "-1.50"]
    assert csv_amount(10**18 + 1) == "10000000000000000.01"  # no float rounding, whatever the sum


def test_csv_export_for_administrators_without_the_clients_words(admin_client, counsellor, make_booking):
    booking = make_booking(
        Status.CONFIRMED,
        counsellor=counsellor,
        client_name="=cmd|' /C calc'!A0",
        phone="+919876543210",
        concerns="Very private words",
        preferred_times="Only evenings please",
    )
    make_booking(Status.PENDING, counsellor=counsellor, client_name="Someone Else")
    response = admin_client.get(reverse("staff:booking_export"), {"status": "confirmed"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert "Very private words" not in text and "Only evenings" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "Acknowledgement ID"
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Acknowledgement ID"] == booking.ack_id
    assert row["Client name"] == "'=cmd|' /C calc'!A0"
    assert row["Phone"] == "'+919876543210"
    assert row["Status"] == "Confirmed"
    assert row["Session start (Asia/Kolkata)"] == f"{timezone.localtime(booking.slot.start):%Y-%m-%d %H:%M}"


def test_csv_a_requested_time_is_asked_for_not_a_session_start(admin_client, counsellor, slot, make_booking):
    """A request for a time does not hold it: exported under "Session start", it read as a
    second booking of the same slot beside the one approved into it."""
    approved = make_booking(Status.APPROVED, slot=slot)
    request = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot)
    response = admin_client.get(reverse("staff:booking_export"))
    rows = {
        r["Acknowledgement ID"]: r for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    }
    at = f"{timezone.localtime(slot.start):%Y-%m-%d %H:%M}"
    assert rows[approved.ack_id]["Session start (Asia/Kolkata)"] == at
    assert rows[approved.ack_id]["Asked for (Asia/Kolkata)"] == ""
    assert rows[request.ack_id]["Session start (Asia/Kolkata)"] == ""
    assert rows[request.ack_id]["Asked for (Asia/Kolkata)"] == at
    assert rows[request.ack_id]["Status"] == "Pending review"


def test_csv_times_in_the_hour_the_clocks_repeat_name_their_offset(admin_client, settings, counsellor, make_booking):
    settings.TIME_ZONE = "America/New_York"  # clocks go back at 02:00 on 7 November 2027
    made = {}
    for utc_hour in (5, 6, 7):  # 01:30 EDT, 01:30 EST, 02:30 EST
        start = datetime(2027, 11, 7, utc_hour, 30, tzinfo=UTC)
        slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))
        made[utc_hour] = make_booking(Status.CONFIRMED, slot=slot).ack_id
    response = admin_client.get(reverse("staff:booking_export"), {"status": "confirmed"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    start_of = {row["Acknowledgement ID"]: row["Session start (America/New_York)"] for row in rows}
    assert start_of[made[5]] == "2027-11-07 01:30 UTC-04:00"
    assert start_of[made[6]] == "2027-11-07 01:30 UTC-05:00"
    assert start_of[made[7]] == "2027-11-07 02:30"


def test_dates_the_wrong_way_round_are_pointed_out(admin_client, spread):
    response = admin_client.get(URL, {"date_from": "2026-12-10", "date_to": "2026-12-01"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "This is before “Session from”. Swap the two dates, or change one." in html
    # Said next to "Session to"; the valid "from" still filters.
    assert html.index('id="id_date_to-group"') < html.index("Swap the two dates") < html.index('id="id_date_to"')


@pytest.mark.parametrize(
    "params", [{"date_from": "9999-12-31"}, {"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}]
)
def test_dates_at_the_ends_of_the_calendar_are_refused_not_a_500(admin_client, params):
    response = admin_client.get(URL, params)
    assert response.status_code == 200 and "Enter a date" in response.content.decode()
    assert admin_client.get(reverse("staff:booking_export"), params).status_code == 200


def resent_groups(html: str) -> dict[str, str]:
    """The filter fields an htmx answer sends out of band: their ids, in order, and markup."""
    pattern = r'(<div class="mb-4" id="(id_\w+)-group" hx-swap-oob="true">.*?</div>)'
    return {field_id: markup for markup, field_id in re.findall(pattern, html, re.S)}


def test_htmx_answers_show_a_filters_errors_as_the_whole_page_does(admin_client, spread, django_assert_max_num_queries):
    wrong_way = {"date_from": "2026-12-10", "date_to": "2026-12-01"}
    whole = admin_client.get(URL, wrong_way).content.decode()
    admin_client.get(URL, wrong_way, **HX)  # the session's first request does its one-off work
    seen_just_now(admin_client)
    with django_assert_max_num_queries(4):
        response = admin_client.get(
            URL, wrong_way, **HX, HTTP_HX_CURRENT_URL=f"http://testserver{URL}?date_from=2026-12-10"
        )
    html = response.content.decode()
    assert 'id="results"' in html and "<html" not in html
    # "Session to" with its error, swapped in by its id: the same markup as on the whole page.
    groups = resent_groups(html)
    assert list(groups) == ["id_date_to"]
    assert groups["id_date_to"].replace(' hx-swap-oob="true"', "") in whole
    assert "Swap the two dates" in groups["id_date_to"] and 'aria-invalid="true"' in groups["id_date_to"]

    # Years outside 2000-2099, each next to its field.
    html = admin_client.get(URL, {"date_from": "0002-12-01", "date_to": "9999-01-01"}, **HX).content.decode()
    groups = resent_groups(html)
    assert list(groups) == ["id_date_from", "id_date_to"]
    assert "year 2000 or later" in groups["id_date_from"] and "before the year 2100" in groups["id_date_to"]


def test_htmx_answers_clear_the_errors_the_page_shows_and_leave_the_other_fields(admin_client, spread):
    shown = "http://testserver/staff/bookings/?date_from=2026-12-10&date_to=2026-12-01&status=pending"
    # Dates put right: "Session to" comes back without its error; the other fields stay as they are.
    fixed = {"date_from": "2026-12-01", "date_to": "2026-12-10", "status": "pending"}
    html = admin_client.get(URL, fixed, **HX, HTTP_HX_CURRENT_URL=shown).content.decode()
    groups = resent_groups(html)
    assert list(groups) == ["id_date_to"]
    assert "field-error" not in groups["id_date_to"] and 'value="2026-12-10"' in groups["id_date_to"]
    # Nothing was wrong, nor is: the results alone, as before, and the count of the folded
    # filters in use.
    fine = "http://testserver/staff/bookings/?status=pending"
    for current in (fine, "http://testserver/staff/bookings/", None):
        headers = {"HTTP_HX_CURRENT_URL": current} if current else {}
        html = admin_client.get(URL, {"status": "confirmed"}, **HX, **headers).content.decode()
        assert html.count('hx-swap-oob="true"') == 1 and 'id="id_status' not in html, current
        assert re.search(r'<summary id="filters-more-summary"[^>]*hx-swap-oob="true">More filters</summary>', html)


def test_an_htmx_answer_updates_the_count_of_folded_filters_in_use(admin_client):
    html = admin_client.get(URL, {"mode": "online", "per_page": "50"}, **HX).content.decode()
    assert re.search(r'<summary id="filters-more-summary"[^>]*>More filters \(2 in use\)</summary>', html)


def test_on_a_phone_the_filters_but_search_and_status_fold_away_unless_in_use(admin_client, counsellor):
    """They filled a phone's first screen. Wide screens show them all (assets/app.css)."""

    def more(html: str) -> str:
        return re.search(r"<details[^>]*>\s*<summary[^>]*>[^<]*</summary>", html).group(0)

    html = admin_client.get(URL).content.decode()
    first, rest = html.split("<details", 1)
    assert 'id="id_q"' in first and 'id="id_status"' in first
    assert 'id="id_counsellor"' in rest and 'id="id_sort"' in rest and 'id="id_per_page"' in rest
    assert more(html).startswith('<details class="filters-more mb-2">') and "More filters</summary>" in more(html)
    # Status alone is in view: still folded.
    assert " open>" not in more(admin_client.get(URL, {"status": "pending"}).content.decode())
    # Filters in use unfold, and say how many.
    opened = more(admin_client.get(URL, {"mode": "online", "sort": "oldest"}).content.decode())
    assert " open>" in opened and "More filters (2 in use)</summary>" in opened
    # So does one with an error, to show it.
    opened = more(admin_client.get(URL, {"date_from": "31/31/2026"}).content.decode())
    assert " open>" in opened and "(1 in use)" in opened


def test_the_folded_filters_count_only_what_differs_from_their_defaults(admin_client, counsellor):
    """The form sends every field, its selects' untouched first choices too (sort "newest",
    25 per page): filtering by status alone, the folded filters stay folded."""
    sent = {"q": "", "status": "pending", "counsellor": "", "session_type": "", "mode": "", "date_from": ""}
    sent |= {"date_to": "", "sort": "newest", "per_page": "25"}
    html = admin_client.get(URL, sent).content.decode()
    assert '<details class="filters-more mb-2">' in html and "More filters</summary>" in html
    html = admin_client.get(URL, sent | {"sort": "oldest", "per_page": "50"}).content.decode()
    assert '<details class="filters-more mb-2" open>' in html and "More filters (2 in use)</summary>" in html


def test_the_built_css_rings_date_inputs_while_their_picker_button_has_focus():
    """The date filters (and the waitlist's dates): Chromium's picker button inside the input
    is not :focus-visible, so the ring comes from :focus-within (assets/app.css, built)."""
    from pathlib import Path

    built = (Path(__file__).resolve().parents[2] / "static/css/app.css").read_text()
    assert "input[type=date],input[type=time],input[type=datetime-local],input[type=month]):focus-within{" in built
