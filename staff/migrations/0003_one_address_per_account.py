"""Staff accounts have one email address, the one they sign in with: remove any other address
recorded for an account (they could be added on allauth's email page, since closed). An
unverified one would stop its owner setting up a second factor, and nobody can remove it now."""

from django.db import migrations
from django.db.models import F


def remove_other_addresses(apps, schema_editor):
    EmailAddress = apps.get_model("account", "EmailAddress")
    EmailAddress.objects.exclude(email__iexact=F("user__email")).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0002_account_actions"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(remove_other_addresses, migrations.RunPython.noop)]
