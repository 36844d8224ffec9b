"""seed_bench: the benchmark's data set keeps every invariant the app relies on."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import date, timedelta

import pytest
from allauth.mfa.models import Authenticator
from django.core.management import CommandError, call_command
from django.utils import timezone

from bookings.lifecycle import TRANSITIONS
from bookings.models import (
    ACTIVE_STATUSES,
    SLOT_HOLDING_STATUSES,
    SLOTTED_STATUSES,
    ApiClient,
    Booking,
    BookingEvent,
    LinkToken,
    Payment,
    Slot,
    Status,
)
from bookings.tokens import token_get, token_hash
from staff.models import User

SMALL = dict(counsellors=3, days=6, slots_per_day=4, bookings=60)


@pytest.fixture(params=[7, 8], ids=["seed7", "seed8"])
def seeded(db, tmp_path, request) -> dict:
    path = tmp_path / "seed.json"
    call_command("seed_bench", json_path=str(path), seed=request.param, stdout=io.StringIO(), **SMALL)
    return json.loads(path.read_text())


def test_every_status_is_present_in_the_asked_numbers(seeded):
    counts = Counter(Booking.objects.values_list("status", flat=True))
    assert sum(counts.values()) == 60
    assert set(counts) == set(Status.values)
    assert seeded["counts"] == dict(counts)
    assert Slot.objects.count() == 3 * 6 * 4


def test_one_active_booking_per_email_and_one_holding_booking_per_slot(seeded):
    active_emails = list(Booking.objects.filter(status__in=ACTIVE_STATUSES).values_list("email", flat=True))
    assert len(active_emails) == len(set(active_emails))
    held = list(
        Booking.objects.filter(status__in=SLOT_HOLDING_STATUSES, slot__isnull=False).values_list("slot", flat=True)
    )
    assert len(held) == len(set(held))


def test_slotted_bookings_have_a_slot_of_their_counsellor_at_a_sensible_time(seeded):
    now = timezone.now()
    for booking in Booking.objects.filter(status__in=SLOTTED_STATUSES).select_related("slot"):
        assert booking.slot is not None
        assert booking.counsellor_id == booking.slot.counsellor_id
        if booking.status in (Status.COMPLETED, Status.NO_SHOW):
            assert booking.slot.end <= now
        else:
            assert booking.slot.start > now
            assert booking.approved_at is not None
        if booking.status in (Status.APPROVED, Status.PAYMENT_PENDING):
            assert now < booking.payment_due_at <= booking.slot.start


def test_each_booking_has_an_audit_trail_of_allowed_moves_ending_in_its_status(seeded):
    events: dict[int, list[BookingEvent]] = {}
    for event in BookingEvent.objects.order_by("created_at", "id"):
        events.setdefault(event.booking_id, []).append(event)
    for booking in Booking.objects.all():
        trail = events[booking.pk]
        assert trail[0].action == "created"
        assert trail[0].to_status == Status.DRAFT
        moves = trail[1:]
        for move in moves:
            assert move.actor in TRANSITIONS[(move.from_status, move.to_status)], move
        if moves:
            assert [m.from_status for m in moves] == [Status.DRAFT, *[m.to_status for m in moves[:-1]]]
        assert (moves[-1].to_status if moves else Status.DRAFT) == booking.status
        assert booking.version == 1 + len(moves)
        assert all(e.created_at <= timezone.now() for e in trail)


def test_paid_bookings_have_a_confirmed_payment(seeded):
    for booking in Booking.objects.filter(status__in=(Status.CONFIRMED, Status.COMPLETED)):
        assert booking.payments.filter(status=Payment.State.CONFIRMED, amount=booking.amount).count() == 1
    assert not Payment.objects.filter(booking__status__in=(Status.DRAFT, Status.PENDING, Status.REJECTED)).exists()


def test_the_secrets_it_writes_open_the_booking_page_the_api_and_the_staff_portal(seeded):
    link = token_get(raw=seeded["booking_token"], purpose=LinkToken.Purpose.MANAGE)
    assert link.booking.ack_id == seeded["ack_id"]
    assert link.booking.status == Status.CONFIRMED
    assert ApiClient.objects.filter(token_hash=token_hash(seeded["api_token"]), revoked_at__isnull=True).exists()
    admin = User.objects.get(email=seeded["admin_email"])
    assert admin.is_administrator
    assert Authenticator.objects.filter(user=admin, type=Authenticator.Type.TOTP).exists()
    # Only hashes are stored.
    assert not LinkToken.objects.filter(token_hash=seeded["booking_token"]).exists()


def test_the_busy_day_has_free_and_taken_slots(seeded):
    day = date.fromisoformat(seeded["busy_day"])
    assert day == timezone.localdate() + timedelta(days=3)
    slots = [s for s in Slot.objects.all() if timezone.localtime(s.start).date() == day]
    taken = Booking.objects.filter(slot__in=slots, status__in=SLOT_HOLDING_STATUSES).count()
    assert 0 < taken < len(slots)


def test_refuses_a_database_that_already_has_bookings(seeded):
    with pytest.raises(CommandError, match="empty database"):
        call_command("seed_bench", stdout=io.StringIO(), **SMALL)


def test_says_when_there_are_too_few_slots(db):
    with pytest.raises(CommandError, match="Not enough slots"):
        call_command("seed_bench", counsellors=1, days=6, slots_per_day=1, bookings=500)
    assert not Booking.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_every_endpoint_the_benchmark_measures_answers_as_it_expects(tmp_path, live_server):
    """`make bench` on a small data set, without the load: each endpoint, walked to as the
    benchmark walks to it (the wizard's busy day chosen first), answers 200 with what it is
    measured for. A page that changes how it answers (a redirect where there was a page)
    would otherwise be found only when the benchmark skips it."""
    from urllib.parse import urlsplit

    from benchmarks import run

    path = tmp_path / "seed.json"
    call_command("seed_bench", json_path=str(path), seed=7, stdout=io.StringIO(), **SMALL)
    csrf = "b" * 32
    endpoints, info = run.prepare(json.loads(path.read_text()), csrf)
    port = urlsplit(live_server.url).port
    for endpoint in endpoints:
        if endpoint.key.startswith("ceiling"):
            continue  # the benchmark's own views (benchmarks/urls.py), not the app's
        if endpoint.key == "wizard_slots":
            run.setup_wizard(endpoint, port, info, csrf)
        if not endpoint.skipped:
            run.probe(endpoint, port)
        assert not endpoint.skipped, f"{endpoint.key}: {endpoint.skipped}"
    assert {e.key for e in endpoints} >= {"wizard_slots", "booking_page", "staff_list", "calendar_feed"}


def test_the_share_of_cpu_time_the_host_took_is_read_from_proc_stat():
    """On a shared virtual machine the host takes CPU time (steal); the benchmark says how
    much during its load, as the reason its numbers move from one run to the next."""
    from benchmarks import run

    assert run.steal_share((100, 10_000), (130, 11_000)) == 0.03
    assert run.steal_share((100, 10_000), (100, 10_000)) is None  # no time passed
    assert run.steal_share(None, (100, 10_000)) is None  # not Linux
    times = run.cpu_times()
    if times is not None:
        steal, total = times
        assert 0 <= steal <= total
