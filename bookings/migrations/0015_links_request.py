"""A request from /status/ for the links to an address's bookings, waiting for a worker."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0014_refund_heard_early'),
    ]

    operations = [
        migrations.CreateModel(
            name='LinksRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('email', models.EmailField(max_length=254)),
                ('language', models.CharField(help_text="The page's language, for the email.", max_length=10)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
    ]
