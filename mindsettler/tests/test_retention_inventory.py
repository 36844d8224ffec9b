"""Every table's every column, and what becomes of the personal data in it: the inventory
behind docs/deployment.md §8. A new model or field fails here until it is classified (and,
if it holds personal data, until the retention sweep, erasure or staff departure deals with
it and the deployment guide says so)."""

from __future__ import annotations

import re
from pathlib import Path

from django.apps import apps

ANONYMISED = "booking_anonymise: after RETENTION_MONTHS once finished, or on erasure"
WAITLIST = "deleted: unconfirmed after DRAFT_RETENTION_HOURS, finished ones 30 days on, on erasure"
EMAIL = "emptied with its booking; the row deleted 30 days after sent or given up; on erasure"
STAFF_LEFT = "former_staff_anonymise: RETENTION_MONTHS after deactivation"

# Columns holding personal data (of a client or of a member of staff), and when it goes.
PERSONAL: dict[str, dict[str, str]] = {
    "sessions.Session": {"session_data": "expired sessions deleted by apply_retention (12 hours at most)"},
    "account.EmailAddress": {"email": STAFF_LEFT},
    "account.EmailConfirmation": {"key": "deleted with its email address (staff left)"},
    "mfa.Authenticator": {"data": STAFF_LEFT},
    "django_tasks_database.DBTaskResult": {
        # Arguments are ids only (bookings.tasks); a traceback can quote a row.
        "traceback": "finished tasks deleted 30 days on",
        "return_value": "finished tasks deleted 30 days on",
        "args_kwargs": "ids only; finished tasks deleted 30 days on",
    },
    "bookings.Booking": {
        "client_name": ANONYMISED,
        "email": ANONYMISED,
        "phone": ANONYMISED,
        "concerns": ANONYMISED,
        "preferred_times": ANONYMISED,
        "meeting_url": ANONYMISED,
        "submission_key": ANONYMISED,
    },
    "bookings.BookingEvent": {"reason": ANONYMISED},
    "bookings.Payment": {"raw": "payer details never stored; payloads cleared by booking_anonymise"},
    "bookings.RefundHeardEarly": {"raw": "payer details never stored; deleted 30 days on"},
    "bookings.OutboundEmail": {
        "to": EMAIL,
        "subject": EMAIL,
        "body_text": EMAIL,
        "body_html": EMAIL,
        "ics": EMAIL,
    },
    "bookings.LinksRequest": {
        "email": "deleted once answered (by its task, else by send_emails a minute on), or a day on"
    },
    "bookings.BookingView": {"user": "deleted after RETENTION_MONTHS", "viewed_at": "deleted after RETENTION_MONTHS"},
    "bookings.BlockedPeriod": {"reason": "cleared RETENTION_MONTHS after the leave ended"},
    "bookings.RateCounter": {"key": "HMAC of an address or IP; deleted a day after its window"},
    "bookings.WaitlistEntry": {"client_name": WAITLIST, "email": WAITLIST},
    "bookings.Counsellor": {
        "user": "kept: links the profile to its account",
        "meeting_url": STAFF_LEFT,
        "bio": STAFF_LEFT,
        "bio_hi": STAFF_LEFT,
        "approach": STAFF_LEFT,
        "approach_hi": STAFF_LEFT,
        "display_name": "kept: the clinic's record of who held each session",
    },
    "staff.User": {
        "first_name": STAFF_LEFT,
        "last_name": STAFF_LEFT,
        "email": STAFF_LEFT,
        "password": STAFF_LEFT,
        "last_login": "kept: a date of the account, for the audit trail",
    },
}

# Everything else: ids, statuses, dates, amounts, references, hashes of random secrets,
# clinic and catalogue data, or links to rows named above.
NOT_PERSONAL: dict[str, set[str]] = {
    "auth.Permission": {"id", "name", "content_type", "codename"},
    "auth.Group": {"id", "name"},
    "contenttypes.ContentType": {"id", "app_label", "model"},
    "sessions.Session": {"session_key", "expire_date"},
    "account.EmailAddress": {"id", "user", "verified", "primary"},
    "account.EmailConfirmation": {"id", "email_address", "created", "sent"},
    "mfa.Authenticator": {"id", "user", "type", "created_at", "last_used_at"},
    "django_tasks_database.DBTaskResult": {
        "id", "status", "enqueued_at", "started_at", "finished_at", "priority", "task_path", "worker_ids",
        "queue_name", "backend_name", "run_after", "exception_class_path",
    },
    "bookings.Clinic": {"id", "address", "directions", "phone", "email"},
    "bookings.Counsellor": {
        "id", "slug", "title", "title_hi", "languages", "offers_online", "offers_in_person", "daily_summary",
        "change_emails", "is_active", "sort_order",
    },
    "bookings.CounsellorPreviousSlug": {"id", "counsellor", "slug", "replaced_at"},
    "bookings.SessionType": {
        "id", "name", "slug", "description", "name_hi", "description_hi", "duration_minutes", "price", "currency",
        "offers_online", "offers_in_person", "is_active", "sort_order",
    },
    "bookings.Slot": {"id", "counsellor", "start", "end", "created_at", "freed_at"},
    "bookings.Booking": {
        "id", "ack_id", "status", "version", "age_confirmation", "consent_policy_version", "consented_at", "language",
        "session_type", "mode", "counsellor", "preferred_slot", "slot", "amount", "currency", "created_by",
        "created_at", "updated_at", "approved_at", "payment_due_at", "anonymised_at", "verified_at",
    },
    "bookings.BookingEvent": {
        "id", "booking", "from_status", "to_status", "action", "actor", "actor_user", "moved_from", "moved_to",
        "created_at",
    },
    "bookings.LinkToken": {"id", "booking", "purpose", "slot", "token_hash", "created_at", "expires_at", "used_at",
                           "revoked_at"},
    "bookings.Payment": {
        "id", "booking", "provider", "provider_order_id", "provider_payment_id", "amount", "currency", "status",
        # System-written text about amounts and references, for staff.
        "needs_attention",
        "refund_status", "refunded_amount", "refunded_earlier", "captured_amount", "provider_refund_id",
        "created_at", "updated_at", "confirmed_at", "authorized_at",
    },
    "bookings.RefundHeardEarly": {"id", "provider", "provider_payment_id", "provider_refund_id", "state", "amount",
                                  "received_at"},
    # digest: the SHA-256 of a signed body, which names the payer among random IDs: nothing can be
    # read back from it.
    "bookings.WebhookEvent": {"id", "provider", "digest", "event_id", "received_at"},
    "bookings.OutboundEmail": {"id", "kind", "booking", "status", "attempts", "refusals", "next_attempt_at",
                               "last_error", "created_at", "sent_at", "requeued_at"},
    "bookings.ApiClient": {"id", "name", "token_hash", "created_at", "expires_at", "expiry_warned_at",
                           "previous_token_hash", "previous_expires_at", "last_used_at", "revoked_at", "rate_window",
                           "rate_count"},
    "bookings.LinksRequest": {"id", "language", "created_at"},
    "bookings.BookingView": {"id", "booking"},
    "bookings.WeeklyHours": {"id", "counsellor", "weekday", "start_time", "end_time", "session_minutes",
                             "buffer_minutes"},
    "bookings.BlockedPeriod": {"id", "counsellor", "start", "end"},
    "bookings.RateCounter": {"period_start", "count"},
    "bookings.Reminder": {"id", "booking", "kind", "slot", "email", "created_at"},
    "bookings.DailySummary": {"id", "counsellor", "day", "sessions", "email", "created_at"},
    "bookings.WaitlistEntry": {"id", "session_type", "mode", "counsellor", "date_from", "date_to", "status",
                               "language", "created_at", "verified_at", "updated_at"},
    "bookings.WaitlistToken": {"id", "entry", "purpose", "token_hash", "created_at", "expires_at", "used_at"},
    "bookings.WaitlistOffer": {"id", "entry", "slot", "email", "created_at"},
    "staff.User": {"id", "is_superuser", "is_staff", "is_active", "date_joined", "role", "session_version"},
    "staff.AccountEvent": {"id", "member", "actor", "kind", "created_at"},
    "staff.SetupLink": {"id", "user", "token_hash", "created_at", "expires_at", "used_at"},
    "staff.CalendarSubscription": {"id", "user", "token_hash", "created_at", "last_read_at", "stopped_at"},
}  # fmt: skip


def test_every_column_of_every_table_is_classified():
    for model in apps.get_models():
        label = model._meta.label
        fields = {f.name for f in model._meta.concrete_fields}
        classified = set(PERSONAL.get(label, {})) | NOT_PERSONAL.get(label, set())
        assert fields == classified, (label, fields ^ classified)
        assert not set(PERSONAL.get(label, {})) & NOT_PERSONAL.get(label, set()), label


def test_the_deployment_guide_names_every_table_holding_personal_data():
    text = Path(__file__).resolve().parents[2].joinpath("docs", "deployment.md").read_text()
    section = text[text.index("## 8. Data retention") :]
    named = set(re.findall(r"`([a-z_]+\.[A-Za-z]+)`", section))
    assert set(PERSONAL) <= named, set(PERSONAL) - named
