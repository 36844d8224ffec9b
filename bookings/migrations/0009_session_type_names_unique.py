"""Two bookable session types never share a name, or a Hindi name, whatever the case.

The form has refused such a name for a long time, but two administrators saving at the same
moment could both have got past it. Before the constraints are added, any such pair is told
apart, so that the migration cannot stop a deployment: the older type keeps its name, and a
later one gets " (2)" (or the next free number) after it, for an administrator to rename.
"""

import django.db.models.functions.text
from django.db import migrations, models

NAME_LENGTH = 100  # SessionType.name and name_hi


def tell_apart_shared_names(apps, schema_editor):
    SessionType = apps.get_model("bookings", "SessionType")
    active = list(SessionType.objects.filter(is_active=True).order_by("pk").only("pk", "name", "name_hi"))
    for field in ("name", "name_hi"):
        taken = {getattr(st, field).lower() for st in active}
        seen = set()
        for st in active:
            value = getattr(st, field)
            if not value:
                continue
            if value.lower() not in seen:
                seen.add(value.lower())
                continue
            number = 2
            while True:
                suffix = f" ({number})"
                renamed = value[: NAME_LENGTH - len(suffix)] + suffix
                if renamed.lower() not in taken:
                    break
                number += 1
            taken.add(renamed.lower())
            seen.add(renamed.lower())
            setattr(st, field, renamed)
            SessionType.objects.filter(pk=st.pk).update(**{field: renamed})


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0008_session_type_hindi'),
    ]

    operations = [
        migrations.RunPython(tell_apart_shared_names, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='sessiontype',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('name'), condition=models.Q(('is_active', True)), name='session_type_active_name'),
        ),
        migrations.AddConstraint(
            model_name='sessiontype',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('name_hi'), condition=models.Q(('is_active', True), models.Q(('name_hi', ''), _negated=True)), name='session_type_active_name_hi'),
        ),
    ]
