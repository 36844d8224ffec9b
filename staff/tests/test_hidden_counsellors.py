"""Counsellors whose profile clients do not see (Counsellor.is_active False: just joined, or
back after their account was deactivated and reactivated) still work: staff schedule them
everywhere. Clients still do not see them. Someone whose staff account is deactivated (they
have left) is not scheduled; a profile without an account is, by administrators."""

from __future__ import annotations

import io
import json
import re
from datetime import time, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from bookings import selectors, services
from bookings.errors import SlotUnavailable
from bookings.models import Booking, Counsellor, Mode, Slot, Status, WeeklyHours
from conftest import next_weekday_at
from staff.models import User
from staff.services import staff_deactivate, staff_reactivate
from staff.tests.conftest import CONSENTED


@pytest.fixture
def hidden(counsellor):
    """Asha, shown to no client."""
    Counsellor.objects.filter(pk=counsellor.pk).update(is_active=False)
    counsellor.refresh_from_db()
    return counsellor


@pytest.fixture
def booked(make_booking, hidden, slot):
    return make_booking(Status.CONFIRMED, slot=slot)


@pytest.fixture
def free(hidden):
    start = next_weekday_at(16, days_ahead=6)
    return Slot.objects.create(counsellor=hidden, start=start, end=start + timedelta(minutes=60))


def options(html: str, name: str) -> set[int]:
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S)
    return {int(v) for v in re.findall(r'<option value="(\d+)"', select.group(0))} if select else set()


def test_a_hidden_counsellors_booking_can_be_moved_to_their_free_time(counsellor_client, booked, free):
    html = counsellor_client.get(reverse("staff:booking_detail", args=[booked.pk])).content.decode()
    assert options(html, "move-slot") == {free.pk} and "No other free slots" not in html
    response = counsellor_client.post(
        reverse("staff:booking_move", args=[booked.pk]), {"move-slot": free.pk, "move-version": booked.version}
    )
    assert response.status_code == 302
    booked.refresh_from_db()
    assert booked.slot_id == free.pk and mail.outbox[-1].to == [booked.email]


def test_after_deactivation_and_reactivation_staff_schedule_them_again(
    admin_client, admin_user, counsellor_user, counsellor, booked, free
):
    """The Team page's round trip: the profile stays hidden, the counsellor is back at work."""
    Counsellor.objects.filter(pk=counsellor.pk).update(is_active=True)
    staff_deactivate(user=counsellor_user, by=admin_user)
    detail = reverse("staff:booking_detail", args=[booked.pk])
    assert free.pk not in options(admin_client.get(detail).content.decode(), "move-slot")
    staff_reactivate(user=counsellor_user, by=admin_user)
    assert not Counsellor.objects.get(pk=counsellor.pk).is_active  # clients still do not see her
    html = admin_client.get(detail).content.decode()
    assert options(html, "move-slot") == {free.pk} and "staff account is deactivated" not in html


def test_a_hidden_counsellor_publishes_times_from_the_calendar(counsellor_client, hidden):
    html = counsellor_client.get(reverse("staff:calendar")).content.decode()
    assert f'<option value="{hidden.pk}">Asha Menon</option>' in html
    day = next_weekday_at(10, days_ahead=5)
    data = {
        "counsellor": hidden.pk,
        "start": day.isoformat(),
        "end": (day + timedelta(hours=2)).isoformat(),
        "session_minutes": 50,
        "buffer_minutes": 10,
    }
    response = counsellor_client.post(reverse("staff:calendar_publish"), data)
    assert response.status_code == 200 and response.json()["created"] == 2


def test_the_calendar_lists_everyone_at_work_for_administrators(
    admin_client, hidden, other_counsellor, other_counsellor_user
):
    no_account = Counsellor.objects.create(display_name="Meera Shah", slug="meera")
    html = admin_client.get(reverse("staff:calendar")).content.decode()
    for c in (hidden, other_counsellor, no_account):
        assert f'<option value="{c.pk}">{c.display_name}</option>' in html
    User.objects.filter(pk=other_counsellor_user.pk).update(is_active=False)  # Rohan has left
    html = admin_client.get(reverse("staff:calendar")).content.decode()
    assert f'<option value="{other_counsellor.pk}">' not in html and f'<option value="{hidden.pk}">' in html


def test_a_new_booking_offers_a_hidden_counsellors_times(admin_client, session_type, hidden, slot):
    typed = {
        **CONSENTED,
        "age": "on",
        "language": "en",
        "client_name": "Nisha Rao",
        "email": "nisha@example.com",
        "session_type": session_type.pk,
        "mode": Mode.ONLINE,
        "counsellor": hidden.pk,
    }
    html = admin_client.post(reverse("staff:booking_new"), {**typed, "_refresh": "1"}).content.decode()
    assert options(html, "counsellor") >= {hidden.pk} and options(html, "slot") == {slot.pk}
    response = admin_client.post(reverse("staff:booking_new"), {**typed, "slot": slot.pk, "status": Status.APPROVED})
    assert response.status_code == 302
    booking = Booking.objects.get(email="nisha@example.com")
    assert (booking.status, booking.slot_id, booking.counsellor_id) == (Status.APPROVED, slot.pk, hidden.pk)


def test_a_hidden_counsellors_session_can_be_dragged_on_the_calendar(counsellor_client, booked, free):
    response = counsellor_client.post(
        reverse("staff:booking_drop", args=[booked.pk]), {"start": free.start.isoformat(), "version": booked.version}
    )
    assert response.status_code == 200 and json.loads(response.content)["ok"] is True
    booked.refresh_from_db()
    assert booked.slot_id == free.pk


def test_clients_still_do_not_see_a_hidden_counsellors_times(session_type, hidden, free, other_slot):
    shown = set(selectors.slots_free_for_client(session_type=session_type, counsellor=None, mode=Mode.ONLINE))
    assert free not in shown and other_slot in shown
    assert free in selectors.slots_free_for_staff()


def test_a_profile_without_an_account_is_scheduled_by_administrators(admin_client, make_booking, session_type):
    meera = Counsellor.objects.create(display_name="Meera Shah", slug="meera", is_active=False)
    start = next_weekday_at(12, days_ahead=4)
    meeras = Slot.objects.create(counsellor=meera, start=start, end=start + timedelta(minutes=60))
    booking = make_booking(Status.PENDING, counsellor=meera)
    html = admin_client.get(reverse("staff:booking_detail", args=[booking.pk])).content.decode()
    assert options(html, "approve-slot") == {meeras.pk} and "staff account is deactivated" not in html
    response = admin_client.post(
        reverse("staff:booking_approve", args=[booking.pk]),
        {"approve-slot": meeras.pk, "approve-version": booking.version},
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert (booking.status, booking.slot_id) == (Status.APPROVED, meeras.pk)


def test_the_services_refuse_a_counsellor_who_has_left(admin_user, counsellor_user, make_booking, counsellor, slot):
    """Whatever a page offered: their account is deactivated, so they cannot hold a session."""
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    User.objects.filter(pk=counsellor_user.pk).update(is_active=False)
    with pytest.raises(SlotUnavailable, match="Asha Menon's staff account is deactivated"):
        services.booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_a_hidden_counsellor_gets_their_daily_summary(make_booking, hidden, slot, oncommit):
    Counsellor.objects.filter(pk=hidden.pk).update(daily_summary=True)
    booking = make_booking(Status.CONFIRMED, slot=slot)
    with oncommit():
        assert services.daily_summaries_send(today=timezone.localdate(slot.start)) == 1
    assert mail.outbox[-1].to == ["asha@example.com"] and booking.ack_id in mail.outbox[-1].body


def test_weekly_hours_publish_a_hidden_counsellors_times_but_not_a_leavers(hidden, other_counsellor):
    today = timezone.localdate() + timedelta(days=1)
    for c in (hidden, other_counsellor):
        WeeklyHours.objects.create(counsellor=c, weekday=today.weekday(), start_time=time(9), end_time=time(12))
    User.objects.filter(pk=other_counsellor.user_id).update(is_active=False)
    call_command("generate_slots", "--weeks", "2", stdout=io.StringIO())
    assert Slot.objects.filter(counsellor=hidden).exists()
    assert not Slot.objects.filter(counsellor=other_counsellor).exists()
