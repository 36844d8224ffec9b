# Rescheduling (LinkToken.slot for RESCHEDULE links) and the waitlist.
# Only these models: other work in progress generates its own migrations.

import django.db.models.deletion
import django.db.models.functions.text
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0004_ratecounter'),
    ]

    operations = [
        migrations.CreateModel(
            name='WaitlistEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('client_name', models.CharField(max_length=120)),
                ('email', models.EmailField(help_text='Normalised: trimmed and lower-case.', max_length=254)),
                ('mode', models.CharField(choices=[('online', 'Online'), ('in_person', 'In person')], max_length=10)),
                ('date_from', models.DateField()),
                ('date_to', models.DateField(help_text='The last day that suits; the entry expires after it.')),
                ('status', models.CharField(choices=[('waiting', 'Waiting'), ('offered', 'Offered a time'), ('booked', 'Booked'), ('expired', 'Expired'), ('left', 'Left the waitlist')], default='waiting', max_length=10)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('verified_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='WaitlistOffer',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='WaitlistToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('purpose', models.CharField(choices=[('verify', 'Confirm email'), ('leave', 'Leave the waitlist')], max_length=10)),
                ('token_hash', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('expires_at', models.DateTimeField()),
                ('used_at', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.AddField(
            model_name='linktoken',
            name='slot',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='bookings.slot'),
        ),
        migrations.AlterField(
            model_name='linktoken',
            name='purpose',
            field=models.CharField(choices=[('verify', 'Verify email'), ('manage', 'Booking page'), ('cancel', 'Confirm cancellation'), ('erase', 'Confirm erasure'), ('export', 'Data export'), ('reschedule', 'Confirm a move to another time')], max_length=10),
        ),
        migrations.AddConstraint(
            model_name='linktoken',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('purpose', 'reschedule'), ('slot__isnull', False)), models.Q(models.Q(('purpose', 'reschedule'), _negated=True), ('slot__isnull', True)), _connector='OR'), name='token_slot_only_for_reschedule'),
        ),
        migrations.AddField(
            model_name='waitlistentry',
            name='counsellor',
            field=models.ForeignKey(blank=True, help_text='Empty: any.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='bookings.counsellor'),
        ),
        migrations.AddField(
            model_name='waitlistentry',
            name='session_type',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='bookings.sessiontype'),
        ),
        migrations.AddField(
            model_name='waitlistoffer',
            name='entry',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='offers', to='bookings.waitlistentry'),
        ),
        migrations.AddField(
            model_name='waitlistoffer',
            name='slot',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='bookings.slot'),
        ),
        migrations.AddField(
            model_name='waitlisttoken',
            name='entry',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tokens', to='bookings.waitlistentry'),
        ),
        migrations.AddIndex(
            model_name='waitlistentry',
            index=models.Index(fields=['status', 'date_from', 'date_to'], name='waitlist_status_range'),
        ),
        migrations.AddConstraint(
            model_name='waitlistentry',
            constraint=models.CheckConstraint(condition=models.Q(('date_to__gte', models.F('date_from'))), name='waitlist_range_valid'),
        ),
        migrations.AddConstraint(
            model_name='waitlistentry',
            constraint=models.CheckConstraint(condition=models.Q(('email', django.db.models.functions.text.Lower('email'))), name='waitlist_email_normalised'),
        ),
        migrations.AddConstraint(
            model_name='waitlistentry',
            constraint=models.CheckConstraint(condition=models.Q(('mode__in', ['online', 'in_person'])), name='waitlist_mode_valid'),
        ),
        migrations.AddConstraint(
            model_name='waitlistoffer',
            constraint=models.UniqueConstraint(fields=('entry', 'slot'), name='waitlist_offer_once'),
        ),
    ]
