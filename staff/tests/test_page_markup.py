"""The portal's pages with several forms: every id once, every label on its own field, and the
labels and hints a member of staff reads (once "(optional)", times with their zone)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings.models import Mode, Slot, Status
from staff.tests.conftest import HX


class Markup(HTMLParser):
    """The ids of a page, its labels' `for` and text, and the ids that aria-describedby names."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: Counter[str] = Counter()
        self.label_for: list[str] = []
        self.label_text: dict[str, str] = {}
        self.described_by: list[str] = []
        self._label: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids[a["id"]] += 1
        if a.get("aria-describedby"):
            self.described_by.extend(a["aria-describedby"].split())
        if tag == "label" and a.get("for"):
            self.label_for.append(a["for"])
            self._label = a["for"]
            self.label_text[self._label] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._label is not None:
            self.label_text[self._label] += data

    def label(self, for_id: str) -> str:
        return " ".join(self.label_text[for_id].split())


def assert_ids_sound(html: str) -> Markup:
    """No id twice; each label, and each aria-describedby, points at exactly one element."""
    page = Markup(html)
    assert {i: n for i, n in page.ids.items() if n > 1} == {}
    assert page.label_for, "no labels: not the page expected"
    assert [f for f in page.label_for if page.ids[f] != 1] == []
    assert [d for d in page.described_by if page.ids[d] != 1] == []
    return page


def detail(booking) -> str:
    return reverse("staff:booking_detail", args=[booking.pk])


def action(name: str, booking) -> str:
    return reverse(f"staff:booking_{name}", args=[booking.pk])


@pytest.fixture
def pending(make_booking, counsellor, slot):
    return make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot)


@pytest.fixture
def past_confirmed(make_booking, counsellor):
    """Every action but approve and reject: complete, no-show, move, cancel, meeting link."""
    start = timezone.now() - timedelta(days=1)
    held = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    return make_booking(Status.CONFIRMED, slot=held)


# --- The booking page -------------------------------------------------------------------


def test_a_pending_booking_page_has_one_of_each_id(admin_client, pending, slot):
    page = assert_ids_sound(admin_client.get(detail(pending)).content.decode())
    # The QA report: "Reason" under Cancel booking focused Reject's reason box.
    assert page.ids["id_cancel-reason"] == 1 and page.ids["id_reject-reason"] == 1
    assert page.label("id_cancel-reason") == "Reason"
    assert {"id_approve-version", "id_reject-version", "id_cancel-version"} <= set(page.ids)


def test_a_held_booking_page_has_one_of_each_id(admin_client, past_confirmed, slot):
    html = admin_client.get(detail(past_confirmed)).content.decode()
    page = assert_ids_sound(html)
    assert {"id_complete-version", "id_no_show-version", "id_move-version", "id_cancel-version"} <= set(page.ids)
    assert "id_meeting-meeting_url" in page.ids


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_ids_stay_unique_when_a_form_comes_back_with_errors(admin_client, pending, headers):
    # Each form re-rendered with its errors, as a whole page and as the htmx fragment.
    posts = [
        ("reject", {"reject-version": pending.version, "reject-reason": " "}),
        ("cancel", {"cancel-version": pending.version, "cancel-reason": ""}),
        ("approve", {"approve-version": pending.version, "approve-slot": "999999"}),
        ("meeting_url", {"meeting-meeting_url": "javascript:alert(1)"}),
    ]
    for name, data in posts:
        response = admin_client.post(action(name, pending), data, **headers)
        assert response.status_code == (200 if headers else 400), name
        html = response.content.decode()
        assert "field-error" in html, name
        assert_ids_sound(html)


def test_the_prefixed_forms_are_what_the_actions_read(admin_client, pending):
    # An unprefixed post (an old page) is refused as incomplete, not misread.
    response = admin_client.post(action("reject", pending), {"version": pending.version, "reason": "No room"})
    assert response.status_code == 400
    pending.refresh_from_db()
    assert pending.status == Status.PENDING
    response = admin_client.post(action("reject", pending), {"reject-version": pending.version, "reject-reason": "x"})
    assert response.status_code == 302


# --- Availability -----------------------------------------------------------------------


def availability(counsellor, name: str = "") -> str:
    if not name:
        return reverse("staff:availability", args=[counsellor.pk])
    return reverse(f"staff:availability_{name}", args=[counsellor.pk])


def test_the_availability_page_has_one_of_each_id(counsellor_client, counsellor):
    page = assert_ids_sound(counsellor_client.get(availability(counsellor)).content.decode())
    # The QA report: "From" under Blocked periods focused the one-off slot's "Starts".
    assert page.label("id_blocked-start") == "From" and page.label("id_slot-start") == "Starts"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("hours_add", {"hours-weekday": 0, "hours-start_time": "", "hours-end_time": "13:00"}),
        ("generate", {"generate-weeks": 99}),
        ("slot_add", {"slot-start": "not a time", "slot-minutes": 60}),
        ("blocked_add", {"blocked-start": "", "blocked-end": "2020-01-01T10:00"}),
        ("room", {"room-meeting_url": "not a link"}),
    ],
)
def test_availability_ids_stay_unique_when_a_form_comes_back_with_errors(counsellor_client, counsellor, name, data):
    response = counsellor_client.post(availability(counsellor, name), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "field-error" in html
    page = assert_ids_sound(html)
    prefix = next(iter(data)).split("-")[0]
    assert any(i.startswith(f"id_{prefix}-") for i in page.ids)


def test_availability_times_say_their_zone_and_labels_say_optional_once(counsellor_client, counsellor):
    html = counsellor_client.get(availability(counsellor)).content.decode()
    page = Markup(html)
    for field in ("id_slot-start", "id_blocked-start", "id_blocked-end"):
        assert f'id="{field}-hint">In India Standard Time (IST).</span>' in html, field
    assert page.label("id_blocked-reason") == "Reason (optional)"
    assert 'id="id_blocked-reason-hint">Only staff see it.' in html


# --- New booking ------------------------------------------------------------------------


def test_the_new_booking_page_has_one_of_each_id_and_honest_labels(admin_client, slot):
    page = assert_ids_sound(admin_client.get(reverse("staff:booking_new")).content.decode())
    assert page.label("id_phone") == "Phone (optional)"
    response = admin_client.post(reverse("staff:booking_new"), {"client_name": "", "mode": Mode.ONLINE})
    assert response.status_code == 400
    assert_ids_sound(response.content.decode())


def test_slot_choices_name_the_zone(admin_client, pending, slot):
    html = admin_client.get(detail(pending)).content.decode()
    start, end = timezone.localtime(slot.start), timezone.localtime(slot.end)
    assert f"{start:%H:%M}\N{EN DASH}{end:%H:%M} IST · Asha Menon</option>" in html
    html = admin_client.post(
        reverse("staff:booking_new"), {"_refresh": "1", "counsellor": slot.counsellor_id}
    ).content.decode()
    # The pending request asked for it, which the list says.
    assert f"{start:%H:%M}\N{EN DASH}{end:%H:%M} IST · Asha Menon · another request asked for it</option>" in html


def test_the_reject_reason_is_not_called_optional(admin_client, pending):
    page = Markup(admin_client.get(detail(pending)).content.decode())
    assert page.label("id_reject-reason") == "Reason"
    # ... because without a common reason it is needed.
    response = admin_client.post(action("reject", pending), {"reject-version": pending.version, "reject-reason": ""})
    assert response.status_code == 400 and "Give a reason for rejecting" in response.content.decode()


def test_times_of_day_name_their_zone(admin_client, counsellor_client, counsellor, make_booking):
    start = timezone.localtime().replace(hour=23, minute=0, second=0, microsecond=0)
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))
    make_booking(Status.CONFIRMED, slot=slot)
    zone = start.tzname()
    # Today's sessions give the end too, the zone named once.
    assert (
        f"23:00\N{EN DASH}23:50\N{NO-BREAK SPACE}{zone}</time>"
        in admin_client.get(reverse("staff:dashboard")).content.decode()
    )
    counsellor_client.post(
        reverse("staff:availability_hours_add", args=[counsellor.pk]),
        {
            "hours-weekday": 0,
            "hours-start_time": "09:00",
            "hours-end_time": "12:00",
            "hours-session_minutes": 50,
            "hours-buffer_minutes": 10,
        },
    )
    page = counsellor_client.get(reverse("staff:availability", args=[counsellor.pk])).content.decode()
    hours = page[page.index('id="hours-h"') :]
    assert f"In India Standard Time ({zone})." in hours[: hours.index("Monday 09:00")]
    assert 'Remove<span class="sr-only"> Monday 09:00\N{EN DASH}12:00</span>' in page
