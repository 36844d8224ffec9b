"""Sign-in: email and password, the required second factor (TOTP, recovery codes), the idle
timeout, and invitations."""

from __future__ import annotations

import importlib
import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.apps import apps as django_apps
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from bookings.models import Counsellor
from staff.models import User
from staff.tests.conftest import setup_link_opened, sign_in_with_second_factor, totp_code, totp_enable

PASSWORD = "a-long-counsellor-password"


def sign_in(client, email: str, password: str):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_login_page_is_styled_and_offers_no_signup(client, db):
    page = client.get(reverse("account_login")).content.decode()
    assert "Staff sign-in" in page and 'name="login"' in page and 'name="password"' in page
    assert "sign up" not in page.lower()
    assert 'href="/static/css/app.css"' in page
    # One way to a password reset, by the button (not again in the password field's hint).
    assert page.count(f'href="{reverse("account_reset_password")}"') == 1
    response = client.post(
        reverse("account_signup"), {"email": "x@example.com", "password1": "pw-123456789", "password2": "pw-123456789"}
    )
    assert not User.objects.filter(email="x@example.com").exists()
    assert response.status_code in (200, 302, 403)


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login") + "?next=/staff/")


def test_wrong_password_is_refused(client, counsellor_user):
    response = sign_in(client, counsellor_user.email, "not-the-password")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    # Without JavaScript too, the answer says so first: in the title a screen reader reads on
    # arrival, and with focus on the summary of what went wrong (not on the empty form).
    html = response.content.decode()
    assert "<title>Error: Sign in" in html
    assert '<div class="error-summary" role="alert" tabindex="-1" autofocus>' in html


def test_first_sign_in_requires_setting_up_an_authenticator_then_shows_recovery_codes(
    client, counsellor_user, counsellor
):
    response = sign_in(client, counsellor_user.email, PASSWORD)
    assert response.status_code == 302
    # Anything in the portal sends them to set up the app first...
    response = client.get(reverse("staff:booking_list"))
    assert response["Location"] == reverse("mfa_activate_totp")
    # ...which a password alone does not open: first the emailed link (test_second_factor_setup.py).
    assert 'src="data:image/svg+xml;base64,' not in client.get(reverse("mfa_activate_totp")).content.decode()
    setup_link_opened(client, counsellor_user)
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="data:image/svg+xml;base64,' in html
    secret = client.session[SECRET_SESSION_KEY]
    assert secret in html  # the setup key, for typing in by hand
    # Reloading the page (after scanning the code, say) shows the same key.
    assert secret in client.get(reverse("mfa_activate_totp")).content.decode()
    assert client.session[SECRET_SESSION_KEY] == secret

    wrong = client.post(reverse("mfa_activate_totp"), {"code": "000000" if totp_code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200
    assert not Authenticator.objects.filter(user=counsellor_user).exists()
    assert "<title>Error: Set up two-factor sign-in" in wrong.content.decode()
    assert 'role="alert" tabindex="-1" autofocus>' in wrong.content.decode()

    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_view_recovery_codes")
    codes_page = client.get(reverse("mfa_view_recovery_codes")).content.decode()
    assert "Your recovery codes" in codes_page
    assert client.get(reverse("staff:dashboard")).status_code == 200


def test_a_session_opens_the_portal_only_once_it_has_given_a_code(client, counsellor_user, counsellor):
    """Someone holding only the password of a staff member who has no authenticator app yet
    (just invited, or after a reset) signs in and waits. Its owner then sets up their app in
    their own sign-in: the waiting sessions, which never gave a code, are not let in by that,
    but ended and sent to sign in, where the code is asked for."""
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from django.test import Client

    waiting, lurking = Client(), Client()
    for browser in (waiting, lurking):
        sign_in(browser, counsellor_user.email, PASSWORD)
        assert browser.get(reverse("staff:dashboard"))["Location"] == reverse("mfa_activate_totp")

    sign_in(client, counsellor_user.email, PASSWORD)
    setup_link_opened(client, counsellor_user)
    client.get(reverse("mfa_activate_totp"))
    secret = client.session[SECRET_SESSION_KEY]
    assert client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)}).status_code == 302
    assert client.get(reverse("mfa_view_recovery_codes")).status_code == 200
    assert client.get(reverse("staff:dashboard")).status_code == 200  # the code was given here

    # Not the portal, nor the account's pages, where the password alone (asked again) would
    # show the new recovery codes.
    for browser, path in ((waiting, reverse("staff:booking_export")), (lurking, reverse("mfa_view_recovery_codes"))):
        response = browser.get(path)
        assert response.status_code == 302 and response["Location"].startswith(reverse("account_login")), path
        assert "_auth_user_id" not in browser.session
    # Signing in again asks for a code (one of the recovery codes, as the app's was just used),
    # and then the portal opens.
    codes = RecoveryCodes(Authenticator.objects.get(user=counsellor_user, type=Authenticator.Type.RECOVERY_CODES))
    assert sign_in(waiting, counsellor_user.email, PASSWORD)["Location"] == reverse("mfa_authenticate")
    assert waiting.post(reverse("mfa_authenticate"), {"code": codes.get_unused_codes()[0]}).status_code == 302
    assert waiting.get(reverse("staff:dashboard")).status_code == 200


def test_account_pages_are_kept_by_no_cache(client, counsellor_user, counsellor):
    """The setup page shows the authenticator's key, from which every later code follows: no
    shared or browser cache keeps it (Back on a clinic's shared computer, after signing out),
    nor any other page of the account, as none keeps the portal's."""
    sign_in(client, counsellor_user.email, PASSWORD)
    asking = client.get(reverse("mfa_activate_totp"))  # first, the emailed link
    setup_link_opened(client, counsellor_user)
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200 and client.session[SECRET_SESSION_KEY] in page.content.decode()
    for response in (
        asking,
        page,
        client.get(reverse("mfa_index")),
        client.get(reverse("account_change_password")),
        client.get(reverse("account_reauthenticate")),
    ):
        cache_control = {part.strip() for part in response.get("Cache-Control", "").split(",")}
        assert {"no-store", "private"} <= cache_control, response.request["PATH_INFO"]
    client.logout()
    login_page = client.get(reverse("account_login"))
    assert "no-store" in login_page["Cache-Control"]


def test_sign_in_with_password_and_authenticator_code(client, counsellor_user, counsellor):
    secret = totp_enable(counsellor_user)
    response = sign_in(client, counsellor_user.email, PASSWORD)
    assert response["Location"] == reverse("mfa_authenticate")
    assert "_auth_user_id" not in client.session  # not signed in until the second step
    page = client.get(reverse("mfa_authenticate")).content.decode()
    assert "Enter your code" in page
    bad = client.post(reverse("mfa_authenticate"), {"code": "12345x"})
    assert bad.status_code == 200 and "_auth_user_id" not in client.session
    assert "<title>Error: Two-factor sign-in" in bad.content.decode()
    assert 'role="alert" tabindex="-1" autofocus>' in bad.content.decode()
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:dashboard")
    assert client.get(reverse("staff:dashboard")).status_code == 200


def test_there_is_no_sign_in_that_skips_the_second_factor(client, admin_user):
    """allauth's is the only sign-in. Django's admin, with its own password-only form and no
    rate limit, is not installed: posting a superuser's password there signs nobody in."""
    admin_user.is_superuser = admin_user.is_staff = True
    admin_user.save(update_fields=["is_superuser", "is_staff"])
    totp_enable(admin_user)
    password = "a-long-admin-password"  # conftest's
    response = client.post("/django-admin/login/", {"username": admin_user.email, "password": password})
    assert response.status_code == 404 and "_auth_user_id" not in client.session
    assert client.get(reverse("staff:booking_list")).status_code == 302  # to sign in


def test_the_second_factor_is_required_when_the_site_is_served_under_a_path_prefix(client, counsellor_user, counsellor):
    """Behind a proxy that mounts the site at /clinic/ (SCRIPT_NAME), the portal's paths are
    /clinic/staff/...: a password alone still opens none of them."""
    client.force_login(counsellor_user)  # signed in with a password, no authenticator yet
    for name in ("staff:dashboard", "staff:booking_list"):
        response = client.get(reverse(name), SCRIPT_NAME="/clinic")
        assert response.status_code == 302 and response["Location"].endswith(reverse("mfa_activate_totp"))


def test_sign_in_with_a_recovery_code_instead_of_the_app(client, counsellor_user, counsellor):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    totp_enable(counsellor_user)
    codes = RecoveryCodes.activate(counsellor_user).generate_codes()
    sign_in(client, counsellor_user.email, PASSWORD)
    response = client.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert response.status_code == 302 and response["Location"] == reverse("staff:dashboard")
    client.logout()
    # Each recovery code works once.
    sign_in(client, counsellor_user.email, PASSWORD)
    again = client.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert again.status_code == 200


def test_idle_sessions_end(login, counsellor_user, counsellor, settings):
    client = login(counsellor_user)
    assert client.get(reverse("staff:dashboard")).status_code == 200
    session = client.session
    session["staff_last_seen"] = int(time.time()) - settings.STAFF_SESSION_IDLE_MINUTES * 60 - 5
    session.save()
    response = client.get(reverse("staff:booking_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "timeout=1" in response["Location"]
    assert "_auth_user_id" not in client.session
    page = client.get(response["Location"]).content.decode()
    assert "signed out after a period of inactivity" in page


def test_an_action_after_the_idle_timeout_opens_the_sign_in_page_whole(
    login, counsellor_user, counsellor, make_booking, settings
):
    """An htmx action (a request's Reject, say) would follow a redirect and put the sign-in
    page inside the booking's: htmx is told to open it as a page, to come back to the one on
    screen."""
    booking = make_booking("pending", counsellor=counsellor)
    client = login(counsellor_user)
    session = client.session
    session["staff_last_seen"] = int(time.time()) - settings.STAFF_SESSION_IDLE_MINUTES * 60 - 5
    session.save()
    on_screen = reverse("staff:booking_detail", args=[booking.pk])
    response = client.post(
        reverse("staff:booking_reject", args=[booking.pk]),
        {"reject-reason": "x"},
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{on_screen}"},
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == f"{reverse('account_login')}?next={on_screen}&timeout=1"
    assert "_auth_user_id" not in client.session


def test_active_sessions_stay_signed_in(login, counsellor_user, counsellor, settings):
    client = login(counsellor_user)
    session = client.session
    session["staff_last_seen"] = int(time.time()) - (settings.STAFF_SESSION_IDLE_MINUTES - 1) * 60
    session.save()
    assert client.get(reverse("staff:dashboard")).status_code == 200


def _invitation_link() -> str:
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    return re.search(r"http://testserver(/accounts/password/reset/key/\S+)", body).group(1)


def test_invite_staff_command_then_invitee_sets_a_password_and_signs_in(client, oncommit, db):
    with oncommit():
        call_command("invite_staff", "New.Person@Example.com", "--role", "counsellor", "--name", "Nila Rao")
    user = User.objects.get(email="new.person@example.com")
    assert user.role == User.Role.COUNSELLOR and not user.has_usable_password()
    profile = Counsellor.objects.get(user=user)
    assert profile.display_name == "Nila Rao" and not profile.is_active  # nobody books them before they join
    assert mail.outbox[0].to == ["new.person@example.com"]
    link = _invitation_link()

    response = client.get(link, follow=True)
    assert "Choose your password" in response.content.decode()
    assert "New password again" in response.content.decode()
    form_url = response.redirect_chain[-1][0]
    response = client.post(form_url, {"password1": "river-lantern-pebble-42", "password2": "river-lantern-pebble-42"})
    assert response.status_code == 302
    done = client.get(response["Location"]).content.decode()
    assert "Password saved" in done and "successfully changed" not in done  # said once
    user.refresh_from_db()
    assert user.has_usable_password()
    # The link works once.
    assert "cannot be used" in client.get(link, follow=True).content.decode()

    response = sign_in(client, "new.person@example.com", "river-lantern-pebble-42")
    assert response.status_code == 302
    assert client.get(reverse("staff:dashboard"))["Location"] == reverse("mfa_activate_totp")
    # The invitation link proved the address theirs: they can set up the app, and work.
    page = client.get(reverse("mfa_activate_totp")).content.decode()
    assert "verified your email" not in page
    assert "Successfully signed in" not in page  # not until the second factor is set up
    secret = client.session[SECRET_SESSION_KEY]
    assert client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)}).status_code == 302
    dashboard = client.get(reverse("staff:dashboard")).content.decode()
    assert "Clients cannot book you yet:</strong> your profile is hidden." in dashboard
    assert "an administrator then shows your profile to clients" in dashboard
    availability = client.get(reverse("staff:availability", args=[profile.pk])).content.decode()
    assert "Clients cannot book Nila Rao yet:</strong> the profile is hidden" in availability
    assert "An administrator shows the profile to clients when you are ready." in availability
    assert "Nila Rao" not in client.get(reverse("bookings:counsellors")).content.decode()


def test_a_counsellor_is_invited_by_name_never_by_their_address(admin_client, db):
    with pytest.raises(CommandError, match="Enter the counsellor's full name"):
        call_command("invite_staff", "quiet@example.com", "--role", "counsellor")
    response = admin_client.post(
        reverse("staff:team_invite"), {"email": "quiet@example.com", "name": " ", "role": "counsellor"}
    )
    assert response.status_code == 400
    assert "Enter the counsellor&#x27;s full name: clients see it" in response.content.decode()
    assert not User.objects.filter(email="quiet@example.com").exists()
    # An administrator needs no public name.
    call_command("invite_staff", "ops2@example.com", "--role", "administrator")


def test_invite_staff_command_refuses_an_existing_address(counsellor_user):
    with pytest.raises(CommandError, match="already"):
        call_command("invite_staff", counsellor_user.email, "--role", "counsellor")


def test_administrator_invites_from_the_portal(admin_client):
    response = admin_client.post(
        reverse("staff:team_invite"), {"email": "ops@example.com", "name": "Ops Person", "role": "administrator"}
    )
    assert response.status_code == 302
    user = User.objects.get(email="ops@example.com")
    assert user.role == User.Role.ADMINISTRATOR
    assert not Counsellor.objects.filter(user=user).exists()
    assert "/accounts/password/reset/key/" in _invitation_link()
    team = admin_client.get(reverse("staff:team")).content.decode()
    assert "ops@example.com" in team and "Invited" in team

    again = admin_client.post(
        reverse("staff:team_invite"), {"email": "OPS@example.com", "name": "Ops Again", "role": "counsellor"}
    )
    assert again.status_code == 409
    assert "already a staff account" in again.content.decode()

    mail.outbox = []
    assert admin_client.post(reverse("staff:team_reinvite", args=[user.pk])).status_code == 302
    assert "/accounts/password/reset/key/" in _invitation_link()


def test_invitation_form_errors_are_shown_next_to_fields(admin_client):
    response = admin_client.post(reverse("staff:team_invite"), {"email": "not-an-email", "role": "counsellor"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is a problem" in html and 'aria-invalid="true"' in html


@pytest.mark.parametrize("deactivated", [False, True])
def test_inviting_an_address_already_in_use_is_said_at_the_email_field(
    admin_client, admin_user, counsellor_user, deactivated
):
    """As the form's own errors are: next to Email (which says it is invalid and points to the
    words), and in the summary at the top, which takes focus and links to the field."""
    if deactivated:
        counsellor_user.is_active = False
        counsellor_user.save(update_fields=["is_active"])
    response = admin_client.post(
        reverse("staff:team_invite"), {"email": counsellor_user.email.upper(), "name": "Asha", "role": "counsellor"}
    )
    html = response.content.decode()
    assert response.status_code == 409
    said = (
        "This person&#x27;s staff account is deactivated: reactivate it instead of inviting them."
        if deactivated
        else "There is already a staff account with this email address."
    )
    assert f'<span class="field-error" id="id_email-error">{said}' in html
    field = re.search(r'<input[^>]*name="email"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in field and "id_email-error" in field
    summary = re.search(r'<div class="error-summary"[^>]*>.*?</div>', html, re.S).group(0)
    assert "autofocus" in summary and f'<a href="#id_email">Email address: {said}</a>' in summary
    assert html.count(said) == 2  # beside the field and in the summary, no box of its own
    assert "<title>Error: " in html
    assert User.objects.filter(email__iexact=counsellor_user.email).count() == 1


def test_staff_cannot_add_or_switch_their_sign_in_address(client, counsellor_user, counsellor):
    sign_in_with_second_factor(client, counsellor_user)
    assert client.get("/accounts/email/").status_code == 404
    response = client.post("/accounts/email/", {"action_add": "", "email": "elsewhere@example.com"})
    assert response.status_code == 404
    counsellor_user.refresh_from_db()
    assert counsellor_user.email == "asha@example.com"


def test_the_first_administrator_is_made_with_a_name(db):
    call_command("createsuperuser", "--noinput", "--email", "First@Example.com", "--first_name", "Meera", verbosity=0)
    user = User.objects.get(email="first@example.com")
    assert user.first_name == "Meera" and user.role == User.Role.ADMINISTRATOR and user.is_superuser
    with pytest.raises(CommandError, match="first_name"):
        call_command("createsuperuser", "--noinput", "--email", "second@example.com", verbosity=0)


def test_administrators_see_who_clients_cannot_see_yet(admin_client, db, oncommit):
    with oncommit():
        call_command("invite_staff", "nila@example.com", "--role", "counsellor", "--name", "Nila Rao")
    profile = Counsellor.objects.get(display_name="Nila Rao")
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert "Counsellors clients cannot see yet:" in html
    assert reverse("staff:profile_edit", args=[profile.pk]) in html
    # Shown, they leave the notice.
    profile.is_active = True
    profile.save()
    assert "Counsellors clients cannot see yet:" not in admin_client.get(reverse("staff:dashboard")).content.decode()


def test_reset_links_go_only_to_the_address_the_account_signs_in_with(client, counsellor_user):
    """Another address recorded for the account gets no link: setting a password through one
    would mark the account's own address verified without proving it."""
    EmailAddress.objects.create(user=counsellor_user, email="old-address@example.org", verified=False)
    for typed in ("old-address@example.org", counsellor_user.email.upper()):
        response = client.post(reverse("account_reset_password"), {"email": typed})
        assert response.status_code == 302  # the same answer either way
    assert [m.to for m in mail.outbox] == [[counsellor_user.email]]


def test_other_addresses_recorded_for_staff_accounts_are_removed(counsellor_user, admin_user):
    remove_other_addresses = importlib.import_module("staff.migrations.0003_one_address_per_account")
    EmailAddress.objects.create(user=counsellor_user, email=counsellor_user.email.upper(), verified=True)
    EmailAddress.objects.create(user=counsellor_user, email="old-address@example.org", verified=False)
    # "_" and "%" are letters of an address, not wildcards.
    admin_user.email = "a_b%c@example.com"
    admin_user.save()
    EmailAddress.objects.create(user=admin_user, email="A_B%C@example.com", verified=True)
    EmailAddress.objects.create(user=admin_user, email="axbyc@example.com", verified=False)
    remove_other_addresses.remove_other_addresses(django_apps, None)
    assert set(EmailAddress.objects.values_list("email", flat=True)) == {
        "A_B%C@example.com",
        counsellor_user.email.upper(),
    }


def test_the_password_reset_email_names_the_clinic_and_what_it_is_for(client, counsellor_user, settings):
    client.post(reverse("account_reset_password"), {"email": counsellor_user.email})
    [message] = mail.outbox
    assert message.subject == f"Choose a new password for the {settings.CLINIC_NAME} staff portal"
    # allauth's own greets "from" and thanks for using the host the request came by.
    assert "Hello from" not in message.body and "Thank you for using" not in message.body
    assert settings.CLINIC_NAME in message.body
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", message.body).group(1)
    # Whole on one line as sent (and as the console shows it locally), not split by quoted-printable.
    assert f"http://testserver{link}\n" in message.message().as_string()
    response = client.get(link)  # allauth hides the key from the address bar, then shows the form
    assert response.status_code == 302 and "/accounts/password/reset/key/" in response["Location"]
    assert "new password" in client.get(response["Location"]).content.decode().lower()


def test_asking_for_a_reset_for_an_unknown_address_emails_nobody(client, db):
    """Accounts are made only by invitation: allauth's "unknown account" email (with a link to
    a sign-up page that is closed) would let anyone make the clinic email any address."""
    response = client.post(reverse("account_reset_password"), {"email": "a.client@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_removing_ones_authenticator_ends_ones_other_sessions(client, counsellor_user, counsellor):
    """A member removes their authenticator app (to change phones, say): the sessions they
    had signed in elsewhere, which gave the old app's code, are ended; the one that removed it
    goes on, and the portal sends it to set up a new app."""
    from django.test import Client

    elsewhere = Client()
    for browser in (client, elsewhere):
        sign_in_with_second_factor(browser, counsellor_user)
        assert browser.get(reverse("staff:dashboard")).status_code == 200

    asked = client.post(reverse("mfa_deactivate_totp"))
    assert asked["Location"].startswith(reverse("account_reauthenticate"))  # allauth asks for the password
    assert client.post(asked["Location"], {"password": PASSWORD}).status_code == 302  # and it is removed
    assert not Authenticator.objects.filter(user=counsellor_user, type=Authenticator.Type.TOTP).exists()

    assert client.get(reverse("staff:dashboard"))["Location"] == reverse("mfa_activate_totp")
    response = elsewhere.get(reverse("staff:dashboard"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in elsewhere.session


STAFF_NAV = '<nav aria-label="Staff">'


def _title(response) -> str:
    return re.search(r"<title>(.*?)</title>", response.content.decode(), re.S)[1]


def test_the_second_factor_pages_have_titles_of_their_own_and_the_menu_once_the_portal_is_open(
    client, counsellor_user, counsellor, login
):
    """The code asked at sign-in and the page managing the app were both "Two-factor sign-in";
    the management page is a portal page, with its menu. Before the second factor is given
    (the code, the setup a password alone reaches) the portal is not open: no menu."""
    titles = {}
    # Setting the app up (no app yet): no menu.
    sign_in(client, counsellor_user.email, PASSWORD)
    setup_link_opened(client, counsellor_user)
    setup = client.get(reverse("mfa_activate_totp"))
    assert setup.status_code == 200 and STAFF_NAV not in setup.content.decode()
    titles["setup"] = _title(setup)
    # The code at sign-in: no menu.
    client.logout()
    totp_enable(counsellor_user)
    sign_in(client, counsellor_user.email, PASSWORD)
    code = client.get(reverse("mfa_authenticate"))
    assert code.status_code == 200 and STAFF_NAV not in code.content.decode()
    titles["code"] = _title(code)
    # Signed in with both: the management page has the portal's menu.
    manage = login(counsellor_user).get(reverse("mfa_index"))
    assert manage.status_code == 200 and STAFF_NAV in manage.content.decode()
    titles["manage"] = _title(manage)
    assert titles["manage"].startswith("Your second factor · ")
    assert len(set(titles.values())) == len(titles), titles


def test_sign_in_limits_count_each_caller_behind_the_proxy_not_the_proxy(client, counsellor_user, settings):
    """Behind the reverse proxy (NUM_PROXIES), every request comes from the proxy's address:
    allauth counted failed sign-ins and reset requests by it, so five wrong passwords from
    anyone locked every member of staff out of signing in. It counts the caller's address,
    as the app's own limits do (bookings.ratelimit.client_ip)."""
    settings.NUM_PROXIES = 1
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    for n in range(6):
        client.post(
            reverse("account_login"),
            {"login": f"guess{n}@example.com", "password": "wrong-password"},
            HTTP_X_FORWARDED_FOR="203.0.113.9",
            **proxy,
        )
    attacker = client.post(
        reverse("account_login"),
        {"login": "guess9@example.com", "password": "wrong-password"},
        HTTP_X_FORWARDED_FOR="203.0.113.9",
        **proxy,
    )
    assert attacker.status_code == 429
    member = Client().post(
        reverse("account_login"),
        {"login": counsellor_user.email, "password": "a-long-counsellor-password"},
        HTTP_X_FORWARDED_FOR="198.51.100.7",
        **proxy,
    )
    assert member.status_code == 302
    # Another address of the same IPv6 network is the same caller, as for the app's limits.
    v6 = Client().post(
        reverse("account_login"),
        {"login": "guess9@example.com", "password": "wrong-password"},
        HTTP_X_FORWARDED_FOR="2001:db8:1:2::1",
        **proxy,
    )
    assert v6.status_code == 200
    for n in range(5):
        Client().post(
            reverse("account_login"),
            {"login": f"other{n}@example.com", "password": "wrong-password"},
            HTTP_X_FORWARDED_FOR=f"2001:db8:1:2::{n + 10:x}",
            **proxy,
        )
    assert (
        Client()
        .post(
            reverse("account_login"),
            {"login": "other9@example.com", "password": "wrong-password"},
            HTTP_X_FORWARDED_FOR="2001:db8:1:2:ffff::1",
            **proxy,
        )
        .status_code
        == 429
    )
