"""The Team page's account actions: deactivate and reactivate a staff account, and reset a lost
second factor. Administrators only; never on yourself; each one ends the person's sessions."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from bookings import services
from bookings.models import Actor, Counsellor, Slot, Status
from conftest import next_weekday_at
from staff.models import AccountEvent, User
from staff.services import StaffAccountError, staff_deactivate, staff_reactivate, staff_second_factor_reset
from staff.tests.conftest import seen_just_now, sign_in_with_second_factor, totp_enable

PASSWORD = "a-long-counsellor-password"
CONFIRM = {"confirm": "on"}


def sign_in(client, email: str, password: str):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def deactivate_url(user: User) -> str:
    return reverse("staff:team_deactivate", args=[user.pk])


def reactivate_url(user: User) -> str:
    return reverse("staff:team_reactivate", args=[user.pk])


def reset_url(user: User) -> str:
    return reverse("staff:team_second_factor_reset", args=[user.pk])


def signed_out(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


@pytest.fixture
def second_admin(db) -> User:
    return User.objects.create_user(
        email="bea@example.com", password="another-admin-password", first_name="Bea", role=User.Role.ADMINISTRATOR
    )


# --- Deactivation -----------------------------------------------------------------------


def test_deactivating_a_counsellor_signs_them_out_hides_their_profile_and_is_recorded(
    admin_client, admin_user, login, counsellor_user, counsellor, caplog
):
    theirs = login(counsellor_user)
    assert theirs.get(reverse("staff:dashboard")).status_code == 200

    page = admin_client.get(reverse("staff:team")).content.decode()
    assert "Their profile will be hidden from clients" in page and deactivate_url(counsellor_user) in page

    with caplog.at_level(logging.INFO, logger="staff.services"):
        response = admin_client.post(deactivate_url(counsellor_user), CONFIRM)
    assert response.status_code == 302 and response["Location"] == reverse("staff:team")
    counsellor_user.refresh_from_db()
    counsellor.refresh_from_db()
    assert counsellor_user.is_active is False
    assert counsellor.is_active is False  # clients can no longer find or book them

    # Their open session stops working on its very next request (and stays dead if they are
    # reactivated: see the reactivation test).
    assert signed_out(theirs.get(reverse("staff:dashboard")))

    page = admin_client.get(reverse("staff:team")).content.decode()
    assert "can no longer sign in" in page and "Their profile is hidden from clients." in page
    assert "Deactivated" in page and "Profile hidden from clients" in page
    assert "Account deactivated: Asha" in page  # the record of who did what, for administrators
    event = AccountEvent.objects.get()
    assert (event.member, event.actor, event.kind) == (counsellor_user, admin_user, AccountEvent.Kind.DEACTIVATED)
    # The log line carries ids only.
    line = next(r.getMessage() for r in caplog.records if "deactivated" in r.getMessage())
    assert f"staff account {counsellor_user.pk} deactivated by {admin_user.pk}" in line
    assert "asha" not in line.lower() and "@" not in line


def test_a_deactivated_person_cannot_sign_in(client, admin_user, counsellor_user, counsellor):
    staff_deactivate(user=counsellor_user, by=admin_user)
    response = sign_in(client, counsellor_user.email, PASSWORD)
    assert "_auth_user_id" not in client.session
    page = client.get(response["Location"]).content.decode() if response.status_code == 302 else ""
    assert "This staff account has been deactivated" in page
    assert signed_out(client.get(reverse("staff:dashboard")))


def test_django_itself_refuses_a_session_of_an_inactive_account(login, counsellor_user, counsellor):
    """What deactivation rests on, even without ending sessions: the auth backends (Django's
    and allauth's) do not load an inactive user for a session (DB session engine)."""
    theirs = login(counsellor_user)
    assert theirs.get(reverse("staff:dashboard")).status_code == 200
    User.objects.filter(pk=counsellor_user.pk).update(is_active=False)
    assert signed_out(theirs.get(reverse("staff:dashboard")))


def test_the_deactivation_form_says_how_many_open_bookings_they_have_and_cancels_none(
    admin_client, counsellor_user, counsellor, other_counsellor, make_booking
):
    ahead = [
        make_booking(Status.CONFIRMED, counsellor=counsellor),
        make_booking(Status.PAYMENT_PENDING, counsellor=counsellor),
        make_booking(Status.PENDING, counsellor=counsellor),  # a request not yet given a time
    ]
    past_start = timezone.now() - timedelta(days=2)
    past = Slot.objects.create(counsellor=counsellor, start=past_start, end=past_start + timedelta(hours=1))
    make_booking(Status.COMPLETED, slot=past)
    # Past but not yet marked held or missed: still theirs to close, and in the linked list.
    earlier = Slot.objects.create(counsellor=counsellor, start=past_start - timedelta(days=1), end=past_start)
    ahead.append(make_booking(Status.CONFIRMED, slot=earlier))
    make_booking(Status.CANCELLED, counsellor=counsellor)
    make_booking(Status.CONFIRMED, counsellor=other_counsellor)

    page = admin_client.get(reverse("staff:team")).content.decode()
    assert "4 open bookings</strong> (requests, and sessions not yet marked held) are assigned to them" in page
    listing = f"{reverse('staff:booking_list')}?counsellor={counsellor.pk}&amp;status=active"
    assert listing in page

    response = admin_client.post(deactivate_url(counsellor_user), CONFIRM, follow=True)
    page = response.content.decode()
    assert "Still assigned to them, unchanged: 4 open bookings" in page
    assert "4 open bookings to review" in page and listing in page
    for booking in ahead:
        before = booking.status
        booking.refresh_from_db()
        assert booking.status == before


def test_an_administrator_cannot_deactivate_themselves(admin_client, admin_user, second_admin):
    response = admin_client.post(deactivate_url(admin_user), CONFIRM)
    assert response.status_code == 409
    page = response.content.decode()
    assert "You cannot deactivate your own account" in page
    assert f'id="member-{admin_user.pk}-error"' in page  # next to the row
    admin_user.refresh_from_db()
    assert admin_user.is_active and not AccountEvent.objects.exists()


def test_the_last_active_administrator_cannot_be_deactivated(admin_client, admin_user):
    response = admin_client.post(deactivate_url(admin_user), CONFIRM)
    assert response.status_code == 409
    assert "This is the last active administrator" in response.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_two_administrators_cannot_deactivate_each_other(admin_user, second_admin):
    """The second request acts for someone who was deactivated meanwhile: refused, so at
    least one administrator is always left."""
    stale_second_admin = User.objects.get(pk=second_admin.pk)
    staff_deactivate(user=second_admin, by=admin_user)
    with pytest.raises(StaffAccountError, match="Only an active administrator"):
        staff_deactivate(user=admin_user, by=stale_second_admin)
    assert User.objects.get(pk=admin_user.pk).is_active


def test_another_administrator_can_be_deactivated(admin_client, second_admin, login):
    theirs = login(second_admin)
    assert admin_client.post(deactivate_url(second_admin), CONFIRM).status_code == 302
    assert not User.objects.get(pk=second_admin.pk).is_active
    assert signed_out(theirs.get(reverse("staff:team")))


def test_deactivation_needs_the_confirmation_tick(admin_client, counsellor_user, counsellor):
    response = admin_client.post(deactivate_url(counsellor_user), {})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Tick the box to confirm." in page
    assert "<details open>" in page  # the form stays open, with the error next to it
    pk = counsellor_user.pk
    assert f'id="deactivate-{pk}-confirm" required aria-describedby="member-{pk}-error" aria-invalid="true"' in page
    # One such button per member: each names whom it is for.
    assert f'Deactivate account<span class="sr-only"> of {counsellor_user.email}</span>' in page
    assert User.objects.get(pk=counsellor_user.pk).is_active


def test_deactivating_twice_changes_nothing_more(admin_client, admin_user, counsellor_user, counsellor):
    assert staff_deactivate(user=counsellor_user, by=admin_user).changed
    response = admin_client.post(deactivate_url(counsellor_user), CONFIRM, follow=True)
    assert "was already deactivated" in response.content.decode()
    assert AccountEvent.objects.count() == 1


def test_an_invitation_that_was_never_used_can_be_withdrawn(admin_client, db):
    invited = User.objects.create_user(email="new@example.com", role=User.Role.ADMINISTRATOR)
    assert admin_client.post(deactivate_url(invited), CONFIRM).status_code == 302
    assert not User.objects.get(pk=invited.pk).is_active


# --- Reactivation -----------------------------------------------------------------------


def test_inviting_a_deactivated_person_again_points_to_reactivation(admin_client, admin_user, counsellor_user):
    staff_deactivate(user=counsellor_user, by=admin_user)
    response = admin_client.post(
        reverse("staff:team_invite"), {"email": counsellor_user.email, "name": "Asha Menon", "role": "counsellor"}
    )
    assert response.status_code == 409
    assert "reactivate it instead of inviting them" in response.content.decode()


def test_reactivation_lets_them_sign_in_but_leaves_the_profile_hidden_and_old_sessions_ended(
    admin_client, admin_user, login, client, counsellor_user, counsellor
):
    theirs = login(counsellor_user)
    theirs.get(reverse("staff:dashboard"))
    staff_deactivate(user=counsellor_user, by=admin_user)

    response = admin_client.post(reactivate_url(counsellor_user), follow=True)
    page = response.content.decode()
    assert "can sign in again" in page and "stays hidden from clients" in page
    assert User.objects.get(pk=counsellor_user.pk).is_active
    assert Counsellor.objects.get(pk=counsellor.pk).is_active is False
    # The session open before the deactivation does not come back to life.
    assert signed_out(theirs.get(reverse("staff:dashboard")))
    # A new sign-in works (and asks for their authenticator code as before).
    response = sign_in(client, counsellor_user.email, PASSWORD)
    assert response["Location"] == reverse("mfa_authenticate")
    assert [e.kind for e in AccountEvent.objects.order_by("pk")] == ["deactivated", "reactivated"]


def test_reactivating_an_active_account_changes_nothing(admin_client, counsellor_user, counsellor):
    response = admin_client.post(reactivate_url(counsellor_user), follow=True)
    assert "is already active" in response.content.decode()
    assert not AccountEvent.objects.exists()


def test_an_administrator_shows_the_profile_again_on_the_profile_page(
    admin_client, admin_user, counsellor_client, counsellor_user, counsellor
):
    profile = reverse("staff:profile_edit", args=[counsellor.pk])
    data = {"display_name": "Asha Menon", "slug": counsellor.slug, "offers_online": "on", "is_active": "on"}
    staff_deactivate(user=counsellor_user, by=admin_user)
    refused = admin_client.post(profile, data)
    assert refused.status_code == 400
    assert "Their staff account is deactivated" in refused.content.decode()
    assert not Counsellor.objects.get(pk=counsellor.pk).is_active

    staff_reactivate(user=counsellor_user, by=admin_user)
    assert "Show this profile to clients" in admin_client.get(profile).content.decode()
    assert admin_client.post(profile, data).status_code == 302
    assert Counsellor.objects.get(pk=counsellor.pk).is_active


def test_a_counsellor_cannot_publish_or_hide_their_own_profile(admin_user, counsellor_client, counsellor):
    profile = reverse("staff:profile_edit", args=[counsellor.pk])
    assert "Show this profile to clients" not in counsellor_client.get(profile).content.decode()
    Counsellor.objects.filter(pk=counsellor.pk).update(is_active=False)
    data = {"display_name": "Asha Menon", "offers_online": "on", "is_active": "on"}
    assert counsellor_client.post(profile, data).status_code == 302
    assert not Counsellor.objects.get(pk=counsellor.pk).is_active


# --- Second-factor reset ----------------------------------------------------------------


def test_resetting_a_lost_second_factor(admin_client, admin_user, login, client, counsellor_user, counsellor):
    theirs = login(counsellor_user)  # with an authenticator app, and the session remembers it
    RecoveryCodes.activate(counsellor_user)
    assert theirs.get(reverse("staff:dashboard")).status_code == 200
    assert theirs.session["staff_mfa_confirmed_for"] == counsellor_user.pk

    page = admin_client.get(reverse("staff:team")).content.decode()
    assert reset_url(counsellor_user) in page and "Set up" in page
    response = admin_client.post(reset_url(counsellor_user), CONFIRM, follow=True)
    assert "second factor of Asha was reset" in response.content.decode()
    assert not Authenticator.objects.filter(user=counsellor_user).exists()  # app and recovery codes
    assert "Not set up" in admin_client.get(reverse("staff:team")).content.decode()

    # The open session (which remembered the second factor) is over...
    assert signed_out(theirs.get(reverse("staff:dashboard")))
    # ...and after signing in with their password, the portal asks for a new authenticator app,
    # which the password alone does not set up: first the emailed link (test_second_factor.py).
    response = sign_in(client, counsellor_user.email, PASSWORD)
    assert response.status_code == 302
    assert client.get(reverse("staff:dashboard"))["Location"] == reverse("mfa_activate_totp")
    setup = client.get(reverse("mfa_activate_totp")).content.decode()
    assert "Email me a link" in setup and "data:image/svg+xml" not in setup
    event = AccountEvent.objects.get()
    assert (event.kind, event.actor, event.member) == ("second_factor_reset", admin_user, counsellor_user)
    assert User.objects.get(pk=counsellor_user.pk).is_active  # still an active account


def test_an_administrator_cannot_reset_their_own_second_factor_here(admin_client, admin_user):
    page = admin_client.get(reverse("staff:team")).content.decode()
    assert reset_url(admin_user) not in page and deactivate_url(admin_user) not in page
    response = admin_client.post(reset_url(admin_user), CONFIRM)
    assert response.status_code == 409
    assert "You cannot reset your own second factor here" in response.content.decode()
    assert Authenticator.objects.filter(user=admin_user).exists()


def test_the_reset_needs_the_confirmation_tick(admin_client, counsellor_user, counsellor):
    totp_enable(counsellor_user)
    response = admin_client.post(reset_url(counsellor_user), {})
    page = response.content.decode()
    assert response.status_code == 400 and "Tick the box to confirm." in page
    pk = counsellor_user.pk
    assert f'id="reset-{pk}-confirm" required aria-describedby="member-{pk}-error" aria-invalid="true"' in page
    assert f'Reset second factor<span class="sr-only"> of {counsellor_user.email}</span>' in page
    assert Authenticator.objects.filter(user=counsellor_user).exists()


def test_resetting_someone_without_a_second_factor_still_ends_their_sessions(admin_user, counsellor_user, counsellor):
    assert staff_second_factor_reset(user=counsellor_user, by=admin_user) is False
    assert User.objects.get(pk=counsellor_user.pk).session_version == 1


# --- Who may, and how ------------------------------------------------------------------

ACTIONS = [deactivate_url, reactivate_url, reset_url]


@pytest.mark.parametrize("url", ACTIONS, ids=["deactivate", "reactivate", "reset"])
def test_counsellors_get_403_and_change_nothing(counsellor_client, other_counsellor, url):
    target = other_counsellor.user
    totp_enable(target)
    # Reactivating needs a deactivated account, or "nothing changed" would prove nothing.
    active = url is not reactivate_url
    User.objects.filter(pk=target.pk).update(is_active=active)
    assert counsellor_client.post(url(target), CONFIRM).status_code == 403
    assert User.objects.get(pk=target.pk).is_active is active
    assert Authenticator.objects.filter(user=target).exists()
    assert not AccountEvent.objects.exists()


@pytest.mark.parametrize("url", ACTIONS, ids=["deactivate", "reactivate", "reset"])
def test_get_changes_nothing_and_goes_back_to_the_page(admin_client, counsellor_user, counsellor, url):
    """Opened again from the address bar (after a refused form shown at its address)."""
    assert admin_client.get(url(counsellor_user))["Location"] == reverse("staff:team")
    counsellor_user.refresh_from_db()
    assert counsellor_user.is_active
    assert not AccountEvent.objects.exists()


def test_the_actions_need_the_csrf_token(admin_user, counsellor_user, counsellor):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    sign_in_with_second_factor(browser, admin_user)
    assert browser.post(deactivate_url(counsellor_user), CONFIRM).status_code == 403
    assert User.objects.get(pk=counsellor_user.pk).is_active


def test_an_unknown_account_is_404(admin_client):
    assert admin_client.post(deactivate_url(User(pk=999999)), CONFIRM).status_code == 404


def test_sessions_opened_before_this_release_stay_valid(counsellor_user):
    """session_version 0 hashes exactly as Django does: deploying this signs nobody out."""
    assert counsellor_user.session_version == 0
    assert counsellor_user.get_session_auth_hash() == AbstractBaseUser.get_session_auth_hash(counsellor_user)
    counsellor_user.session_version = 1
    assert counsellor_user.get_session_auth_hash() != AbstractBaseUser.get_session_auth_hash(counsellor_user)


def test_the_team_page_stays_within_its_query_budget(
    admin_client, session_type, make_booking, django_assert_max_num_queries
):
    """Members, their second factors and open bookings, and the record: the count does not
    grow with the number of people or bookings."""
    for n in range(12):
        user = User.objects.create_user(email=f"c{n}@example.com", password="x" * 12, first_name=f"C{n}")
        totp_enable(user)
        counsellor = Counsellor.objects.create(user=user, display_name=f"C{n}", slug=f"c{n}")
        for _ in range(3):
            make_booking(Status.CONFIRMED, counsellor=counsellor)
        staff_deactivate(user=user, by=User.objects.get(email="admin@example.com"))
    admin_client.get(reverse("staff:team"))  # the session's first request does its one-off work
    seen_just_now(admin_client)
    with django_assert_max_num_queries(4):
        page = admin_client.get(reverse("staff:team"))
    assert page.content.decode().count("3 open bookings to review") == 12


# --- An administrator who also counsels ---------------------------------------------------


def profile_url(user: User) -> str:
    return reverse("staff:team_counsellor_profile", args=[user.pk])


def test_an_administrator_who_also_counsels_adds_a_profile_to_their_own_account(admin_client, admin_user):
    """A small practice's owner sees clients too: one account, not a second under another
    address. The profile starts hidden, as an invited counsellor's, and is theirs to fill in."""
    team = admin_client.get(reverse("staff:team")).content.decode()
    assert "I also counsel clients" in team and f'action="{profile_url(admin_user)}"' in team

    response = admin_client.post(profile_url(admin_user), {"name": "Dr Ada Rao"})

    profile = Counsellor.objects.get(user=admin_user)
    assert response.status_code == 302 and response["Location"] == reverse("staff:profile_edit", args=[profile.pk])
    assert (profile.display_name, profile.slug, profile.is_active) == ("Dr Ada Rao", "dr-ada-rao", False)
    event = AccountEvent.objects.get(kind=AccountEvent.Kind.COUNSELLOR_PROFILE_ADDED)
    assert (event.member, event.actor) == (admin_user, admin_user)
    assert "I also counsel clients" not in admin_client.get(reverse("staff:team")).content.decode()
    # Their availability is theirs to publish, and the dashboard names the profile still hidden.
    assert admin_client.get(reverse("staff:availability", args=[profile.pk])).status_code == 200
    dashboard = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert "Counsellors clients cannot see yet:" in dashboard and "Dr Ada Rao" in dashboard
    assert "Clients cannot book you yet" not in dashboard  # not said twice


def test_another_administrator_may_be_given_one(admin_client, second_admin):
    assert "Also counsels clients" in admin_client.get(reverse("staff:team")).content.decode()
    assert admin_client.post(profile_url(second_admin), {"name": "Bea Iyer"}).status_code == 302
    assert Counsellor.objects.get(user=second_admin).display_name == "Bea Iyer"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("  ", "Enter the name clients will see"),
        ("x" * 121, "Keep the name to 120 characters."),
        ("Ada\x00Rao", "The name cannot contain a null character."),  # PostgreSQL cannot store it
    ],
)
def test_a_profile_without_a_usable_name_is_refused_next_to_it(admin_client, admin_user, name, message):
    response = admin_client.post(profile_url(admin_user), {"name": name})
    html = response.content.decode()
    assert response.status_code == 409 and not Counsellor.objects.exists()
    assert f'<p class="field-error" role="alert" id="member-{admin_user.pk}-error">{message}' in html
    assert f'aria-describedby="member-{admin_user.pk}-error" aria-invalid="true"' in html


def test_a_long_name_makes_a_link_name_that_fits(admin_client, admin_user, second_admin):
    """The profile's link name (`slug`, 50 characters) from a realistic full name of 57."""
    name = "Dr Anantharaman Venkataraghavan Subramaniam Krishnamurthy"
    assert admin_client.post(profile_url(admin_user), {"name": name}).status_code == 302
    assert admin_client.post(profile_url(second_admin), {"name": name}).status_code == 302
    slugs = sorted(Counsellor.objects.values_list("slug", flat=True))
    assert slugs == ["dr-anantharaman-venkataraghavan-subraman", "dr-anantharaman-venkataraghavan-subraman-2"]
    invited = admin_client.post(
        reverse("staff:team_invite"), {"email": "new@example.com", "name": name, "role": "counsellor"}
    )
    assert invited.status_code == 302
    assert Counsellor.objects.get(user__email="new@example.com").slug.endswith("-3")


def test_a_new_profile_is_not_given_a_link_name_another_had(admin_client, admin_user, counsellor):
    """Old links with it lead to that other profile (CounsellorPreviousSlug)."""
    counsellor.previous_slugs.create(slug="dr-ada-rao")
    assert admin_client.post(profile_url(admin_user), {"name": "Dr Ada Rao"}).status_code == 302
    assert Counsellor.objects.get(user=admin_user).slug == "dr-ada-rao-2"


def test_one_profile_per_account_and_none_for_a_deactivated_one(
    admin_client, admin_user, second_admin, counsellor_user, counsellor
):
    assert (
        "already has a counsellor profile"
        in admin_client.post(profile_url(counsellor_user), {"name": "X"}).content.decode()
    )
    staff_deactivate(user=second_admin, by=admin_user)
    response = admin_client.post(profile_url(second_admin), {"name": "Bea Iyer"})
    assert response.status_code == 409 and "reactivate it first" in response.content.decode()
    assert not Counsellor.objects.filter(user=second_admin).exists()


# --- Bookings left by someone who has left ------------------------------------------------


def left_card(html: str) -> str:
    """The dashboard's card of bookings whose counsellor has left ("" if not shown)."""
    match = re.search(r'<section[^>]*id="counsellor-left".*?</section>', html, re.S)
    return match.group(0) if match else ""


def test_the_dashboard_lists_administrators_the_open_bookings_of_a_counsellor_who_has_left(
    admin_client, admin_user, counsellor_user, counsellor, other_counsellor, make_booking, login
):
    """The Team page counts them; the dashboard, where an administrator starts the day, lists
    each one with a link to it, until it is moved into someone else's time or closed."""
    session = make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="Priya Sharma")
    request = make_booking(Status.PENDING, counsellor=counsellor, client_name="Kiran Rao")
    make_booking(Status.CANCELLED, counsellor=counsellor)
    colleagues = make_booking(Status.CONFIRMED, counsellor=other_counsellor)
    assert left_card(admin_client.get(reverse("staff:dashboard")).content.decode()) == ""

    staff_deactivate(user=counsellor_user, by=admin_user)
    card = left_card(admin_client.get(reverse("staff:dashboard")).content.decode())
    assert "Bookings of counsellors who have left" in card
    for booking in (session, request):
        assert f'href="{reverse("staff:booking_detail", args=[booking.pk])}"' in card and booking.ack_id in card
    assert "Asha Menon" in card and colleagues.ack_id not in card
    assert str(Status.CANCELLED.label) not in card

    # Counsellors do not see the clinic's other bookings.
    assert left_card(login(other_counsellor.user).get(reverse("staff:dashboard")).content.decode()) == ""

    # Handed to a colleague, a booking leaves the card.
    start = next_weekday_at(15, days_ahead=9)
    slot = Slot.objects.create(counsellor=other_counsellor, start=start, end=start + timedelta(hours=1))
    services.booking_reschedule(booking_id=session.pk, slot_id=slot.pk, actor=Actor.STAFF, user=admin_user)
    card = left_card(admin_client.get(reverse("staff:dashboard")).content.decode())
    assert session.ack_id not in card and request.ack_id in card


@pytest.mark.parametrize(
    ("role", "said"), [("administrator", "as an administrator."), ("counsellor", "as a counsellor.")]
)
def test_the_invitation_names_the_role_in_good_english(admin_user, oncommit, role, said):
    from staff.services import staff_invite

    with oncommit():
        staff_invite(email="new@example.com", role=role, name="New Person", invited_by=admin_user)
    (message,) = [m for m in mail.outbox if m.to == ["new@example.com"]]
    assert f"staff portal {said}" in message.body
