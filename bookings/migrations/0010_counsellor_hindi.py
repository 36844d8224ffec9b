"""Counsellors can give their title, approach and bio in Hindi for clients reading in Hindi.
Empty by default, in the database too, so the release still running during a deploy can add
a counsellor."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0009_session_type_names_unique'),
    ]

    operations = [
        migrations.AddField(
            model_name='counsellor',
            name='approach_hi',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AddField(
            model_name='counsellor',
            name='bio_hi',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AddField(
            model_name='counsellor',
            name='title_hi',
            field=models.CharField(blank=True, db_default='', default='', max_length=120),
        ),
    ]
