"""Staff who left: what the retention sweep removes from their accounts, and what it keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.management import call_command
from django.utils import timezone

from staff.models import AccountEvent, CalendarSubscription, SetupLink, User
from staff.services import (
    FORMER_STAFF_NAME,
    StaffAccountError,
    calendar_subscription_create,
    former_staff_anonymise,
    setup_link_create,
    staff_deactivate,
    staff_reactivate,
)
from staff.tests.conftest import totp_enable

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(days=30 * 12 + 1)

# Every field of a staff account: what becomes of it once the person has left (deactivated
# for RETENTION_MONTHS). A new field fails here until it is classified.
CLEARED = {"first_name", "last_name", "email", "password", "session_version"}
KEPT = {
    "id": "the audit trail's events point at the account",
    "role": "what the account could do, for the audit trail",
    "is_active": "stays False",
    "is_staff": "not personal",
    "is_superuser": "not personal",
    "last_login": "a date, of the account, for the audit trail",
    "date_joined": "a date, of the account, for the audit trail",
}


def _left(user: User, by: User, *, ago: timedelta) -> None:
    staff_deactivate(user=user, by=by)
    AccountEvent.objects.filter(member=user).update(created_at=timezone.now() - ago)


def test_an_account_deactivated_past_the_retention_period_loses_its_personal_data(
    counsellor, counsellor_user, admin_user, settings
):
    settings.RETENTION_MONTHS = 12
    totp_enable(counsellor_user)
    EmailAddress.objects.create(user=counsellor_user, email=counsellor_user.email, verified=True, primary=True)
    calendar_subscription_create(user=counsellor_user)
    setup_link_create(user=counsellor_user)
    counsellor.meeting_url, counsellor.bio, counsellor.approach = "https://meet.example/me", "About me", "My way"
    counsellor.save()
    User.objects.filter(pk=counsellor_user.pk).update(last_name="Rao", last_login=timezone.now())
    before = User.objects.get(pk=counsellor_user.pk)
    _left(counsellor_user, admin_user, ago=LONG_AGO)

    assert former_staff_anonymise() == 1

    after = User.objects.get(pk=counsellor_user.pk)
    fields = {f.name for f in User._meta.concrete_fields}
    assert fields <= CLEARED | set(KEPT), fields - CLEARED - set(KEPT)
    for name in CLEARED:
        assert getattr(after, name) != getattr(before, name), name
    for name in set(KEPT) - {"is_active"}:
        assert getattr(after, name) == getattr(before, name), name
    assert str(after) == FORMER_STAFF_NAME and not after.has_usable_password()
    assert not Authenticator.objects.filter(user=after).exists()
    assert not EmailAddress.objects.filter(user=after).exists()
    assert not SetupLink.objects.filter(user=after).exists()
    assert not CalendarSubscription.objects.filter(user=after).exists()
    name = counsellor.display_name
    counsellor.refresh_from_db()
    assert (counsellor.meeting_url, counsellor.bio, counsellor.approach) == ("", "", "")
    assert counsellor.display_name == name  # the clinic's record of who held each session
    assert former_staff_anonymise() == 0  # done once
    with pytest.raises(StaffAccountError):  # an account of no one: they are invited afresh
        staff_reactivate(user=after, by=admin_user)


def test_recent_leavers_and_returners_keep_their_accounts(counsellor_user, admin_user, settings):
    settings.RETENTION_MONTHS = 12
    recent = User.objects.create_user(email="recent@example.com", first_name="Recent")
    _left(recent, admin_user, ago=timedelta(days=30))
    # Deactivated long ago, reactivated since, then deactivated again recently.
    staff_deactivate(user=counsellor_user, by=admin_user)
    AccountEvent.objects.filter(member=counsellor_user).update(created_at=timezone.now() - 2 * LONG_AGO)
    staff_reactivate(user=counsellor_user, by=admin_user)
    staff_deactivate(user=counsellor_user, by=admin_user)
    AccountEvent.objects.filter(member=counsellor_user, kind=AccountEvent.Kind.REACTIVATED).update(
        created_at=timezone.now() - LONG_AGO - LONG_AGO / 2
    )
    assert former_staff_anonymise() == 0
    assert User.objects.filter(email__in=["recent@example.com", counsellor_user.email]).count() == 2
    assert User.objects.get(pk=admin_user.pk).email == admin_user.email  # active: never touched


def test_the_daily_retention_command_does_it(counsellor_user, admin_user, settings, capsys):
    settings.RETENTION_MONTHS = 12
    _left(counsellor_user, admin_user, ago=LONG_AGO)
    call_command("apply_retention")
    assert "1 former staff account(s) anonymised" in capsys.readouterr().out
    assert User.objects.get(pk=counsellor_user.pk).email == f"former-staff-{counsellor_user.pk}@invalid"
