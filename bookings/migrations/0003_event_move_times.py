"""A move's two times as data on its event, not only in its English reason.

Moves recorded before are read back from their reason ("From Sat 28 Nov 2026, 11:00 IST to
Tue 01 Dec 2026, 11:00 IST", in the clinic's zone then). A reason that does not read as one
(the zone has changed since, say) keeps no times, and the client's timeline shows it as written.
"""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import migrations, models

MOMENT = "%a %d %b %Y, %H:%M"
REASON = re.compile(r"From (?P<old>.+?) (?P<old_zone>\S+) to (?P<new>.+?) (?P<new_zone>\S+)")


def _moment(text, zone_name, tz):
    try:
        naive = datetime.strptime(text, MOMENT)
    except ValueError:
        return None
    # The zone's name tells apart the two 01:30s of a daylight-saving change.
    for fold in (0, 1):
        moment = naive.replace(tzinfo=tz, fold=fold)
        if moment.tzname() == zone_name:
            return moment
    return None


def times_from_reasons(apps, schema_editor):
    BookingEvent = apps.get_model("bookings", "BookingEvent")
    tz = ZoneInfo(settings.TIME_ZONE)
    for event in BookingEvent.objects.filter(action="rescheduled").only("pk", "reason").iterator():
        match = REASON.fullmatch(event.reason)
        if match is None:
            continue
        old = _moment(match["old"], match["old_zone"], tz)
        new = _moment(match["new"], match["new_zone"], tz)
        if old is not None and new is not None:
            BookingEvent.objects.filter(pk=event.pk).update(moved_from=old, moved_to=new)


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0002_slot_no_overlap_postgresql"),
    ]

    operations = [
        migrations.AddField(
            model_name="bookingevent",
            name="moved_from",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="bookingevent",
            name="moved_to",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(times_from_reasons, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="bookingevent",
            constraint=models.CheckConstraint(
                condition=models.Q(moved_from__isnull=True, moved_to__isnull=True)
                | models.Q(action="rescheduled", moved_from__isnull=False, moved_to__isnull=False),
                name="event_move_times_only_on_moves",
            ),
        ),
    ]
