from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bookings.models import Booking, BookingEvent, LinkToken, OutboundEmail, Payment, Status
from bookings.services import ANONYMISED_NAME, booking_anonymise, retention_apply
from bookings.tokens import token_create

pytestmark = pytest.mark.django_db

MARKER = "Zq9-PRIVATE-MARKER"


def _personal(make_booking, status, counsellor, **extra):
    booking = make_booking(
        status,
        counsellor=counsellor,
        client_name=f"{MARKER} Name",
        email=f"{MARKER.lower()}@example.com",
        phone="+919876543210",
        concerns=f"{MARKER} words",
        preferred_times=f"{MARKER} mornings",
        **extra,
    )
    token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=1))
    OutboundEmail.objects.create(kind="x", booking=booking, to=booking.email, subject=MARKER, body_text=MARKER)
    BookingEvent.objects.create(booking=booking, to_status=status, actor="client", reason=MARKER)
    return booking


def _contains_marker(booking: Booking) -> bool:
    booking.refresh_from_db()
    values = [str(getattr(booking, f.attname)) for f in Booking._meta.concrete_fields]
    values += [str(v) for e in OutboundEmail.objects.filter(booking=booking).values() for v in e.values()]
    values += [e.reason for e in booking.events.all()]
    values += [str(p.raw) for p in Payment.objects.filter(booking=booking)]
    return any(MARKER.lower() in v.lower() for v in values)


def test_anonymise_clears_personal_data_and_keeps_the_accounts(make_booking, counsellor):
    booking = _personal(make_booking, Status.COMPLETED, counsellor)
    Payment.objects.create(
        booking=booking,
        provider="sandbox",
        amount=booking.amount,
        currency="INR",
        status="confirmed",
        provider_payment_id="pay_1",
        raw={"email": MARKER},
    )
    assert _contains_marker(booking)
    assert booking_anonymise(booking_id=booking.pk, reason="Client asked")
    assert not _contains_marker(booking)
    assert booking.client_name == ANONYMISED_NAME and booking.anonymised_at
    assert (booking.ack_id, booking.amount, booking.status) == (booking.ack_id, 150000, Status.COMPLETED)
    payment = Payment.objects.get(booking=booking)
    assert (payment.amount, payment.provider_payment_id) == (150000, "pay_1")
    assert not LinkToken.objects.filter(booking=booking, revoked_at__isnull=True).exists()  # none opens anything
    assert booking.events.filter(action="anonymised").exists()


def test_active_bookings_are_not_anonymised(make_booking, counsellor):
    booking = _personal(make_booking, Status.PENDING, counsellor)
    assert booking_anonymise(booking_id=booking.pk, reason="x") is False
    assert _contains_marker(booking)


def test_retention_anonymises_only_old_finished_bookings(make_booking, counsellor, settings):
    settings.RETENTION_MONTHS = 12
    old = _personal(make_booking, Status.CANCELLED, counsellor)
    recent = _personal(make_booking, Status.REJECTED, counsellor)
    active = _personal(make_booking, Status.CONFIRMED, counsellor)
    Booking.objects.filter(pk__in=[old.pk, active.pk]).update(updated_at=timezone.now() - timedelta(days=400))
    result = retention_apply()
    assert result["anonymised"] == 1
    assert not _contains_marker(old)
    assert _contains_marker(recent) and _contains_marker(active)
    assert retention_apply()["anonymised"] == 0  # idempotent


def test_emails_go_a_month_after_they_were_sent_or_given_up_on():
    month_ago = timezone.now() - timedelta(days=31)
    sent = OutboundEmail.State.SENT
    old_sent = OutboundEmail.objects.create(kind="x", to="a@example.com", subject="s", body_text=MARKER)
    OutboundEmail.objects.filter(pk=old_sent.pk).update(status=sent, sent_at=month_ago, created_at=month_ago)
    # "Your links" about no booking, never delivered: it holds an address and live-looking links.
    old_failed = OutboundEmail.objects.create(kind="booking_links", to="b@example.com", subject="s", body_text=MARKER)
    OutboundEmail.objects.filter(pk=old_failed.pk).update(status=OutboundEmail.State.FAILED, created_at=month_ago)
    recent_failed = OutboundEmail.objects.create(kind="x", to="c@example.com", subject="s", body_text=MARKER)
    OutboundEmail.objects.filter(pk=recent_failed.pk).update(status=OutboundEmail.State.FAILED)
    pending = OutboundEmail.objects.create(kind="x", to="d@example.com", subject="s", body_text=MARKER)
    OutboundEmail.objects.filter(pk=pending.pk).update(created_at=month_ago)  # still being retried: kept
    assert retention_apply()["emails_deleted"] == 2
    assert set(OutboundEmail.objects.values_list("pk", flat=True)) == {recent_failed.pk, pending.pk}


def test_anonymising_keeps_what_a_payment_actually_took(make_booking, counsellor):
    """A wrong amount held, its refund still owed: the amount to return survives erasure."""
    from bookings.services import payment_captured_amount, payment_confirm, payment_start

    booking = make_booking(Status.APPROVED, counsellor=counsellor)
    payment = payment_start(booking_id=booking.pk)
    payment_confirm(
        payment_id=payment.pk, provider_payment_id="pay_w", amount=99_900, currency="INR", raw={}, source="t"
    )
    Booking.objects.filter(pk=booking.pk).update(status=Status.CANCELLED)

    assert booking_anonymise(booking_id=booking.pk, reason="Erased at the client's request")

    payment.refresh_from_db()
    assert payment.raw == {} and payment_captured_amount(payment) == 99_900


def test_expired_sessions_go_with_what_an_abandoned_wizard_held(client):
    """A wizard left half-way keeps the client's name and words in their session; Django
    never deletes an expired session by itself, so the retention sweep does."""
    from django.contrib.sessions.models import Session

    session = client.session
    session["booking_wizard"] = {"run": {"data": {"concerns": {"concerns": MARKER}}}}
    session.save()
    key = session.session_key
    assert Session.objects.filter(session_key=key).exists()
    live = Session.objects.create(
        session_key="x" * 32, session_data="live", expire_date=timezone.now() + timedelta(hours=1)
    )
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert retention_apply()["sessions_deleted"] == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
    assert retention_apply()["sessions_deleted"] == 0


def test_the_staff_view_log_is_kept_for_the_retention_period_only(make_booking, counsellor, admin_user, settings):
    """Who on the staff opened whose booking, and when, is personal data about both."""
    from bookings.models import BookingView

    settings.RETENTION_MONTHS = 12
    booking = make_booking(Status.CONFIRMED, counsellor=counsellor)
    old = BookingView.objects.create(booking=booking, user=admin_user, viewed_at=timezone.now() - timedelta(days=400))
    recent = BookingView.objects.create(booking=booking, user=admin_user)
    assert retention_apply()["views_deleted"] == 1
    assert list(BookingView.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not BookingView.objects.filter(pk=old.pk).exists()
    assert retention_apply()["views_deleted"] == 0


def test_rate_limit_counters_of_past_windows_go(settings):
    """A counter's key is a hash of an address or an IP address, guessable from a list of
    them: the sweep deletes those whose window ended a day ago."""
    from bookings.models import RateCounter
    from bookings.ratelimit import ratelimit_hit

    settings.REDIS_URL = ""
    ratelimit_hit(scope="wizard_submit_email", key="meera@example.com")
    old = RateCounter.objects.get()
    RateCounter.objects.filter(pk=old.pk).update(period_start=old.period_start - 2 * 86400)
    ratelimit_hit(scope="status_lookup", key="203.0.113.7")
    assert retention_apply()["rate_counters_deleted"] == 1
    assert RateCounter.objects.count() == 1 and not RateCounter.objects.filter(pk=old.pk).exists()


def test_finished_task_records_go_after_a_month(settings):
    """A failed task's record keeps its traceback, which can quote a row the database refused
    (a client's name, email, words); a queued or running task is never touched."""
    from django.tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    from bookings.tasks import deliver_email

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    results = [deliver_email.enqueue(n) for n in range(5)]
    rows = DBTaskResult.objects.order_by("enqueued_at", "pk")
    assert [str(r.pk) for r in rows] == [r.id for r in results]
    long_ago, recently = timezone.now() - timedelta(days=31), timezone.now() - timedelta(days=29)
    old_failed, old_done, new_failed, queued, running = rows
    for row, status, finished in (
        (old_failed, TaskResultStatus.FAILED, long_ago),
        (old_done, TaskResultStatus.SUCCESSFUL, long_ago),
        (new_failed, TaskResultStatus.FAILED, recently),
        (running, TaskResultStatus.RUNNING, None),
    ):
        DBTaskResult.objects.filter(pk=row.pk).update(status=status, finished_at=finished, traceback=MARKER)
    assert retention_apply()["task_results_deleted"] == 2
    assert set(DBTaskResult.objects.values_list("pk", flat=True)) == {new_failed.pk, queued.pk, running.pk}
    assert retention_apply()["task_results_deleted"] == 0


def test_refund_news_no_payment_claimed_goes_after_a_month():
    from bookings.models import RefundHeardEarly

    def news(refund_id: str, days_ago: int) -> RefundHeardEarly:
        return RefundHeardEarly.objects.create(
            provider="razorpay",
            provider_payment_id="pay_unknown",
            provider_refund_id=refund_id,
            state=RefundHeardEarly.State.PROCESSED,
            amount=1000,
            received_at=timezone.now() - timedelta(days=days_ago),
        )

    news("rfnd_old", 31)
    recent = news("rfnd_recent", 29)
    assert retention_apply()["refund_news_deleted"] == 1
    assert list(RefundHeardEarly.objects.values_list("pk", flat=True)) == [recent.pk]


def test_anonymising_gives_up_the_emails_not_sent_yet(make_booking, counsellor):
    """A cancellation's email still being retried when the booking is erased: emptied, it
    would go out blank to an address that is no one's. It is given up instead (and deleted
    with the other given-up emails a month later)."""
    from bookings.emails import email_deliver

    booking = _personal(make_booking, Status.CANCELLED, counsellor)
    email = OutboundEmail.objects.get(booking=booking)
    assert email.status == OutboundEmail.State.PENDING
    assert booking_anonymise(booking_id=booking.pk, reason="Erased at the client's request")
    email.refresh_from_db()
    assert email.status == OutboundEmail.State.FAILED and email.subject == "(removed)"
    assert email_deliver(email_id=email.pk) is False
    assert mail.outbox == []


def test_expired_cache_entries_go(settings):
    """Without Redis, staff sign-in's and password reset's rate limits (allauth's) live in the
    database cache, keyed by an unsalted hash of the address typed: Django deletes expired
    rows only when the table is full, so the sweep does."""
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache
    from django.db import connection

    cache = caches["default"]
    assert isinstance(cache, DatabaseCache)
    cache.set("allauth:rl:login_failed:k:" + "a" * 64, [1.0], timeout=60)
    cache.set("still-live", 1, timeout=3600)

    def rows() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(cache._table)}")  # noqa: S608
            return cursor.fetchone()[0]

    assert rows() == 2
    assert retention_apply()["cache_entries_deleted"] == 0
    assert retention_apply(now=timezone.now() + timedelta(minutes=5))["cache_entries_deleted"] == 1
    assert rows() == 1 and cache.get("still-live") == 1


def test_the_reasons_of_leave_long_over_are_cleared(counsellor, settings):
    """A counsellor's reason for leave is their own words about themselves (an operation,
    say): of no use once the leave is long over. The period stays, for the old calendar."""
    from bookings.models import BlockedPeriod

    settings.RETENTION_MONTHS = 12
    now = timezone.now()
    old = BlockedPeriod.objects.create(
        counsellor=counsellor, start=now - timedelta(days=400), end=now - timedelta(days=370), reason="Surgery"
    )
    recent = BlockedPeriod.objects.create(
        counsellor=counsellor, start=now - timedelta(days=30), end=now - timedelta(days=20), reason="Family"
    )
    assert retention_apply()["leave_reasons_cleared"] == 1
    old.refresh_from_db(), recent.refresh_from_db()
    assert (old.reason, recent.reason) == ("", "Family")
    assert retention_apply()["leave_reasons_cleared"] == 0


def test_active_bookings_untouched_for_the_retention_period_are_reported(make_booking, counsellor, settings):
    """A session never recorded as held, a request never answered: kept whole until staff
    settle it, so the daily command's line says how many there are."""
    from io import StringIO

    from django.core.management import call_command

    settings.RETENTION_MONTHS = 12
    stale = _personal(make_booking, Status.CONFIRMED, counsellor)
    make_booking(Status.PENDING, counsellor=counsellor, email="recent@example.com")  # recent: not counted
    Booking.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(days=400))
    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert "1 active booking(s) untouched for RETENTION_MONTHS" in out.getvalue()
    assert _contains_marker(stale)  # not anonymised: that is staff's decision


@pytest.mark.parametrize(
    "money",
    [
        {"refund_status": Payment.RefundState.FAILED},
        {"refund_status": Payment.RefundState.PENDING},
        {"needs_attention": "Paid the wrong amount"},
        {"status": Payment.State.PENDING},  # captured, not yet confirmed or refunded: held
    ],
    ids=["refund failed", "refund under way", "alert unanswered", "money held"],
)
def test_a_finished_booking_with_money_still_to_settle_is_kept_whole(make_booking, counsellor, settings, money):
    """Past the retention period, a cancelled booking whose refund failed is still owed money:
    the name and address are how staff reach the client. Kept, and counted for the cron; what
    the client wrote goes on time, as it is no help in settling."""
    from io import StringIO

    from django.core.management import call_command

    settings.RETENTION_MONTHS = 12
    owed = _personal(make_booking, Status.CANCELLED, counsellor)
    fields = {"status": Payment.State.CONFIRMED, **money}
    Payment.objects.create(
        booking=owed,
        provider="sandbox",
        provider_order_id="order_1",
        provider_payment_id="pay_1",
        amount=owed.amount,
        currency=owed.currency,
        **fields,
    )
    settled = make_booking(Status.CANCELLED, counsellor=counsellor, email="settled@example.com")
    Booking.objects.update(updated_at=timezone.now() - timedelta(days=400))
    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert "1 finished booking(s) past RETENTION_MONTHS kept with the client's name and address" in out.getvalue()
    assert _contains_marker(owed)
    owed.refresh_from_db()
    assert (owed.client_name, owed.email) == (f"{MARKER} Name", f"{MARKER.lower()}@example.com")
    assert (owed.concerns, owed.preferred_times) == ("", "")
    assert Booking.objects.get(pk=settled.pk).anonymised_at is not None
    Payment.objects.update(
        refund_status=Payment.RefundState.PROCESSED, needs_attention="", status=Payment.State.CONFIRMED
    )
    assert retention_apply()["anonymised"] == 1
    assert not _contains_marker(owed)


def test_anonymising_leaves_no_initials_in_the_counsellors_daily_summary(make_booking, counsellor):
    from bookings import notifications

    erased = make_booking(Status.COMPLETED, counsellor=counsellor, client_name="Meera Iyer")
    other = make_booking(Status.COMPLETED, counsellor=counsellor, client_name="Kiran Rao")
    notifications.daily_summary(counsellor=counsellor, day=timezone.localdate(), bookings=[erased, other])
    booking_anonymise(booking_id=erased.pk, reason="Erased at the client's request")
    summary = OutboundEmail.objects.get(kind="daily_summary")
    for body in (summary.body_text, summary.body_html):
        assert erased.ack_id in body and "MI" not in body
        assert other.ack_id in body and "KR" in body
