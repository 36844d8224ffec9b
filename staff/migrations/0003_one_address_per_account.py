"""Staff accounts have one email address, the one they sign in with: remove any other address
recorded for an account (they could be added on allauth's email page, since closed). An
unverified one would stop its owner setting up a second factor, and nobody can remove it now.

Compared in Python, as the password-reset adapter compares them (casefold): a database's
case-insensitive match reads "_" and "%" in an address as wildcards on SQLite. Staff
accounts are few."""

from django.db import migrations


def remove_other_addresses(apps, schema_editor):
    EmailAddress = apps.get_model("account", "EmailAddress")
    others = [
        address.pk
        for address in EmailAddress.objects.select_related("user").only("email", "user__email")
        if address.email.casefold() != address.user.email.casefold()
    ]
    EmailAddress.objects.filter(pk__in=others).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0002_account_actions"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(remove_other_addresses, migrations.RunPython.noop)]
