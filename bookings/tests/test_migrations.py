"""Migrations run on the data a live clinic has, not only on an empty database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from bookings.api.auth import api_call_authenticate
from bookings.db_rules import sqlite_triggers_sync
from bookings.models import ApiClient, Booking, Payment, Status, WebhookEvent
from bookings.tokens import token_hash


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    sqlite_triggers_sync(connection)  # as `migrate` does at its end (bookings.apps)


@pytest.mark.django_db(transaction=True)
def test_0012_gives_a_booking_with_a_slot_and_no_counsellor_its_slots_counsellor(make_booking, counsellor):
    """A booking from before the rule (a slot, no counsellor) would make adding the
    constraint fail, and the release stop halfway."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    untouched = make_booking(Status.PENDING)
    migrate([("bookings", "0011_payment_refunded_earlier")])
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE bookings_booking SET counsellor_id = NULL WHERE id = %s", [booking.pk])
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    booking.refresh_from_db()
    untouched.refresh_from_db()
    assert booking.counsellor_id == booking.slot.counsellor_id == counsellor.pk
    assert untouched.slot_id is None and untouched.counsellor_id is None


@pytest.mark.django_db(transaction=True)
def test_0026_gives_a_booking_in_another_counsellors_time_that_counsellor_and_can_be_undone(
    make_booking, counsellor, other_counsellor
):
    """A booking from before the rule whose counsellor is not its slot's would make adding it
    fail; the release can also be rolled back past it, and forward again."""
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    untouched = make_booking(Status.PENDING, counsellor=other_counsellor)
    migrate([("bookings", "0025_outbound_email_requeued_at")])
    try:
        with connection.cursor() as cursor:  # refused while 0026 is applied
            cursor.execute(
                "UPDATE bookings_booking SET counsellor_id = %s WHERE id = %s", [other_counsellor.pk, booking.pk]
            )
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    booking.refresh_from_db()
    untouched.refresh_from_db()
    assert booking.counsellor_id == booking.slot.counsellor_id == counsellor.pk
    assert untouched.slot_id is None and untouched.counsellor_id == other_counsellor.pk
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.filter(pk=booking.pk).update(counsellor=other_counsellor)


@pytest.mark.django_db(transaction=True)
def test_0029_splits_whole_days_of_weekly_hours_and_can_be_undone(counsellor):
    """00:00 to 00:00 was the whole day, and is now empty hours: such a row would make adding
    the constraint fail. It becomes two that publish the same sessions. Rolled back, hours past
    midnight become two the rule before allowed."""
    from datetime import date, datetime, time, timedelta

    from django.utils import timezone

    from bookings.models import Slot, WeeklyHours
    from bookings.services import availability_generate

    def rows() -> list[tuple[int, time, time]]:
        return list(
            WeeklyHours.objects.order_by("weekday", "start_time").values_list("weekday", "start_time", "end_time")
        )

    def sessions() -> list:
        availability_generate(counsellor=counsellor, weeks=1, today=date(2030, 1, 7))  # a Monday
        starts = list(Slot.objects.order_by("start").values_list("start", "end"))
        Slot.objects.all().delete()
        return starts

    migrate([("bookings", "0026_booking_slot_counsellor_and_sqlite_overlap")])
    try:
        WeeklyHours.objects.create(  # refused while 0029 is applied
            counsellor=counsellor,
            weekday=2,
            start_time=time(0),
            end_time=time(0),
            session_minutes=50,
            buffer_minutes=20,
        )
        whole_day = sessions()
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    # 70-minute steps: the tenth session begins at 11:40, where the second row begins.
    assert rows() == [(2, time(0), time(11, 40)), (2, time(11, 40), time(0))]
    wednesday = datetime.combine(date(2030, 1, 9), time(0), tzinfo=timezone.get_current_timezone())
    whole_day = [wednesday + timedelta(minutes=70 * n) for n in range(20)]  # the last 22:10 to 23:00
    assert sessions() == [(start, start + timedelta(minutes=50)) for start in whole_day]
    with pytest.raises(IntegrityError), transaction.atomic():
        WeeklyHours.objects.update(end_time=models.F("start_time"))

    WeeklyHours.objects.all().delete()
    WeeklyHours.objects.create(counsellor=counsellor, weekday=6, start_time=time(22), end_time=time(1))
    migrate([("bookings", "0026_booking_slot_counsellor_and_sqlite_overlap")])
    try:
        assert rows() == [(0, time(0), time(1)), (6, time(22), time(0))]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_0028_gives_existing_api_tokens_api_token_days_from_the_release(settings):
    """A token made before tokens expired keeps working a generous while after the release
    (no chatbot breaks at deploy), then expires like any other."""
    settings.API_TOKEN_DAYS = 30
    migrate([("bookings", "0026_booking_slot_counsellor_and_sqlite_overlap")])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bookings_apiclient (name, token_hash, created_at, rate_window, rate_count) "
                "VALUES (%s, %s, %s, 0, 0)",
                ["chatbot", token_hash("an-old-token"), connection.ops.adapt_datetimefield_value(timezone.now())],
            )
        released = timezone.now()
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    stored = ApiClient.objects.get(name="chatbot")
    assert released + timedelta(days=30) <= stored.expires_at <= timezone.now() + timedelta(days=30)
    assert stored.previous_token_hash is None and stored.expiry_warned_at is None
    assert api_call_authenticate(raw_token="an-old-token") is not None


@pytest.mark.django_db(transaction=True)
def test_0030_keeps_webhook_events_known_by_id_and_does_not_let_their_ids_block_new_ones():
    """Rows from before 0030 (known by the unsigned event ID) stay, with no digest; two of
    them do not collide, and an event arriving with one of their IDs is recorded too."""
    migrate([("bookings", "0026_booking_slot_counsellor_and_sqlite_overlap")])
    try:
        with connection.cursor() as cursor:
            for event_id in ("evt_old", "evt_older"):
                cursor.execute(
                    "INSERT INTO bookings_webhookevent (provider, event_id, received_at) VALUES (%s, %s, %s)",
                    ["razorpay", event_id, timezone.now()],
                )
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert sorted(WebhookEvent.objects.values_list("event_id", "digest")) == [("evt_old", None), ("evt_older", None)]
    WebhookEvent.objects.create(provider="razorpay", event_id="evt_old", digest="0" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookEvent.objects.create(provider="razorpay", event_id="evt_other", digest="0" * 64)


@pytest.mark.django_db(transaction=True)
def test_0031_names_receipts_recorded_twice_in_different_cases_and_then_keeps_them_apart(make_booking, counsellor):
    """Receipts already recorded twice ("R-9" and "r-9") stop the migration with both named,
    changing nothing; corrected, it applies, and a receipt typed again in another case is
    refused. A provider's IDs keep their case."""
    first, second = make_booking(Status.CONFIRMED), make_booking(Status.CONFIRMED)
    migrate([("bookings", "0030_webhook_event_digest")])
    try:
        for booking, receipt in ((first, "R-9"), (second, "r-9")):
            Payment.objects.create(
                booking=booking, provider="clinic", provider_payment_id=receipt, amount=1, currency="INR"
            )
        with pytest.raises(RuntimeError, match="recorded twice, in different cases: R-9 and r-9"):
            migrate([("bookings", "0031_payment_unique_clinic_receipt")])
        Payment.objects.filter(provider_payment_id="r-9").update(provider_payment_id="2027-r-9")
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(
            booking=second, provider="clinic", provider_payment_id="2027-R-9", amount=1, currency="INR"
        )
    for payment_id in ("pay_Ab1", "pay_AB1"):
        Payment.objects.create(
            booking=second, provider="razorpay", provider_payment_id=payment_id, amount=1, currency="INR"
        )
