"""Publish free slots from the weekly hours of every counsellor at work (their account is
active, or they have none), whether clients see their profile yet or not: staff book the
hidden ones too, and clients see the slots once the profile is shown. Safe to run daily
(cron): existing slots are never duplicated."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bookings.models import Counsellor
from bookings.selectors import counsellors_at_work_q
from bookings.services import availability_generate


class Command(BaseCommand):
    help = "Generate free slots from weekly working hours for the coming weeks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--weeks", type=int, default=4)
        parser.add_argument("--counsellor", help="Only this counsellor (slug).")

    def handle(self, *args: Any, weeks: int, counsellor: str | None, **options: Any) -> None:
        qs = Counsellor.objects.filter(counsellors_at_work_q(), weekly_hours__isnull=False).distinct()
        if counsellor:
            qs = qs.filter(slug=counsellor)
        total = 0
        for c in qs:
            created, _ = availability_generate(counsellor=c, weeks=weeks)
            total += created
            self.stdout.write(f"{c.display_name}: {created} new slot{'s' if created != 1 else ''}")
        self.stdout.write(self.style.SUCCESS(f"Done: {total} new slots."))
