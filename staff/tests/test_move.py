"""Staff moving a booking to another slot: from the detail page, and by dragging it on the
calendar. Same service as a client's move; scoped like every staff view."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings.models import Actor, Booking, BookingEvent, Slot, Status
from conftest import next_weekday_at
from staff.tests.conftest import HX


@pytest.fixture
def booked(make_booking, counsellor, slot):
    return make_booking(Status.CONFIRMED, slot=slot, client_name="Kavya Iyer")


@pytest.fixture
def free(counsellor):
    start = next_weekday_at(16, days_ahead=6)  # an even hour: make_booking's slots are at odd hours
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


def drop(client, booking, start, version=None, **headers):
    return client.post(
        reverse("staff:booking_drop", args=[booking.pk]),
        {"start": start.isoformat(), "version": booking.version if version is None else version},
        **headers,
    )


# --- The detail page ------------------------------------------------------------------


def test_detail_offers_a_move_with_the_free_slots(counsellor_client, booked, free, slot):
    html = counsellor_client.get(reverse("staff:booking_detail", args=[booked.pk])).content.decode()
    assert 'id="action-move"' in html
    assert f'<option value="{free.pk}"' in html and f'<option value="{slot.pk}"' not in html


def test_moving_from_the_detail_page_emails_the_client(admin_client, admin_user, booked, free):
    response = admin_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": free.pk, "move-version": booked.version}, **HX
    )
    assert response.status_code == 200 and response["HX-Trigger"] == "bookingChanged"
    assert "Moved to" in response.content.decode()
    booked.refresh_from_db()
    assert booked.slot_id == free.pk and booked.status == Status.CONFIRMED
    event = BookingEvent.objects.get(booking=booked, action="rescheduled")
    assert event.actor == Actor.STAFF and event.actor_user == admin_user
    assert mail.outbox[-1].to == [booked.email] and "new time" in mail.outbox[-1].subject


@pytest.mark.parametrize("client_asked", [False, True])
def test_a_move_the_client_asked_for_is_not_told_as_the_clinics(admin_client, booked, free, client_asked):
    """They phoned to ask (inside the cutoff they cannot move online): their email must not
    say the clinic moved their session and ask them to get in touch if it does not suit."""
    html = admin_client.get(reverse("staff:booking_detail", args=[booked.pk])).content.decode()
    assert 'name="move-client_asked"' in html and "The client asked for this move" in html
    data = {"move-slot": free.pk, "move-version": booked.version}
    if client_asked:
        data["move-client_asked"] = "on"
    assert admin_client.post(reverse("staff:booking_move", args=[booked.pk]), data).status_code == 302
    body = mail.outbox[-1].body
    assert ("Your session has moved, as you asked." in body) is client_asked
    assert ("The clinic has moved your session to a new time." in body) is not client_asked
    assert ("If the new time does not suit you, please contact us." in body) is not client_asked


def test_a_stale_move_is_refused_with_the_current_state(admin_client, booked, free):
    response = admin_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": free.pk, "move-version": booked.version + 1}
    )
    assert response.status_code == 409
    assert "changed by someone else" in response.content.decode()
    booked.refresh_from_db()
    assert booked.slot_id != free.pk and not mail.outbox


def test_another_counsellor_cannot_move_the_booking(login, other_counsellor_user, other_counsellor, booked, free):
    browser = login(other_counsellor_user)
    response = browser.post(reverse("staff:booking_move", args=[booked.pk]), {"move-slot": free.pk, "move-version": 1})
    assert response.status_code == 404
    response = drop(browser, booked, free.start)
    assert response.status_code == 404
    booked.refresh_from_db()
    assert booked.slot_id != free.pk


# --- Dragging on the calendar -----------------------------------------------------------


def test_the_feed_marks_upcoming_movable_sessions_draggable(admin_client, booked, make_booking, counsellor):
    past_start = timezone.now() - timedelta(days=1)
    past = Slot.objects.create(counsellor=counsellor, start=past_start, end=past_start + timedelta(hours=1))
    make_booking(Status.COMPLETED, slot=past)
    response = admin_client.get(
        reverse("staff:calendar_feed"),
        {
            "start": (timezone.now() - timedelta(days=3)).isoformat(),
            "end": (timezone.now() + timedelta(days=20)).isoformat(),
        },
    )
    events = {e["url"]: e for e in json.loads(response.content) if "url" in e}
    mine = events.pop(reverse("staff:booking_detail", args=[booked.pk]))
    assert mine["startEditable"] is True  # only its start: the calendar never lets a session's length change
    assert mine["extendedProps"]["version"] == booked.version
    assert mine["extendedProps"]["dropUrl"] == reverse("staff:booking_drop", args=[booked.pk])
    (completed,) = events.values()
    assert "startEditable" not in completed and "dropUrl" not in completed["extendedProps"]


def test_dropping_on_a_free_slot_moves_the_booking(counsellor_client, booked, free):
    response = drop(counsellor_client, booked, free.start)
    data = json.loads(response.content)
    assert response.status_code == 200 and data["ok"] is True and response["HX-Trigger"] == "bookingChanged"
    assert booked.ack_id in data["message"]
    booked.refresh_from_db()
    assert booked.slot_id == free.pk and data["version"] == booked.version
    assert mail.outbox[-1].to == [booked.email]


def test_dropping_where_there_is_no_free_slot_is_refused(counsellor_client, booked, free, other_slot):
    for start in (free.start + timedelta(minutes=15), other_slot.start):  # between slots; another counsellor's
        response = drop(counsellor_client, booked, start)
        data = json.loads(response.content)
        assert response.status_code == 409 and data["ok"] is False and "no free slot" in data["message"]
    booked.refresh_from_db()
    assert booked.slot_id != free.pk and not mail.outbox


def test_dropping_with_a_stale_version_or_bad_input_is_refused(admin_client, booked, free):
    response = drop(admin_client, booked, free.start, version=booked.version + 5)
    assert response.status_code == 409 and json.loads(response.content)["code"] == "stale"
    response = admin_client.post(reverse("staff:booking_drop", args=[booked.pk]), {"start": "soon", "version": "x"})
    assert response.status_code == 400
    for start in ("2024-02-30T10:00:00", "2026-01-01T10:00:00+99:00", "0001-01-01T00:00:00"):
        response = admin_client.post(reverse("staff:booking_drop", args=[booked.pk]), {"start": start, "version": "1"})
        assert response.status_code == 400, start
    for version in ("²", "9" * 30):  # digits to str.isdigit(), not numbers int() or a bigint take
        response = drop(admin_client, booked, free.start, version=version)
        assert response.status_code == 400
    booked.refresh_from_db()
    assert booked.slot_id != free.pk


# --- Handing a booking to another counsellor ------------------------------------------


def move_options(html: str) -> list[str]:
    """The move list's options' values, in order ("" for the empty choice)."""
    select = re.search(r'<select name="move-slot".*?</select>', html, re.S).group(0)
    return re.findall(r'<option value="(\d*)"', select)


@pytest.fixture
def rohans(other_counsellor):
    start = next_weekday_at(15, days_ahead=7)
    return Slot.objects.create(counsellor=other_counsellor, start=start, end=start + timedelta(minutes=60))


def test_the_move_list_takes_a_choice(admin_client, booked, free):
    """Nothing is selected, so one Enter cannot move the session to the earliest free time."""
    html = admin_client.get(reverse("staff:booking_detail", args=[booked.pk])).content.decode()
    assert move_options(html) == ["", str(free.pk)] and '<option value="" selected>Choose a time</option>' in html
    response = admin_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": "", "move-version": booked.version}
    )
    assert response.status_code == 400 and "Choose the new time." in response.content.decode()
    booked.refresh_from_db()
    assert booked.slot_id != free.pk and not mail.outbox


def test_an_administrator_is_shown_the_bookings_counsellor_first_then_anyones(
    admin_client, booked, free, rohans, other_counsellor
):
    detail = reverse("staff:booking_detail", args=[booked.pk])
    html = admin_client.get(detail).content.decode()
    assert move_options(html) == ["", str(free.pk)]  # Asha's, as the booking is hers
    assert (
        'id="move-times-of"' in html and f'action="{reverse("staff:booking_move", args=[booked.pk])}?times_of=' in html
    )
    response = admin_client.get(detail, {"times_of": other_counsellor.pk}, **HX)
    assert move_options(response.content.decode()) == ["", str(rohans.pk)]


def test_a_counsellor_moves_only_among_their_own_times(counsellor_client, booked, free, rohans):
    html = counsellor_client.get(reverse("staff:booking_detail", args=[booked.pk])).content.decode()
    assert move_options(html) == ["", str(free.pk)] and 'id="move-times-of"' not in html
    response = counsellor_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": rohans.pk, "move-version": booked.version}
    )
    assert response.status_code == 400 and "That slot is no longer free" in response.content.decode()
    booked.refresh_from_db()
    assert booked.slot_id != rohans.pk and not mail.outbox


def test_an_administrator_hands_a_booking_to_another_counsellor(
    admin_client, login, counsellor_user, other_counsellor_user, other_counsellor, booked, rohans, slot
):
    booked.concerns = "I have trouble sleeping"
    booked.meeting_url = "https://meet.example/asha-private"
    booked.save(update_fields=["concerns", "meeting_url"])
    response = admin_client.post(
        f"{reverse('staff:booking_move', args=[booked.pk])}?times_of={other_counsellor.pk}",
        {"move-slot": rohans.pk, "move-version": booked.version},
        **HX,
    )
    assert (
        response.status_code == 200 and "with Rohan Kapoor. The client has been emailed." in response.content.decode()
    )
    booked.refresh_from_db()
    assert (booked.slot_id, booked.counsellor_id, booked.status) == (rohans.pk, other_counsellor.pk, Status.CONFIRMED)
    # Asha's own meeting link is not Rohan's: the session uses his room.
    assert booked.meeting_url == ""
    # The history says who holds it now, and who did.
    event = BookingEvent.objects.get(booking=booked, action="rescheduled")
    assert event.moved_from == slot.start and event.moved_to == rohans.start
    assert "now with Rohan Kapoor (was Asha Menon)" in event.reason and "meeting link was cleared" in event.reason
    # The client's email says who they will see now, instead of whom.
    email, asha_told, rohan_told = sorted(mail.outbox, key=lambda m: m.to != [booked.email])
    assert email.to == [booked.email] and "With: Rohan Kapoor, instead of Asha Menon" in email.body
    assert "Rohan Kapoor, instead of Asha Menon" in email.alternatives[0][0]
    # Both counsellors are told: Asha that the session left her calendar (no link to a page she
    # can no longer open), Rohan that it is his now. Neither email names the client.
    if asha_told.to != [counsellor_user.email]:
        asha_told, rohan_told = rohan_told, asha_told
    assert asha_told.to == [counsellor_user.email] and rohan_told.to == [other_counsellor_user.email]
    assert asha_told.subject == f"Session handed to Rohan Kapoor: {booked.ack_id}"
    assert reverse("staff:booking_detail", args=[booked.pk]) not in asha_told.body
    assert rohan_told.subject.startswith(f"Session handed to you: {booked.ack_id}, ")
    assert "It was Asha Menon's" in rohan_told.body
    assert reverse("staff:booking_detail", args=[booked.pk]) in rohan_told.body
    for told in (asha_told, rohan_told):
        assert booked.client_name not in told.body and "I have trouble sleeping" not in told.body
    # The client's words go with the booking: Rohan reads them, Asha no longer finds it.
    detail = reverse("staff:booking_detail", args=[booked.pk])
    rohan = login(other_counsellor_user)
    assert "I have trouble sleeping" in rohan.get(detail).content.decode()
    asha = login(counsellor_user)
    assert asha.get(detail).status_code == 404
    assert booked.ack_id not in asha.get(reverse("staff:booking_list")).content.decode()
    assert booked.ack_id in rohan.get(reverse("staff:booking_list")).content.decode()


def test_a_booking_of_a_counsellor_who_left_is_handed_over_from_its_page(
    admin_client, admin_user, counsellor_user, booked, free, rohans
):
    """Their open bookings are left for review when they leave: the page says why and shows
    someone else's times first."""
    from staff.services import staff_deactivate

    staff_deactivate(user=counsellor_user, by=admin_user)  # as on the Team page
    html = admin_client.get(reverse("staff:booking_detail", args=[booked.pk])).content.decode()
    assert "Asha Menon's staff account is deactivated. Move the booking to another counsellor's time" in html
    assert move_options(html) == ["", str(rohans.pk)]
    response = admin_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": free.pk, "move-version": booked.version}
    )
    assert response.status_code == 400  # her own free time: she can no longer hold it
    response = admin_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": rohans.pk, "move-version": booked.version}
    )
    assert response.status_code == 302
    booked.refresh_from_db()
    assert booked.slot_id == rohans.pk


def test_a_stale_move_keeps_the_time_chosen(admin_client, booked, free):
    Booking.objects.filter(pk=booked.pk).update(version=booked.version + 1)
    html = admin_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": free.pk, "move-version": booked.version}
    ).content.decode()
    assert "changed by someone else" in html
    assert (
        f'<option value="{free.pk}" selected>' in html and f'name="move-version" value="{booked.version + 1}"' in html
    )
