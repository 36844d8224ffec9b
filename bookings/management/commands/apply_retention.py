"""Apply the retention policy (see docs/deployment.md). Safe to run daily from cron."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from bookings.services import retention_apply


class Command(BaseCommand):
    help = "Anonymise finished bookings past the retention period; delete old sent emails, expired sessions, old staff views, finished tasks and expired cache entries."

    def handle(self, *args: object, **options: object) -> None:
        result = retention_apply()
        self.stdout.write(
            f"{result['anonymised']} booking(s) anonymised, {result['emails_deleted']} email(s) deleted, "
            f"{result['sessions_deleted']} expired session(s), {result['views_deleted']} old staff view(s), "
            f"{result['rate_counters_deleted']} old rate-limit counter(s), "
            f"{result['task_results_deleted']} finished task record(s), "
            f"{result['refund_news_deleted']} unclaimed refund notice(s) and "
            f"{result['cache_entries_deleted']} expired cache entry(ies) deleted."
        )
