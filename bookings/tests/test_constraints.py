"""The invariants hold in the database itself, even when Python's checks are bypassed."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from bookings.models import Booking, Counsellor, SessionType, Slot, Status
from bookings.services import ack_id_new, booking_transition, slot_create
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


def _insert(make_booking, **fields):
    with transaction.atomic():
        return make_booking(**fields)


def _refused(queryset, **changes) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        queryset.update(**changes)


@pytest.mark.parametrize("first", [Status.PENDING, Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED])
@pytest.mark.parametrize("second", [Status.PENDING, Status.CONFIRMED])
def test_one_active_booking_per_email(make_booking, counsellor, first, second):
    make_booking(first, email="same@example.com", counsellor=counsellor)
    with pytest.raises(IntegrityError):
        _insert(make_booking, status=second, email="same@example.com", counsellor=counsellor)


@pytest.mark.parametrize("inactive", [Status.DRAFT, Status.COMPLETED, Status.REJECTED, Status.CANCELLED])
def test_inactive_bookings_do_not_count_against_the_email(make_booking, counsellor, inactive):
    make_booking(inactive, email="same@example.com", counsellor=counsellor)
    make_booking(inactive, email="same@example.com", counsellor=counsellor)
    make_booking(Status.PENDING, email="same@example.com", counsellor=counsellor)


def test_a_transition_that_would_break_the_email_rule_is_refused_by_the_database(make_booking, counsellor):
    """Python's check bypassed: a second draft is forced to PENDING directly."""
    make_booking(Status.PENDING, email="same@example.com", counsellor=counsellor)
    draft = make_booking(Status.DRAFT, email="same@example.com", counsellor=counsellor)
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=draft.pk).update(status=Status.PENDING)


@pytest.mark.parametrize("holding", [Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED, Status.COMPLETED])
def test_one_active_or_completed_booking_per_slot(make_booking, slot, holding):
    make_booking(holding, slot=slot)
    with pytest.raises(IntegrityError):
        _insert(make_booking, status=Status.APPROVED, slot=slot)


def test_cancelled_bookings_release_their_slot(make_booking, slot):
    make_booking(Status.CANCELLED, slot=slot)
    make_booking(Status.REJECTED, slot=slot)
    make_booking(Status.APPROVED, slot=slot)


def test_acknowledgement_ids_are_unique(make_booking, counsellor):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with pytest.raises(IntegrityError):
        _insert(make_booking, status=Status.DRAFT, counsellor=counsellor, ack_id=booking.ack_id)


@pytest.mark.parametrize("bad", ["MS-ABC12O", "MS-ABCDE", "XX-ABCDEF", "ms-abcdef", "MS-ABCDEFG", "MS-IL0O1A"])
def test_acknowledgement_id_format_is_enforced(make_booking, counsellor, bad):
    # PostgreSQL refuses the over-long one for its length (DataError) before the check.
    with pytest.raises((IntegrityError, DataError)):
        _insert(make_booking, status=Status.DRAFT, counsellor=counsellor, ack_id=bad)


def test_emails_are_stored_normalised(make_booking, counsellor):
    with pytest.raises(IntegrityError):
        _insert(make_booking, status=Status.DRAFT, counsellor=counsellor, email="Mixed@Example.com")


def test_a_slotted_status_needs_a_slot(make_booking, counsellor):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(status=Status.CONFIRMED)


def test_a_booking_with_a_time_has_a_counsellor(make_booking, counsellor):
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(counsellor=None)
    # Without a time, a request may leave the counsellor to the clinic.
    assert make_booking(Status.PENDING).counsellor is None


def test_status_must_be_a_known_one(make_booking, counsellor):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(status="lost")


def test_slots_end_after_they_start(counsellor):
    start = next_weekday_at(10)
    with pytest.raises(IntegrityError), transaction.atomic():
        Slot.objects.create(counsellor=counsellor, start=start, end=start)


def test_weekly_hours_may_end_the_next_day_but_never_when_they_start(counsellor):
    """An end earlier than the start is the next day's (22:00 to 01:00); an end at the start
    would be empty hours, 00:00 to 00:00 too (once the whole day)."""
    from datetime import time

    from bookings.models import WeeklyHours

    late = WeeklyHours.objects.create(counsellor=counsellor, weekday=4, start_time=time(22), end_time=time(1))
    WeeklyHours.objects.create(counsellor=counsellor, weekday=5, start_time=time(21), end_time=time(0))
    assert late.ends_next_day and late.minutes == (22 * 60, 25 * 60)
    for start in (time(22), time(1), time(0)):
        _refused(WeeklyHours.objects.filter(pk=late.pk), start_time=start, end_time=start)
    with pytest.raises(IntegrityError), transaction.atomic():
        WeeklyHours.objects.create(counsellor=counsellor, weekday=6, start_time=time(0), end_time=time(0))


def test_service_refuses_overlapping_slots(counsellor, other_counsellor):
    from bookings.errors import SlotUnavailable

    start = next_weekday_at(10)
    slot_create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    with pytest.raises(SlotUnavailable):
        slot_create(counsellor=counsellor, start=start + timedelta(minutes=30), end=start + timedelta(hours=2))
    # Back to back is fine, and another counsellor may use the same time.
    slot_create(counsellor=counsellor, start=start + timedelta(hours=1), end=start + timedelta(hours=2))
    slot_create(counsellor=other_counsellor, start=start, end=start + timedelta(hours=1))


def test_the_database_refuses_overlapping_slots_directly(counsellor, other_counsellor):
    """PostgreSQL's exclusion constraint, SQLite's triggers: the services' check bypassed."""
    start = next_weekday_at(10)
    hour = timedelta(hours=1)
    first = Slot.objects.create(counsellor=counsellor, start=start, end=start + hour)

    def refused(**times):
        with pytest.raises(IntegrityError), transaction.atomic():
            Slot.objects.create(counsellor=counsellor, **times)

    refused(start=start + timedelta(minutes=59), end=start + 2 * hour)  # overlaps its end
    refused(start=start - hour, end=start + timedelta(microseconds=1))  # its start, by a microsecond
    refused(start=start + timedelta(minutes=10), end=start + timedelta(minutes=20))  # inside it
    refused(start=start - hour, end=start + 2 * hour)  # around it
    with pytest.raises(IntegrityError), transaction.atomic():
        Slot.objects.bulk_create(
            [
                Slot(counsellor=counsellor, start=start + 3 * hour, end=start + 4 * hour),
                Slot(counsellor=counsellor, start=start + 3 * hour + timedelta(minutes=30), end=start + 5 * hour),
            ]
        )
    # Back to back is fine, to the microsecond (SQLite stores those as longer text), and
    # another counsellor may use the same time.
    after = Slot.objects.create(
        counsellor=counsellor, start=start + hour, end=start + 2 * hour + timedelta(microseconds=5)
    )
    Slot.objects.create(counsellor=counsellor, start=after.end, end=after.end + hour)
    Slot.objects.create(counsellor=counsellor, start=start - hour, end=start)
    theirs = Slot.objects.create(counsellor=other_counsellor, start=start, end=start + hour)
    # Nor may a slot be moved onto another of the counsellor's, or given to a counsellor it overlaps.
    _refused(Slot.objects.filter(pk=after.pk), start=start + timedelta(minutes=30))
    _refused(Slot.objects.filter(pk=after.pk), end=after.end + hour)
    _refused(Slot.objects.filter(pk=theirs.pk), counsellor=counsellor)
    # Changing a slot without moving it onto another is fine.
    Slot.objects.filter(pk=first.pk).update(end=start + timedelta(minutes=50))


def test_a_booking_with_a_time_is_with_that_times_counsellor(make_booking, slot, other_slot):
    """Only the services kept it before: the staff pages, the calendar feed and the daily
    summaries show a booking to its counsellor and in its slot's time."""
    booking = make_booking(Status.CONFIRMED, slot=slot)
    bookings = Booking.objects.filter(pk=booking.pk)
    _refused(bookings, counsellor=other_slot.counsellor)
    _refused(bookings, slot=other_slot)
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.create(
            **{f: getattr(booking, f) for f in ("client_name", "session_type", "mode", "amount")},
            ack_id=ack_id_new(),
            email="another@example.com",
            status=Status.CANCELLED,
            slot=other_slot,
            counsellor=slot.counsellor,
        )
    # A move to another counsellor's time changes both in one statement, as the services do.
    bookings.update(slot=other_slot, counsellor=other_slot.counsellor)
    # A booked slot keeps its counsellor; a free one is not held to it.
    _refused(Slot.objects.filter(pk=other_slot.pk), counsellor=slot.counsellor)
    Slot.objects.filter(pk=slot.pk).update(counsellor=other_slot.counsellor)
    # Without a time, a request may be with anyone, or no one yet.
    pending = make_booking(Status.PENDING, counsellor=slot.counsellor)
    Booking.objects.filter(pk=pending.pk).update(counsellor=other_slot.counsellor, preferred_slot=slot)


def test_a_transition_into_another_counsellors_time_without_them_is_not_taken_for_a_taken_slot(
    make_booking, counsellor, other_slot
):
    """The database's refusal is a fault in the code that asked, not a slot someone took."""
    pending = make_booking(Status.PENDING, counsellor=counsellor)
    changes = {"slot": other_slot, "approved_at": timezone.now(), "payment_due_at": timezone.now() + timedelta(days=1)}
    with pytest.raises(IntegrityError):
        booking_transition(booking=pending, to=Status.APPROVED, actor="staff", changes=changes)
    assert Booking.objects.get(pk=pending.pk).status == Status.PENDING


def test_transition_maps_the_slot_constraint_to_a_clear_error(make_booking, slot):
    from bookings.errors import SlotUnavailable

    make_booking(Status.APPROVED, slot=slot)
    pending = make_booking(Status.PENDING, counsellor=slot.counsellor)
    with pytest.raises(SlotUnavailable):
        changes = {"slot": slot, "approved_at": timezone.now(), "payment_due_at": timezone.now() + timedelta(days=1)}
        booking_transition(booking=pending, to=Status.APPROVED, actor="staff", changes=changes)
    assert Booking.objects.get(pk=pending.pk).status == Status.PENDING


def test_ack_ids_avoid_look_alikes():
    for _ in range(500):
        ack = ack_id_new()
        assert ack.startswith("MS-") and len(ack) == 9
        assert not set(ack[3:]) & set("01OIL")


@pytest.mark.parametrize(
    ("action", "times"),
    [("transition", (1, 2)), ("rescheduled", (1, None)), ("rescheduled", (None, 2))],
    ids=["on-another-event", "only-the-old-time", "only-the-new-time"],
)
def test_move_times_belong_to_moves_and_come_in_pairs(make_booking, counsellor, action, times):
    from bookings.models import Actor, BookingEvent

    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    start = booking.slot.start
    moved_from, moved_to = (None if t is None else start + timedelta(days=t) for t in times)
    with pytest.raises(IntegrityError), transaction.atomic():
        BookingEvent.objects.create(
            booking=booking, action=action, actor=Actor.STAFF, moved_from=moved_from, moved_to=moved_to
        )


def test_two_bookable_session_types_never_share_a_name(session_type):
    def add(**fields):
        with transaction.atomic():
            return SessionType.objects.create(duration_minutes=50, price=100000, **fields)

    with pytest.raises(IntegrityError):
        add(name="INDIVIDUAL SESSION", slug="shouting")
    # A session type clients cannot book may share it (an old one kept for its bookings).
    add(name="Individual session", slug="old-individual", is_active=False)
    add(name="Couples session", slug="couples", name_hi="युगल सत्र")
    with pytest.raises(IntegrityError):
        add(name="Pair session", slug="pair", name_hi="युगल सत्र")
    # No Hindi name is no name: many session types have none.
    add(name="Family session", slug="family")


def test_migration_0009_tells_apart_names_shared_before_it(session_type):
    """A deployment whose bookable session types already share a name (a race before the
    constraints) still migrates: the older keeps the name, a later one gets a number."""
    import importlib

    from django.apps import apps

    with connection.cursor() as cursor:  # as before migration 0009 (the test's transaction restores them)
        cursor.execute("DROP INDEX session_type_active_name")
        cursor.execute("DROP INDEX session_type_active_name_hi")
    SessionType.objects.filter(pk=session_type.pk).update(name_hi="व्यक्तिगत सत्र")
    added = [
        SessionType.objects.create(duration_minutes=50, price=100000, slug=slug, **names)
        for slug, names in [
            ("shouting", {"name": "INDIVIDUAL SESSION", "name_hi": "व्यक्तिगत सत्र"}),
            ("numbered", {"name": "Individual session (2)"}),
            ("third", {"name": "individual session"}),
            ("old", {"name": "Individual session", "is_active": False}),
            ("long", {"name": "L" * 100}),
            ("long-again", {"name": "l" * 100}),
        ]
    ]
    importlib.import_module("bookings.migrations.0009_session_type_names_unique").tell_apart_shared_names(apps, None)

    session_type.refresh_from_db()
    assert (session_type.name, session_type.name_hi) == ("Individual session", "व्यक्तिगत सत्र")
    names = [(st.name, st.name_hi) for st in SessionType.objects.filter(pk__in=[st.pk for st in added]).order_by("pk")]
    assert names == [
        ("INDIVIDUAL SESSION (3)", "व्यक्तिगत सत्र (2)"),
        ("Individual session (2)", ""),
        ("individual session (4)", ""),
        ("Individual session", ""),  # not bookable: left as it was
        ("L" * 100, ""),
        ("l" * 96 + " (2)", ""),
    ]


def test_the_models_and_their_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())


def test_a_counsellor_added_by_the_release_before_the_hindi_profile_gets_empty_hindi_texts():
    """During a deploy the previous release still runs and inserts counsellors (staff
    invitations) without the Hindi columns: the database's defaults fill them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bookings_counsellor (display_name, slug, title, bio, approach, languages, offers_online,"
            " offers_in_person, meeting_url, daily_summary, is_active, sort_order)"
            " VALUES ('Old Release', 'old-release', 'Psychologist', '', '', '', %s, %s, '', %s, %s, 0)",
            [True, True, False, True],
        )
    added = Counsellor.objects.get(slug="old-release")
    assert (added.title_hi, added.approach_hi, added.bio_hi) == ("", "", "")
    assert added.shown_title == "Psychologist"


@pytest.mark.parametrize("field", ["approved_at", "payment_due_at"])
@pytest.mark.parametrize("status", [Status.APPROVED, Status.PAYMENT_PENDING])
def test_a_time_awaiting_payment_has_a_time_to_pay_by(make_booking, counsellor, status, field):
    """Without it the expiry sweep would never release the time."""
    booking = make_booking(status, counsellor=counsellor)
    _refused(Booking.objects.filter(pk=booking.pk), **{field: None})
    Booking.objects.filter(pk=booking.pk).update(status=Status.CANCELLED, **{field: None})  # once it ends, no need


def test_payments_and_links_hold_only_their_own_states_and_never_refund_more_than_was_taken(make_booking, counsellor):
    from bookings.models import LinkToken, Payment, WaitlistEntry

    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    payment = Payment.objects.create(
        booking=booking, provider="sandbox", amount=150000, currency="INR", captured_amount=160000
    )
    payments = Payment.objects.filter(pk=payment.pk)
    _refused(payments, status="bogus")
    _refused(payments, refund_status="bogus")
    _refused(payments, refunded_amount=160001)
    payments.update(refunded_amount=160000)  # all that was taken, more than was asked for
    _refused(payments, refunded_earlier=160001)
    Payment.objects.filter(pk=payment.pk).update(captured_amount=None, refunded_amount=0)
    _refused(payments, refunded_amount=150001)  # before the money arrived: what was asked for
    link = LinkToken.objects.create(
        booking=booking, purpose="manage", token_hash="0" * 64, expires_at=timezone.now() + timedelta(days=1)
    )
    _refused(LinkToken.objects.filter(pk=link.pk), purpose="bogus")
    entry = WaitlistEntry.objects.create(
        client_name="W",
        email="w@example.com",
        session_type=booking.session_type,
        mode="online",
        date_from=timezone.localdate(),
        date_to=timezone.localdate(),
    )
    _refused(WaitlistEntry.objects.filter(pk=entry.pk), status="bogus")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's triggers")
@pytest.mark.django_db(transaction=True)
def test_a_migration_that_rebuilds_the_tables_keeps_sqlite_s_rules(counsellor, slot, other_slot, make_booking):
    """Django rebuilds a SQLite table for most changes to it. With the triggers in place, a
    rebuild of the slots' table failed (the bookings' triggers name it), or dropped its own for
    good: `migrate` takes them away first and makes them again at its end (bookings.apps)."""
    from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
    from django.db.models import CheckConstraint, Q

    emit_pre_migrate_signal(verbosity=0, interactive=False, db="default")
    with connection.schema_editor() as editor:
        for model in (Slot, Booking):
            rebuilt = CheckConstraint(condition=Q(pk__gt=0), name=f"{model._meta.model_name}_test_rebuild")
            editor.add_constraint(model, rebuilt)
            editor.remove_constraint(model, rebuilt)
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    booking = make_booking(Status.CONFIRMED, slot=slot)
    with pytest.raises(IntegrityError, match="slot_no_overlap"), transaction.atomic():
        Slot.objects.create(counsellor=counsellor, start=slot.start, end=slot.end)
    with pytest.raises(IntegrityError, match="booking_slot_counsellor"), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(slot=other_slot)
