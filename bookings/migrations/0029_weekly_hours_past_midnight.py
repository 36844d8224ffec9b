"""Weekly hours may run past midnight: a row that ends earlier than it starts ends on the next
day (Friday 22:00 to 01:00 ends on Saturday), where before a counsellor working late needed two
rows, and a session across midnight could never be published. Only hours that end when they
start are empty, and refused.

00:00 to 00:00 was allowed before, as the whole day (00:00 is midnight, the end of the day).
It is now an empty row, so each such row is first split where a session of it begins, near
noon: 00:00 to that time, and that time to midnight, which publish the same sessions.

Rolled back, a row past midnight becomes two, on its day until midnight and on the next from
00:00, which the rule before allowed: their sessions, but for one across midnight."""

from datetime import time

from django.db import migrations, models

DAY = 24 * 60


def _time(minutes):
    return time(minutes // 60, minutes % 60)


def _checked_now(schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # The foreign keys are checked at commit; PostgreSQL will not ALTER a table with such
        # checks pending ("pending trigger events"), so they are made now (as 0012 does).
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def whole_days_split(apps, schema_editor):
    WeeklyHours = apps.get_model("bookings", "WeeklyHours")
    split = False
    for hours in WeeklyHours.objects.filter(start_time=time(0), end_time=time(0)):
        step = hours.session_minutes + hours.buffer_minutes
        noon = step * max(1, DAY // 2 // step)
        if noon >= DAY:  # one session a day (not possible from the form): it begins at 00:00
            noon = DAY // 2
        WeeklyHours.objects.create(
            counsellor_id=hours.counsellor_id,
            weekday=hours.weekday,
            start_time=_time(noon),
            end_time=time(0),
            session_minutes=hours.session_minutes,
            buffer_minutes=hours.buffer_minutes,
        )
        hours.end_time = _time(noon)
        hours.save(update_fields=["end_time"])
        split = True
    if split:
        _checked_now(schema_editor)


def past_midnight_split(apps, schema_editor):
    WeeklyHours = apps.get_model("bookings", "WeeklyHours")
    split = False
    for hours in WeeklyHours.objects.filter(end_time__lt=models.F("start_time")).exclude(end_time=time(0)):
        WeeklyHours.objects.create(
            counsellor_id=hours.counsellor_id,
            weekday=(hours.weekday + 1) % 7,
            start_time=time(0),
            end_time=hours.end_time,
            session_minutes=hours.session_minutes,
            buffer_minutes=hours.buffer_minutes,
        )
        hours.end_time = time(0)
        hours.save(update_fields=["end_time"])
        split = True
    if split:
        _checked_now(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0028_api_token_expiry")]

    operations = [
        migrations.RemoveConstraint(model_name="weeklyhours", name="weekly_hours_end_after_start"),
        migrations.RunPython(whole_days_split, past_midnight_split),
        migrations.AddConstraint(
            model_name="weeklyhours",
            constraint=models.CheckConstraint(
                condition=models.Q(("end_time", models.F("start_time")), _negated=True), name="weekly_hours_not_empty"
            ),
        ),
    ]
