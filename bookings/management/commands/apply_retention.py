"""Apply the retention policy (see docs/deployment.md). Safe to run daily from cron."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from bookings.services import retention_apply


class Command(BaseCommand):
    help = "Anonymise finished bookings past the retention period; delete old sent emails, expired sessions, old staff views, finished tasks and expired cache entries; anonymise staff accounts deactivated past the retention period."

    def handle(self, *args: object, **options: object) -> None:
        from staff.services import former_staff_anonymise  # the staff portal's own accounts

        result = retention_apply()
        result["former_staff_anonymised"] = former_staff_anonymise()
        self.stdout.write(
            f"{result['anonymised']} booking(s) anonymised, {result['emails_deleted']} email(s) deleted, "
            f"{result['sessions_deleted']} expired session(s), {result['views_deleted']} old staff view(s), "
            f"{result['rate_counters_deleted']} old rate-limit counter(s), "
            f"{result['task_results_deleted']} finished task record(s), "
            f"{result['refund_news_deleted']} unclaimed refund notice(s) and "
            f"{result['cache_entries_deleted']} expired cache entry(ies) deleted; "
            f"{result['leave_reasons_cleared']} past leave reason(s) cleared; "
            f"{result['former_staff_anonymised']} former staff account(s) anonymised."
        )
        if result["active_untouched"]:
            # Kept with everything the client wrote until staff settle them (retention_apply).
            self.stdout.write(
                f"{result['active_untouched']} active booking(s) untouched for RETENTION_MONTHS: "
                "answer, record or cancel them in the staff portal; until then they are kept whole."
            )
        if result["money_owed"]:
            self.stdout.write(
                f"{result['money_owed']} finished booking(s) past RETENTION_MONTHS kept with the client's "
                "name and address (what they wrote is cleared): a refund is under way or failed, or a payment "
                "waits for staff. Settle it in the staff portal."
            )
