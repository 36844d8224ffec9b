"""After a session: completed or no-show; late cancellations; the monthly outcomes on the dashboard."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from bookings.errors import TooLate, TransitionNotAllowed
from bookings.models import Actor, Booking, BookingEvent, LinkToken, Payment, Slot, Status
from bookings.selectors import slots_free
from bookings.services import booking_cancel, booking_no_show
from bookings.tokens import token_create
from staff.selectors import outcomes_in_month
from staff.tests.conftest import HX

pytestmark = pytest.mark.django_db


def past_slot(counsellor, *, hours_ago: float = 3) -> Slot:
    start = (timezone.now() - timedelta(hours=hours_ago)).replace(second=0, microsecond=0)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


def future_slot(counsellor, *, hours: float) -> Slot:
    start = (timezone.now() + timedelta(hours=hours)).replace(second=0, microsecond=0)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


@pytest.fixture
def held(make_booking, counsellor):
    """A confirmed session that ended two hours ago."""
    return make_booking(Status.CONFIRMED, slot=past_slot(counsellor), client_name="Kavya Iyer")


# --- No-shows -----------------------------------------------------------------------------


def test_a_no_show_is_final_recorded_and_keeps_the_slot(held, admin_user, make_booking, oncommit):
    with oncommit():
        booking_no_show(booking_id=held.pk, user=admin_user)
    held.refresh_from_db()
    assert held.status == Status.NO_SHOW
    event = BookingEvent.objects.get(booking=held)
    assert (event.from_status, event.to_status, event.actor, event.actor_user) == (
        Status.CONFIRMED,
        Status.NO_SHOW,
        Actor.STAFF,
        admin_user,
    )
    assert mail.outbox == []  # no email to the client
    with pytest.raises(TransitionNotAllowed):
        booking_no_show(booking_id=held.pk, user=admin_user)  # repeated
    # The counsellor's time was used: nobody else can take the slot.
    with pytest.raises(IntegrityError), transaction.atomic():
        make_booking(Status.APPROVED, slot=held.slot)


def test_a_session_that_has_not_ended_cannot_be_a_no_show(make_booking, counsellor, admin_user):
    upcoming = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=-0.5))  # started, not ended
    with pytest.raises(TooLate):
        booking_no_show(booking_id=upcoming.pk, user=admin_user)
    assert Booking.objects.get(pk=upcoming.pk).status == Status.CONFIRMED


def test_staff_detail_offers_no_show_next_to_completed_only_after_the_end(admin_client, make_booking, counsellor, held):
    html = admin_client.get(reverse("staff:booking_detail", args=[held.pk])).content.decode()
    assert "Mark as completed" in html and "Mark no-show" in html
    upcoming = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=30))
    html = admin_client.get(reverse("staff:booking_detail", args=[upcoming.pk])).content.decode()
    assert "Mark no-show" not in html and "after the session ends" in html


def test_a_session_whose_time_has_passed_offers_moving_and_cancelling_only_as_the_clinics_doing(
    admin_client, make_booking, counsellor, held
):
    html = admin_client.get(reverse("staff:booking_detail", args=[held.pk])).content.decode()
    after = html[html.index('id="action-after-the-fact"') :]
    assert "The session did not take place because of the clinic?" in after
    assert "Move to another slot" in after and "Cancel booking" in after and "(the client is refunded in full)" in after
    assert "The client asked to cancel" not in html and "hours away" not in html
    assert "This booking is paid: cancelling starts a full refund." not in html
    upcoming = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=30))
    html = admin_client.get(reverse("staff:booking_detail", args=[upcoming.pk])).content.decode()
    assert "action-after-the-fact" not in html
    assert "The client asked to cancel" in html and "This booking is paid: cancelling starts a full refund." in html


def test_marking_a_no_show_from_the_portal(counsellor_client, held):
    url = reverse("staff:booking_no_show", args=[held.pk])
    unticked = counsellor_client.post(url, {"no_show-version": held.version}, **HX).content.decode()
    assert "Tick this to confirm the client did not come: a no-show is final." in unticked
    # Focus goes to the summary above the tick box (its link leads to it), not to the top.
    summary = re.search(r'<div class="error-summary"[^>]*>.*?</div>', unticked, re.S)
    assert summary and "autofocus" in summary.group() and 'href="#id_no_show-confirm"' in summary.group()
    assert Booking.objects.get(pk=held.pk).status == Status.CONFIRMED
    response = counsellor_client.post(url, {"no_show-version": held.version, "no_show-confirm": "on"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="booking-detail"' in html and "<html" not in html
    assert "Marked as a no-show." in html and "No-show" in html
    assert Booking.objects.get(pk=held.pk).status == Status.NO_SHOW
    # Again, with the old version: refused, nothing changes.
    response = counsellor_client.post(url, {"no_show-version": held.version, "no_show-confirm": "on"})
    assert response.status_code == 409


def test_another_counsellor_cannot_mark_it(login, other_counsellor_user, other_counsellor, held):
    response = login(other_counsellor_user).post(
        reverse("staff:booking_no_show", args=[held.pk]), {"no_show-version": 1, "no_show-confirm": "on"}
    )
    assert response.status_code == 404
    assert Booking.objects.get(pk=held.pk).status == Status.CONFIRMED


def test_the_client_page_shows_the_missed_session(client, held, admin_user):
    Payment.objects.create(
        booking=held,
        provider="sandbox",
        provider_payment_id="pay_noshow_1",
        amount=held.amount,
        currency=held.currency,
        status=Payment.State.CONFIRMED,
        confirmed_at=timezone.now() - timedelta(days=2),
    )
    booking_no_show(booking_id=held.pk, user=admin_user)
    raw = token_create(booking=held, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=30))
    html = client.get(f"/bookings/{raw}/").content.decode()
    assert "Session missed" in html and "The session was recorded as missed" in html
    assert "Amount paid" in html and "pay_noshow_1" in html  # kept: a no-show is not refunded
    assert "Add to calendar" not in html
    assert "free slot" not in html
    assert held.slot.pk not in set(slots_free(for_clients=False, start=held.slot.start).values_list("pk", flat=True))


# --- Late cancellations -----------------------------------------------------------------


def test_staff_cancelling_inside_the_cutoff_at_the_clients_request_is_late(
    make_booking, counsellor, admin_user, settings
):
    settings.CANCELLATION_CUTOFF_HOURS = 24
    inside = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=5))
    booking_cancel(booking_id=inside.pk, actor=Actor.STAFF, user=admin_user, reason="Client phoned", client_asked=True)
    late = BookingEvent.objects.get(booking=inside, action="late_cancellation")
    assert late.actor_user == admin_user and "4 hours before" in late.reason
    # The cancellation itself stays an ordinary transition.
    assert BookingEvent.objects.filter(booking=inside, action="transition", to_status=Status.CANCELLED).count() == 1

    clinic_decision = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=6))
    booking_cancel(booking_id=clinic_decision.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor unwell")
    outside = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=72))
    booking_cancel(booking_id=outside.pk, actor=Actor.STAFF, user=admin_user, reason="Client phoned", client_asked=True)
    assert not BookingEvent.objects.filter(booking__in=[clinic_decision, outside], action="late_cancellation").exists()


def test_the_cancel_form_records_a_late_cancellation_and_the_detail_shows_it(admin_client, make_booking, counsellor):
    booking = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=3))
    detail = reverse("staff:booking_detail", args=[booking.pk])
    html = admin_client.get(detail).content.decode()
    assert "The client asked to cancel" in html and "late cancellation" in html
    response = admin_client.post(
        reverse("staff:booking_cancel", args=[booking.pk]),
        {"cancel-version": booking.version, "cancel-reason": "Client phoned: unwell", "cancel-client_asked": "on"},
    )
    assert response.status_code == 302
    html = admin_client.get(detail).content.decode()
    assert "Late cancellation" in html and "late cancellation" in html  # badge and timeline


# --- Monthly outcomes on the dashboard --------------------------------------------------


@pytest.fixture
def month_of_sessions(make_booking, counsellor, other_counsellor, admin_user):
    for i in range(3):
        make_booking(Status.COMPLETED, slot=past_slot(counsellor, hours_ago=2 + i * 2))
    make_booking(Status.NO_SHOW, slot=past_slot(counsellor, hours_ago=9))
    late = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=2))
    booking_cancel(booking_id=late.pk, actor=Actor.STAFF, user=admin_user, reason="Client phoned", client_asked=True)
    early = make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=40))
    booking_cancel(booking_id=early.pk, actor=Actor.CLIENT, reason="Cancelled by the client")
    expired = make_booking(Status.APPROVED, slot=future_slot(counsellor, hours=4))
    booking_cancel(booking_id=expired.pk, actor=Actor.SYSTEM, reason="The time to pay ran out")  # not counted
    make_booking(Status.COMPLETED, slot=past_slot(other_counsellor, hours_ago=4))
    make_booking(Status.CONFIRMED, slot=future_slot(counsellor, hours=30))  # not an outcome yet


def fixture_months() -> list:
    """The months the fixture's sessions fall in (9 hours ago to 40 hours ahead): one, or two
    near the turn of a month."""
    now = timezone.now()
    return sorted({timezone.localdate(now + timedelta(hours=h)).replace(day=1) for h in (-9, 40)})


def test_outcomes_per_counsellor_in_one_query_a_month(
    month_of_sessions, admin_user, counsellor_user, django_assert_num_queries
):
    totals: dict[str, dict[str, int]] = {}
    for month in fixture_months():
        with django_assert_num_queries(1):
            rows = outcomes_in_month(user=admin_user, month=month)
        for r in rows:
            t = totals.setdefault(r["counsellor__display_name"], {"held": 0, "cancelled": 0, "late": 0, "no_shows": 0})
            for key in t:
                t[key] += r[key]
    assert totals["Asha Menon"] == {"held": 3, "cancelled": 2, "late": 1, "no_shows": 1}
    assert totals["Rohan Kapoor"] == {"held": 1, "cancelled": 0, "late": 0, "no_shows": 0}
    # A counsellor sees their own row only.
    mine = {
        r["counsellor__display_name"]
        for m in fixture_months()
        for r in outcomes_in_month(user=counsellor_user, month=m)
    }
    assert mine == {"Asha Menon"}
    # Other months are empty.
    assert outcomes_in_month(user=admin_user, month=fixture_months()[0] - timedelta(days=40)) == []


def test_the_dashboard_shows_one_month_with_its_totals(
    make_booking, counsellor, other_counsellor, admin_client, counsellor_client
):
    # Sessions in the middle of last month, whatever today is.
    month = (timezone.localdate().replace(day=1) - timedelta(days=1)).replace(day=15)
    for number, (who, status) in enumerate(
        [(counsellor, Status.COMPLETED), (counsellor, Status.NO_SHOW), (other_counsellor, Status.COMPLETED)]
    ):
        start = timezone.make_aware(datetime.combine(month, time(10 + number)))
        slot = Slot.objects.create(counsellor=who, start=start, end=start + timedelta(minutes=50))
        make_booking(status, slot=slot)
    html = admin_client.get(reverse("staff:dashboard"), {"month": f"{month:%Y-%m}"}).content.decode()
    section = html[html.index('id="outcomes"') :]
    assert f"Sessions in {month:%B %Y}" in section
    rows = re.findall(r"<tr>\s*<th scope=\"row\"[^>]*>([^<]+)</th>((?:\s*<td[^>]*>\d+</td>){4})", section)
    counts = {name: re.findall(r">(\d+)<", cells) for name, cells in rows}
    assert counts == {
        "Asha Menon": ["1", "0", "0", "1"],
        "Rohan Kapoor": ["1", "0", "0", "0"],
        "All counsellors": ["2", "0", "0", "1"],
    }
    html = counsellor_client.get(reverse("staff:dashboard"), {"month": f"{month:%Y-%m}"}).content.decode()
    section = html[html.index('id="outcomes"') :]
    assert "Asha Menon" in section and "Rohan Kapoor" not in section and "All counsellors" not in section


def test_the_dashboard_pages_through_months_but_not_into_the_future(admin_client):
    this_month = timezone.localdate().replace(day=1)
    earlier = (this_month - timedelta(days=1)).replace(day=1)
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert f"Sessions in {this_month:%B %Y}" in html
    assert f'href="?month={earlier:%Y-%m}#outcomes"' in html
    assert f"No sessions finished or were cancelled in {this_month:%B %Y}." in html
    # This month has no later one to go to; an earlier one leads back.
    assert "(later)" not in html
    html = admin_client.get(reverse("staff:dashboard") + f"?month={earlier:%Y-%m}").content.decode()
    assert f"Sessions in {earlier:%B %Y}" in html and f'href="?month={this_month:%Y-%m}#outcomes"' in html


@pytest.mark.parametrize(
    ("month", "problem"),
    [
        ("2026-13", "“2026-13” is not a month"),
        ("last month", "“last month” is not a month"),
        ("9999-12", "December 9999 has not come yet"),
        ("1999-12", "December 1999 is before any booking"),
    ],
)
def test_a_month_that_cannot_be_shown_is_said_so_and_this_month_is_shown(admin_client, month, problem):
    response = admin_client.get(reverse("staff:dashboard"), {"month": month})
    assert response.status_code == 200
    html = response.content.decode()
    this_month = timezone.localdate().replace(day=1)
    assert problem in html and f"showing {this_month:%B %Y}" in html
    assert f"Sessions in {this_month:%B %Y}" in html
