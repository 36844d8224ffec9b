"""The times written into the booking's history (an approval's, a move's) read as every other
staff date does, "Wed 9 Dec, 11:00 IST" (when_short), not "Wed 09 Dec 2026": on the dashboard's
recent activity, the booking's timeline, and the messages after a move. In English, like the
portal, even when a client reading in Hindi made the change."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from bookings import services
from bookings.models import Actor, BookingEvent, Slot, Status
from bookings.templatetags.mindsettler import when_short

pytestmark = pytest.mark.django_db


def on_a_single_digit_day(counsellor, hour: int) -> Slot:
    """A slot at `hour` on the next 9th at least four days ahead (a day "%d" writes as "09"):
    so at most 36 days ahead, within the booking horizon (BOOKING_HORIZON_DAYS, 60), which
    the 9th of the month after next, used before, was not from the 1st to the 10th."""
    today = timezone.localdate()
    month, year = today.month, today.year
    if today.day > 5:
        month, year = month % 12 + 1, year + month // 12
    start = timezone.make_aware(datetime(year, month, 9, hour), timezone.get_current_timezone())
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))


def test_an_approvals_time_reads_as_the_portals_other_dates(admin_client, admin_user, counsellor, make_booking):
    slot = on_a_single_digit_day(counsellor, 11)
    request = make_booking(Status.PENDING, counsellor=counsellor)
    services.booking_approve(booking_id=request.pk, slot_id=slot.pk, user=admin_user)
    said = f"Approved for {when_short(slot.start)}"
    assert " 9 " in said and " 09 " not in said
    assert BookingEvent.objects.get(booking=request, to_status=Status.APPROVED).reason == said
    assert said in admin_client.get(reverse("staff:dashboard")).content.decode()  # recent activity
    assert said in admin_client.get(reverse("staff:booking_detail", args=[request.pk])).content.decode()


def test_a_clients_move_made_in_hindi_is_recorded_in_the_portals_words(make_booking, counsellor):
    old = on_a_single_digit_day(counsellor, 11)
    new = on_a_single_digit_day(counsellor, 14)
    booking = make_booking(Status.CONFIRMED, slot=old)
    with translation.override("hi"):
        services.booking_reschedule(booking_id=booking.pk, slot_id=new.pk, actor=Actor.CLIENT)
    reason = BookingEvent.objects.get(booking=booking, action="rescheduled").reason
    assert reason == f"From {when_short(old.start)} to {when_short(new.start)}"
    assert " 09 " not in reason


def test_moving_from_the_detail_page_says_the_new_time_as_the_portal_does(admin_client, counsellor, make_booking):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    new = on_a_single_digit_day(counsellor, 14)
    response = admin_client.post(
        reverse("staff:booking_move", args=[booking.pk]),
        {"move-slot": new.pk, "move-version": booking.version},
        follow=True,
    )
    assert f"Moved to {when_short(new.start)}. The client has been emailed." in response.content.decode()
