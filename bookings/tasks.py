"""Background tasks (django.tasks). Each is a thin wrapper over a service and idempotent."""

from __future__ import annotations

from django.tasks import task

from bookings import emails


@task()
def deliver_email(email_id: int) -> bool:
    return emails.email_deliver(email_id=email_id)


@task()
def send_due_emails() -> int:
    """The outbox sweep, after the requests for booking links that no task answered."""
    from bookings.services import booking_links_requests_handle_due

    booking_links_requests_handle_due()
    return emails.emails_send_due()


@task()
def send_booking_links(request_id: int) -> int | None:
    """Email an address the links to its bookings, as asked for on /status/ (a LinksRequest)."""
    from bookings.services import booking_links_request_handle

    return booking_links_request_handle(request_id=request_id)


@task()
def refund_payment(payment_id: int) -> str:
    from bookings.services import payment_refund_execute

    return payment_refund_execute(payment_id=payment_id).refund_status


@task()
def expire_bookings() -> int:
    """The payment-window sweep; run it every few minutes (cron or a periodic worker)."""
    from bookings.services import bookings_expire, payment_refunds_check, payment_refunds_retry

    expired = bookings_expire()
    payment_refunds_retry()
    payment_refunds_check()
    return expired


@task()
def purge_drafts() -> int:
    """Make held requests whose client's last session is now recorded (see purge_drafts), then
    delete unverified drafts past DRAFT_RETENTION_HOURS; safe to run as often as wanted."""
    from bookings.services import drafts_purge, held_requests_release

    held_requests_release()
    return drafts_purge()


@task()
def send_reminders() -> int:
    """Reminders before confirmed sessions; run it every few minutes. Each is sent once."""
    from bookings.services import reminders_send

    return reminders_send()


@task()
def send_daily_summaries() -> int:
    """Counsellors' morning summaries; run it each morning. Once per counsellor per day."""
    from bookings.services import daily_summaries_send

    return daily_summaries_send()


@task()
def send_api_token_warnings() -> int:
    """Tell the administrators of chatbot API tokens that expire soon; run it daily. Once per token."""
    from bookings.api.auth import api_token_warnings_send

    return api_token_warnings_send()


@task()
def offer_freed_slots(slot_ids: list[int]) -> int:
    """Offer slots that just became free to the waitlist (see services.slots_freed)."""
    from bookings.services import waitlist_offer_slots

    return waitlist_offer_slots(slot_ids=slot_ids)


@task()
def expire_waitlist() -> dict[str, int]:
    """The waitlist sweep (expire past ranges, offer free times nobody took again and freed
    times whose offer was lost, delete stale entries); run it hourly."""
    from bookings.services import waitlist_expire

    return waitlist_expire()
