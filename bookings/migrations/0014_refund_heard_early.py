"""News of a refund of a payment whose capture has not reached us yet, kept until it does."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0013_counsellor_change_emails'),
    ]

    operations = [
        migrations.CreateModel(
            name='RefundHeardEarly',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('provider', models.CharField(max_length=20)),
                ('provider_payment_id', models.CharField(max_length=100)),
                ('provider_refund_id', models.CharField(max_length=100)),
                ('state', models.CharField(choices=[('created', 'Refund started'), ('processed', 'Refunded'), ('failed', 'Refund failed')], max_length=10)),
                ('amount', models.PositiveIntegerField(help_text='In minor units (paise).')),
                ('raw', models.JSONField(blank=True, default=dict, help_text="The provider's last word on the refund.")),
                ('received_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'indexes': [models.Index(fields=['provider', 'provider_payment_id'], name='refund_heard_early_payment')],
                'constraints': [models.UniqueConstraint(fields=('provider', 'provider_refund_id'), name='refund_heard_early_unique'), models.CheckConstraint(condition=models.Q(models.Q(('provider_payment_id', ''), _negated=True), models.Q(('provider_refund_id', ''), _negated=True)), name='refund_heard_early_ids')],
            },
        ),
    ]
