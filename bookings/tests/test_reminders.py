"""Reminders before confirmed sessions and the counsellors' daily summary: sent when due, once,
never after a cancellation, afresh after a move; and safe under concurrent runs."""

from __future__ import annotations

import io
import re
from datetime import datetime, time, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone, translation

from bookings.emails import RESENT_BOOKING_LINK, emails_send_due
from bookings.models import (
    Actor,
    Booking,
    BookingEvent,
    Clinic,
    DailySummary,
    Mode,
    OutboundEmail,
    Reminder,
    Slot,
    Status,
)
from bookings.services import booking_cancel, daily_summaries_send, reminders_send
from bookings.templatetags.mindsettler import when
from bookings.tests.threads import at_once
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


def slot_in(counsellor, *, hours: float, minutes: int = 60) -> Slot:
    start = (timezone.now() + timedelta(hours=hours)).replace(second=0, microsecond=0)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=minutes))


@pytest.fixture
def confirmed(make_booking, counsellor):
    """A confirmed online session 20 hours from now: inside the default 24-hour window."""
    return make_booking(
        Status.CONFIRMED,
        slot=slot_in(counsellor, hours=20),
        client_name="Kavya Iyer",
        email="kavya@example.com",
        concerns="I cannot sleep since my divorce",
        preferred_times="Mornings, before work",
    )


def reminders_to(address: str) -> list:
    return [m for m in mail.outbox if m.to == [address] and m.subject.startswith("Reminder")]


def test_a_due_reminder_says_when_how_to_join_the_link_and_the_policy(confirmed, oncommit, settings):
    settings.CANCELLATION_CUTOFF_HOURS = 24
    with oncommit():
        assert reminders_send() == 1
    [message] = reminders_to("kavya@example.com")
    body = message.body
    assert when(confirmed.slot.start) in body  # date, time and the zone's name
    assert "IST" in body or timezone.localtime(confirmed.slot.start).tzname() in body
    assert "Online" in body
    assert "https://meet.example/asha" in body  # the counsellor's room
    assert "http://testserver/bookings/" in body  # a working booking-page link
    assert confirmed.ack_id in body
    # Twenty hours ahead, the day's cutoff for cancelling online has passed: it says so.
    assert "less than 24 hours away, so it can no longer be cancelled online. Please contact the clinic." in body
    assert "until 24 hours before the session" not in body
    html = message.alternatives[0][0]
    assert "https://meet.example/asha" in html and "http://testserver/bookings/" in html
    # Never the client's own words; no session-type name in the subject.
    for text in (body, html, message.subject):
        assert "divorce" not in text and "before work" not in text
    assert "Individual" not in message.subject
    assert Reminder.objects.get().kind == "24h"


def test_a_reminder_before_the_cutoff_says_until_when_it_can_be_cancelled_online(
    make_booking, counsellor, oncommit, settings
):
    settings.CANCELLATION_CUTOFF_HOURS = 24
    settings.REMINDER_HOURS = [48]
    make_booking(Status.CONFIRMED, slot=slot_in(counsellor, hours=40), email="dev@example.com")
    with oncommit():
        assert reminders_send() == 1
    [message] = reminders_to("dev@example.com")
    assert "Cancelling: online until 24 hours before the session" in message.body
    assert "can no longer be cancelled online" not in message.body


def test_a_booking_specific_meeting_link_wins_over_the_room(confirmed, oncommit):
    Booking.objects.filter(pk=confirmed.pk).update(meeting_url="https://meet.example/private-room")
    with oncommit():
        reminders_send()
    [message] = reminders_to("kavya@example.com")
    assert "https://meet.example/private-room" in message.body
    assert "https://meet.example/asha" not in message.body


def test_an_in_person_reminder_says_where_to_go_and_has_no_meeting_link(make_booking, counsellor, oncommit):
    clinic = Clinic.load()
    clinic.address = "12 Lake Road, Pune"
    clinic.directions = "Second floor, above the pharmacy."
    clinic.save()
    make_booking(Status.CONFIRMED, slot=slot_in(counsellor, hours=10), mode=Mode.IN_PERSON, email="p@example.com")
    with oncommit():
        reminders_send()
    [message] = reminders_to("p@example.com")
    assert "12 Lake Road, Pune" in message.body and "above the pharmacy" in message.body
    assert "meet.example" not in message.body


def test_a_rerun_sends_nothing_more(confirmed, oncommit):
    with oncommit():
        assert reminders_send() == 1
        assert reminders_send() == 0
    call_command("send_reminders", stdout=io.StringIO())
    assert len(reminders_to("kavya@example.com")) == 1
    assert Reminder.objects.count() == 1


def test_no_reminder_after_a_cancellation(confirmed, admin_user, oncommit):
    booking_cancel(booking_id=confirmed.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor unwell")
    with oncommit():
        assert reminders_send() == 0
    assert reminders_to("kavya@example.com") == []
    assert not Reminder.objects.exists()


def test_a_cancellation_after_the_reminder_does_not_resend_it(confirmed, admin_user, oncommit):
    with oncommit():
        reminders_send()
    with oncommit():
        booking_cancel(booking_id=confirmed.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor unwell")
        assert reminders_send() == 0
    assert len(reminders_to("kavya@example.com")) == 1


@pytest.mark.parametrize("change", ["cancelled", "moved", "begun"])
def test_a_reminder_still_waiting_to_go_out_is_given_up_once_it_no_longer_holds(
    confirmed, counsellor, admin_user, change
):
    """Queued while the mail server was down, a reminder is retried up to hours later: by then
    the session may be cancelled or moved (the client was told) or under way."""
    assert reminders_send() == 1  # queued; its delivery has not run (no commit in this test)
    email = Reminder.objects.get().email
    if change == "cancelled":
        booking_cancel(booking_id=confirmed.pk, actor=Actor.STAFF, user=admin_user, reason="Counsellor unwell")
    elif change == "moved":
        Booking.objects.filter(pk=confirmed.pk).update(slot=slot_in(counsellor, hours=22))
    else:
        Slot.objects.filter(pk=confirmed.slot_id).update(start=timezone.now() - timedelta(minutes=5))
    emails_send_due()
    assert reminders_to("kavya@example.com") == []
    email.refresh_from_db()
    assert email.status == OutboundEmail.State.FAILED
    assert (
        email.last_error
        == {
            "cancelled": "The session was cancelled or moved before it was sent",
            "moved": "The session was cancelled or moved before it was sent",
            "begun": "The session had begun before it could be sent",
        }[change]
    )
    assert RESENT_BOOKING_LINK in email.body_text  # its link to the booking page forgotten


def test_a_reminder_that_still_holds_goes_out_on_its_retry(confirmed):
    assert reminders_send() == 1
    emails_send_due()
    assert len(reminders_to("kavya@example.com")) == 1


def test_a_session_moved_to_another_time_gets_a_fresh_reminder(confirmed, counsellor, oncommit):
    with oncommit():
        reminders_send()
    # Moved (test set-up: rescheduling is its own service): the old slot's reminder does not count.
    new_slot = slot_in(counsellor, hours=22)
    Booking.objects.filter(pk=confirmed.pk).update(slot=new_slot)
    with oncommit():
        assert reminders_send() == 1
        assert reminders_send() == 0
    messages = reminders_to("kavya@example.com")
    assert len(messages) == 2
    assert when(new_slot.start) in messages[1].body
    assert set(Reminder.objects.values_list("slot_id", flat=True)) == {confirmed.slot_id, new_slot.pk}


def test_only_confirmed_sessions_inside_the_window_are_reminded(make_booking, counsellor, oncommit):
    make_booking(Status.CONFIRMED, slot=slot_in(counsellor, hours=30), email="later@example.com")
    make_booking(Status.APPROVED, slot=slot_in(counsellor, hours=12), email="unpaid@example.com")
    make_booking(Status.COMPLETED, slot=slot_in(counsellor, hours=-3), email="past@example.com")
    with oncommit():
        assert reminders_send() == 0
    assert mail.outbox == []


def test_no_reminder_for_a_session_confirmed_after_its_reminder_was_due(confirmed, oncommit):
    # Confirmed 20 hours before: the confirmation email has just told the client everything.
    BookingEvent.objects.create(
        booking=confirmed, from_status=Status.PAYMENT_PENDING, to_status=Status.CONFIRMED, actor=Actor.PROVIDER
    )
    with oncommit():
        assert reminders_send() == 0


def test_two_reminder_times_each_send_once_at_their_time(confirmed, oncommit, settings):
    settings.REMINDER_HOURS = [24, 2]
    start = confirmed.slot.start
    with oncommit():
        assert reminders_send(now=start - timedelta(hours=20)) == 1
        assert reminders_send(now=start - timedelta(hours=3)) == 0  # between the two
        assert reminders_send(now=start - timedelta(minutes=90)) == 1
        assert reminders_send(now=start - timedelta(minutes=30)) == 0
        assert reminders_send(now=start + timedelta(minutes=1)) == 0  # started: nothing more
    assert sorted(Reminder.objects.values_list("kind", flat=True)) == ["24h", "2h"]
    assert len(reminders_to("kavya@example.com")) == 2


def test_a_session_booked_inside_the_long_window_still_gets_the_short_reminder(confirmed, oncommit, settings):
    settings.REMINDER_HOURS = [24, 2]
    BookingEvent.objects.create(
        booking=confirmed, from_status=Status.PAYMENT_PENDING, to_status=Status.CONFIRMED, actor=Actor.PROVIDER
    )
    with oncommit():
        assert reminders_send() == 0
        assert reminders_send(now=confirmed.slot.start - timedelta(hours=1)) == 1
    assert Reminder.objects.get().kind == "2h"


def test_the_task_sends_the_due_reminders(confirmed, oncommit):
    from bookings.tasks import send_reminders

    with oncommit():
        result = send_reminders.enqueue()
    assert result.return_value == 1
    assert len(reminders_to("kavya@example.com")) == 1


def test_reminder_hours_setting_is_parsed_and_validated(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from mindsettler.settings import envints

    monkeypatch.setenv("REMINDER_HOURS", "24, 2")
    assert envints("REMINDER_HOURS", "24") == [24, 2]
    monkeypatch.setenv("REMINDER_HOURS", "24,soon")
    with pytest.raises(ImproperlyConfigured):
        envints("REMINDER_HOURS", "24")
    monkeypatch.setenv("REMINDER_HOURS", "0")
    with pytest.raises(ImproperlyConfigured):
        envints("REMINDER_HOURS", "24")


# --- The counsellors' daily summary -----------------------------------------------------


def test_a_counsellor_who_asked_gets_the_days_sessions_once_with_initials_only(
    make_booking, counsellor, other_counsellor, oncommit
):
    counsellor.daily_summary = True
    counsellor.save()
    day = timezone.localdate() + timedelta(days=4)
    days_ahead = 4
    first = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(
            counsellor=counsellor,
            start=next_weekday_at(9, days_ahead=days_ahead),
            end=next_weekday_at(10, days_ahead=days_ahead),
        ),
        client_name="Kavya Iyer",
        email="kavya@example.com",
        concerns="Panic attacks at work",
    )
    second = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(
            counsellor=counsellor,
            start=next_weekday_at(14, days_ahead=days_ahead),
            end=next_weekday_at(15, days_ahead=days_ahead),
        ),
        client_name="Rahul Verma",
    )
    other_day = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(
            counsellor=counsellor,
            start=next_weekday_at(9, days_ahead=days_ahead + 1),
            end=next_weekday_at(10, days_ahead=days_ahead + 1),
        ),
    )
    someone_elses = make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(
            counsellor=other_counsellor,
            start=next_weekday_at(11, days_ahead=days_ahead),
            end=next_weekday_at(12, days_ahead=days_ahead),
        ),
    )
    with oncommit():
        assert daily_summaries_send(today=day) == 1
        assert daily_summaries_send(today=day) == 0
    call_command("send_daily_summaries", stdout=io.StringIO())  # today: no sessions, nothing sent
    [message] = mail.outbox
    assert message.to == ["asha@example.com"]
    body = message.body
    assert first.ack_id in body and second.ack_id in body and "KI" in body and "RV" in body
    assert body.index("09:00") < body.index("14:00")
    assert other_day.ack_id not in body and someone_elses.ack_id not in body
    for text in (body, message.alternatives[0][0], message.subject):
        assert "Kavya" not in text and "kavya@example.com" not in text and "Panic" not in text
        assert "Individual" not in text
    assert DailySummary.objects.get(counsellor=counsellor, day=day).sessions == 2


def test_no_summary_for_counsellors_who_did_not_ask(make_booking, counsellor, oncommit):
    day = timezone.localdate() + timedelta(days=4)
    make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(
            counsellor=counsellor, start=next_weekday_at(9, days_ahead=4), end=next_weekday_at(10, days_ahead=4)
        ),
    )
    with oncommit():
        assert daily_summaries_send(today=day) == 0
    assert mail.outbox == []


# --- Concurrency (PostgreSQL) -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL for real concurrency")
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_send_each_reminder_and_summary_exactly_once(make_booking, counsellor):
    counsellor.daily_summary = True
    counsellor.save()
    bookings = [
        make_booking(Status.CONFIRMED, slot=slot_in(counsellor, hours=5 + 2 * i), email=f"c{i}@example.com")
        for i in range(6)
    ]
    day = timezone.localtime(bookings[0].slot.start).date()
    results = at_once([reminders_send, lambda: daily_summaries_send(today=day)] * 6)
    assert not [r for r in results if str(r).startswith("unexpected")], results
    assert Reminder.objects.count() == 6
    reminder_emails = OutboundEmail.objects.filter(kind="reminder")
    assert reminder_emails.count() == 6
    assert sorted(reminder_emails.values_list("to", flat=True)) == sorted(b.email for b in bookings)
    assert DailySummary.objects.count() == 1
    assert OutboundEmail.objects.filter(kind="daily_summary").count() == 1


@pytest.mark.parametrize("zone, name", [("Asia/Kolkata", "IST"), ("Europe/London", "GMT")])
def test_the_daily_summary_names_the_time_zone_of_its_times(make_booking, counsellor, oncommit, settings, zone, name):
    settings.TIME_ZONE = zone
    counsellor.daily_summary = True
    counsellor.save()
    start = timezone.make_aware(datetime(2031, 1, 14, 9), timezone.get_current_timezone())
    booking = make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    )

    with oncommit():
        assert daily_summaries_send(today=start.date()) == 1

    [message] = mail.outbox
    [line] = [line for line in message.body.splitlines() if booking.ack_id in line]
    # Until the session ends (50 minutes), not its hour-long slot.
    assert line.startswith(f"09:00\u201309:50 {name}")
    assert f"09:00\u201309:50\N{NO-BREAK SPACE}{name}" in message.alternatives[0][0]


def test_the_daily_summary_is_in_english_whatever_language_is_active(make_booking, counsellor, oncommit):
    """A staff email, in English like the portal, even when sent from a thread where a
    client's Hindi is active."""
    counsellor.daily_summary = True
    counsellor.save()
    start = next_weekday_at(9, days_ahead=4)
    make_booking(
        Status.CONFIRMED,
        slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1)),
        language="hi",
    )
    with oncommit(), translation.override("hi"):
        assert daily_summaries_send(today=timezone.localdate(start)) == 1

    [message] = mail.outbox
    assert "Online" in message.body and "Online" in message.alternatives[0][0]
    for part in (message.subject, message.body, message.alternatives[0][0]):
        assert not re.search("[\u0900-\u097f]", part), part


def test_the_daily_summary_subject_names_its_day(make_booking, counsellor, oncommit):
    """A counsellor's inbox holds one summary a day: each subject says which day it is."""
    counsellor.daily_summary = True
    counsellor.save()
    start = timezone.make_aware(datetime(2031, 1, 14, 9), timezone.get_current_timezone())
    make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    )
    with oncommit():
        assert daily_summaries_send(today=start.date()) == 1
    [message] = mail.outbox
    assert message.subject == "Your sessions today, Tuesday 14 January: 1"


def test_a_reminder_waiting_to_go_out_when_its_counsellor_leaves_is_held_back_after_all(
    confirmed, counsellor, admin_user, oncommit
):
    """Queued while the mail server was down, then its counsellor left: sent on its retry, it
    would send the client to the leaver's room. It is given up, and the next run does what it
    does for a leaver's session: the administrators are told instead."""
    from staff.services import staff_deactivate

    counsellor.meeting_url = "https://meet.example/asha-room"
    counsellor.save()
    assert reminders_send() == 1  # queued; not delivered (no commit)
    email = Reminder.objects.get().email
    assert "https://meet.example/asha-room" in email.body_text
    staff_deactivate(user=counsellor.user, by=admin_user)
    mail.outbox = []
    emails_send_due()
    assert reminders_to("kavya@example.com") == []
    email.refresh_from_db()
    assert email.status == OutboundEmail.State.FAILED
    assert email.last_error == "The session's counsellor or link to join had changed before it was sent"
    with oncommit():
        assert reminders_send() == 0
    assert Reminder.objects.get().kind == "24h held back"
    assert any(admin_user.email in m.to for m in mail.outbox)
    assert not any("asha-room" in m.body for m in mail.outbox)


def test_a_reminder_waiting_to_go_out_when_the_link_to_join_changes_is_sent_again_with_the_new_one(
    confirmed, counsellor, admin_user, oncommit
):
    from bookings.services import booking_set_meeting_url

    counsellor.meeting_url = "https://meet.example/old-room"
    counsellor.save()
    assert reminders_send() == 1
    booking_set_meeting_url(booking_id=confirmed.pk, user=admin_user, meeting_url="https://meet.example/new-room")
    emails_send_due()
    assert reminders_to("kavya@example.com") == []
    with oncommit():
        assert reminders_send() == 1
    [reminder] = reminders_to("kavya@example.com")
    assert "https://meet.example/new-room" in reminder.body and "old-room" not in reminder.body


def test_a_daily_summary_for_a_day_gone_by_is_not_sent(make_booking, counsellor):
    counsellor.daily_summary = True
    counsellor.save()
    today = timezone.localdate()
    start = timezone.make_aware(datetime.combine(today, time(0, 30)))  # today's, whatever the hour now
    slot = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))
    make_booking(Status.CONFIRMED, counsellor=counsellor, slot=slot)
    assert daily_summaries_send(today=today) == 1  # queued; the mail server is down (no commit)
    email = DailySummary.objects.get().email
    OutboundEmail.objects.filter(pk=email.pk).update(created_at=email.created_at - timedelta(days=1))
    DailySummary.objects.update(day=today - timedelta(days=1))
    assert emails_send_due() == 0 and mail.outbox == []
    email.refresh_from_db()
    assert email.status == OutboundEmail.State.FAILED
    assert email.last_error == "Its day had passed before it could be sent"


def test_one_reminder_that_fails_does_not_stop_the_others(counsellor, make_booking, monkeypatch, caplog):
    """A sweep's items are each on their own: one that fails (here a fault put into the
    earliest session's reminder, which every run meets first) is logged by its booking's id,
    and the others go, at this run and every later one."""
    from bookings import notifications

    bookings = [
        make_booking(Status.CONFIRMED, slot=slot_in(counsellor, hours=hours), email=f"c{hours}@example.com")
        for hours in (5, 10, 15)
    ]
    reminder = notifications.reminder

    def failing_for_the_first(*, booking, **kwargs):
        if booking.pk == bookings[0].pk:
            raise RuntimeError("a fault in this one")
        return reminder(booking=booking, **kwargs)

    monkeypatch.setattr(notifications, "reminder", failing_for_the_first)
    assert reminders_send() == 2
    assert set(Reminder.objects.values_list("booking_id", flat=True)) == {bookings[1].pk, bookings[2].pk}
    assert reminders_send() == 0  # the next run meets the first again, and nothing else is due
    failures = [r.getMessage() for r in caplog.records if r.name == "bookings.sweeps"]
    assert failures == [f"reminder for booking {bookings[0].pk} failed; the others went on"] * 2


def test_one_email_that_fails_does_not_stop_the_others(make_booking, counsellor, monkeypatch):
    from bookings import emails

    booking = make_booking(Status.REJECTED, counsellor=counsellor)
    queued = [
        emails.email_queue(kind="rejected", to=f"r{n}@example.com", booking=booking, context={"booking": booking})
        for n in range(3)
    ]
    deliver = emails.email_deliver

    def failing_for_the_first(*, email_id):
        if email_id == queued[0].pk:
            raise RuntimeError("a fault in this one")
        return deliver(email_id=email_id)

    monkeypatch.setattr(emails, "email_deliver", failing_for_the_first)
    assert emails.emails_send_due() == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["r1@example.com", "r2@example.com"]


def test_a_note_made_of_a_confirmed_session_does_not_pass_for_its_confirmation(confirmed, admin_user, oncommit):
    """A session confirmed inside a reminder's window gets none (the confirmation has just
    told the client). A link to join set there, or an email resent, is not a confirmation:
    the reminder, with that link, still goes."""
    from bookings.services import booking_set_meeting_url

    booking_set_meeting_url(booking_id=confirmed.pk, user=admin_user, meeting_url="https://meet.example/set-late")
    with oncommit():
        assert reminders_send() == 1
    [reminder] = reminders_to("kavya@example.com")
    assert "https://meet.example/set-late" in reminder.body
