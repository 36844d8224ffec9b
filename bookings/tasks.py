"""Background tasks (django.tasks). Each is a thin wrapper over a service and idempotent."""

from __future__ import annotations

from django.tasks import task

from bookings import emails


@task()
def deliver_email(email_id: int) -> bool:
    return emails.email_deliver(email_id=email_id)


@task()
def send_due_emails() -> int:
    return emails.emails_send_due()
