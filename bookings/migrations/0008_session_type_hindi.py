"""Session types can be named and described in Hindi for clients reading in Hindi. Empty by
default, in the database too, so the release still running during a deploy can add one."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0007_waitlist_closed'),
    ]

    operations = [
        migrations.AddField(
            model_name='sessiontype',
            name='description_hi',
            field=models.TextField(blank=True, default='', db_default=''),
        ),
        migrations.AddField(
            model_name='sessiontype',
            name='name_hi',
            field=models.CharField(blank=True, default='', db_default='', max_length=100),
        ),
    ]
