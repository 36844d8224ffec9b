"""A counsellor's private calendar subscription: the address made and shown once, the feed's
events (and nothing of the client's), and every way the address stops working."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from bookings.models import Clinic, Counsellor, Mode, Slot, Status
from staff.models import AccountEvent, CalendarSubscription
from staff.services import (
    calendar_subscription_create,
    counsellor_profile_add,
    staff_deactivate,
    staff_reactivate,
    staff_second_factor_reset,
)
from staff.tests.conftest import sign_in_with_second_factor

CLIENT_NAME = "Zephyrine Quillfeather"
CLIENT_EMAIL = "zephyrine.q@example.org"
CLIENT_WORDS = "Nightmares since the flood; my manager must not know"
CLIENT_TIMES = "Mornings near Marine Drive"
ROOM = "https://meet.example/private-room-4411"
CLINIC_ADDRESS = "12 Carter Road,\nBandra West, Mumbai"
# What would tell someone glancing at a shared calendar what kind of care this is.
CARE_WORDS = re.compile(r"counsel|therap|mental|psych|wellness|clinic", re.IGNORECASE)

FEED_URL = re.compile(r"http://testserver(/staff/calendar/([A-Za-z0-9_-]{43})\.ics)")


def feed_path(raw: str) -> str:
    return reverse("staff:calendar_app_feed", kwargs={"token": raw})


def make_address(browser) -> tuple[str, str]:
    """Press "Make a calendar address": the feed's path and its secret, from the page."""
    response = browser.post(reverse("staff:calendar_app_new"))
    assert response.status_code == 200
    found = FEED_URL.search(response.content.decode())
    assert found, response.content.decode()
    return found.group(1), found.group(2)


def slot_at(counsellor: Counsellor, start) -> Slot:
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))


@pytest.fixture
def sessions(counsellor, other_counsellor, make_booking, session_type):
    """The counsellor's bookings of every kind, from their clients' words and all, and one of
    another counsellor's."""
    # A session type's name may say what kind of care it is: the feed never writes it.
    session_type.name = "Couples therapy"
    session_type.save()
    clinic = Clinic.load()
    clinic.address = CLINIC_ADDRESS
    clinic.save()
    now = timezone.now().replace(microsecond=0)
    private = dict(
        client_name=CLIENT_NAME,
        concerns=CLIENT_WORDS,
        preferred_times=CLIENT_TIMES,
        phone="+919812345678",
        meeting_url=ROOM,
    )
    made = {
        "approved": make_booking(Status.APPROVED, slot=slot_at(counsellor, now + timedelta(days=2)), **private),
        "paying": make_booking(Status.PAYMENT_PENDING, slot=slot_at(counsellor, now + timedelta(days=3)), **private),
        "confirmed": make_booking(
            Status.CONFIRMED, slot=slot_at(counsellor, now + timedelta(days=4)), email=CLIENT_EMAIL, **private
        ),
        "in_person": make_booking(
            Status.COMPLETED, slot=slot_at(counsellor, now - timedelta(days=10)), mode=Mode.IN_PERSON, **private
        ),
        "no_show": make_booking(Status.NO_SHOW, slot=slot_at(counsellor, now - timedelta(days=5)), **private),
        # Left out: cancelled, rejected, a request without a time, and outside the window.
        "cancelled": make_booking(Status.CANCELLED, slot=slot_at(counsellor, now + timedelta(days=6)), **private),
        "pending": make_booking(Status.PENDING, counsellor=counsellor, **private),
        "too_old": make_booking(Status.COMPLETED, slot=slot_at(counsellor, now - timedelta(days=31)), **private),
        "too_far": make_booking(Status.CONFIRMED, slot=slot_at(counsellor, now + timedelta(days=91)), **private),
        "theirs": make_booking(Status.CONFIRMED, slot=slot_at(other_counsellor, now + timedelta(days=4)), **private),
    }
    return made


@pytest.fixture
def subscribed(counsellor_client):
    """The counsellor's feed path and secret, made from the calendar page."""
    return make_address(counsellor_client)


# --- Making, showing, replacing and stopping the address ----------------------------------


def test_the_address_is_shown_once_and_only_its_hash_is_kept(counsellor_client, counsellor):
    calendar = reverse("staff:calendar")
    page = counsellor_client.get(calendar).content.decode()
    assert 'id="calendar-app"' in page and "Make a calendar address" in page

    response = counsellor_client.post(reverse("staff:calendar_app_new"))
    text = response.content.decode()
    path, raw = FEED_URL.search(text).groups()
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    assert f'value="http://testserver{path}"' in text and "readonly" in text
    assert '<label for="feed-url"' in text and "From URL" in text and "Add Subscription Calendar" in text
    assert len(raw) >= 43  # 32 random bytes

    stored = CalendarSubscription.objects.get()
    assert stored.user_id == counsellor.user_id
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(list(CalendarSubscription.objects.values_list()))

    # From now on the page says that there is one, and when, never the address.
    page = counsellor_client.get(calendar).content.decode()
    assert raw not in page
    assert "No calendar app has read it yet." in page
    assert "Make a new address" in page and "Stop the subscription" in page


def test_a_new_address_replaces_the_old_one_at_once(counsellor_client, subscribed):
    old_path, old_raw = subscribed
    assert Client().get(old_path).status_code == 200
    response = counsellor_client.post(reverse("staff:calendar_app_new"))
    assert "Your earlier address has stopped working." in response.content.decode()
    new_path, new_raw = FEED_URL.search(response.content.decode()).groups()
    assert new_raw != old_raw
    assert Client().get(old_path).status_code == 404
    assert Client().get(new_path).status_code == 200
    assert CalendarSubscription.objects.count() == 1


def test_stopping_ends_the_feed(counsellor_client, subscribed):
    path, _ = subscribed
    response = counsellor_client.post(reverse("staff:calendar_app_stop"))
    assert response.status_code == 302 and response["Location"].endswith("#calendar-app")
    assert not CalendarSubscription.objects.exists()
    assert Client().get(path).status_code == 404
    page = counsellor_client.get(reverse("staff:calendar")).content.decode()
    assert "Make a calendar address" in page and "Stop the subscription" not in page


def test_pages_read_by_get_change_nothing(counsellor_client, subscribed):
    before = list(CalendarSubscription.objects.values())
    for url in (reverse("staff:calendar"), reverse("staff:calendar_app_new"), reverse("staff:calendar_app_stop")):
        counsellor_client.get(url)
    for url in (reverse("staff:calendar_app_new"), reverse("staff:calendar_app_stop")):
        assert counsellor_client.get(url)["Location"] == reverse("staff:calendar")  # the form's page
    assert list(CalendarSubscription.objects.values()) == before


def test_changes_need_the_csrf_token(counsellor_user, counsellor):
    browser = Client(enforce_csrf_checks=True)
    sign_in_with_second_factor(browser, counsellor_user)
    assert browser.post(reverse("staff:calendar_app_new")).status_code == 403
    assert not CalendarSubscription.objects.exists()
    calendar_subscription_create(user=counsellor_user)
    assert browser.post(reverse("staff:calendar_app_stop")).status_code == 403
    assert CalendarSubscription.objects.exists()
    # With the page's token, as the forms send it.
    page = browser.get(reverse("staff:calendar")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert browser.post(reverse("staff:calendar_app_stop"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert not CalendarSubscription.objects.exists()


def test_administrators_without_a_counsellor_profile_have_no_calendar_app(admin_client, admin_user):
    page = admin_client.get(reverse("staff:calendar")).content.decode()
    assert 'id="calendar-app"' not in page
    assert admin_client.post(reverse("staff:calendar_app_new")).status_code == 404
    assert admin_client.post(reverse("staff:calendar_app_stop")).status_code == 404
    assert not CalendarSubscription.objects.exists()
    # One who also counsels has one, for their own sessions.
    counsellor_profile_add(member=admin_user, name="Ada Rao", by=admin_user)
    assert 'id="calendar-app"' in admin_client.get(reverse("staff:calendar")).content.decode()
    path, _ = make_address(admin_client)
    assert Client().get(path).status_code == 200


# --- The feed ---------------------------------------------------------------------------------


def leaks(text: str) -> list[str]:
    """What `text` tells of the seeded clients (their name, address, phone, words, room), of
    the counsellor, or of the kind of care, in the order looked for."""
    private = (CLIENT_NAME, "Zephyrine", CLIENT_EMAIL, "Nightmares", "Marine Drive", "9812345678", ROOM)
    found = [p for p in private if p.lower() in text.lower()]
    found += [p for p in ("meet.example", "Asha", "Couples") if p in text]
    found += [m.group(0) for m in CARE_WORDS.finditer(text)]
    return found


def events_of(body: bytes) -> dict[str, object]:
    return {str(e["uid"]): e for e in Calendar.from_ical(body).walk("VEVENT")}


def test_the_feed_holds_the_counsellors_sessions_and_nothing_of_their_clients(subscribed, sessions):
    path, _ = subscribed
    response = Client().get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Cache-Control"] == "private, max-age=300"
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    body = response.content
    events = events_of(body)

    shown = ("approved", "paying", "confirmed", "in_person", "no_show")
    assert set(events) == {f"{sessions[k].ack_id.lower()}.staff@mindsettler" for k in shown}
    status = {k: str(events[f"{sessions[k].ack_id.lower()}.staff@mindsettler"]["status"]) for k in shown}
    assert status == {
        "approved": "TENTATIVE",
        "paying": "TENTATIVE",
        "confirmed": "CONFIRMED",
        "in_person": "CONFIRMED",
        "no_show": "CONFIRMED",
    }
    for key in shown:
        booking = sessions[key]
        booking.refresh_from_db()
        event = events[f"{booking.ack_id.lower()}.staff@mindsettler"]
        start = event.decoded("dtstart")
        assert start == booking.slot.start and start.utcoffset() == timedelta(0)
        assert event.decoded("dtend") - start == timedelta(minutes=50)
        assert event["description"] == f"http://testserver/staff/bookings/{booking.pk}/"
        assert event["url"] == event["description"]
        assert event["sequence"] == booking.version
        assert event.decoded("last-modified") == booking.updated_at.replace(microsecond=0)
        assert event.decoded("dtstamp") == event.decoded("last-modified")
        assert event["class"] == "PRIVATE"
    summary = {k: str(events[f"{sessions[k].ack_id.lower()}.staff@mindsettler"]["summary"]) for k in shown}
    assert summary["confirmed"] == f"Session {sessions['confirmed'].ack_id} · online"
    assert summary["approved"] == f"Session {sessions['approved'].ack_id} · online · not yet paid"
    assert summary["in_person"] == f"Session {sessions['in_person'].ack_id} · in person"
    in_person = events[f"{sessions['in_person'].ack_id.lower()}.staff@mindsettler"]
    assert str(in_person["location"]) == "12 Carter Road, Bandra West, Mumbai"
    assert "location" not in events[f"{sessions['confirmed'].ack_id.lower()}.staff@mindsettler"]

    # Every time in UTC, without a zone to resolve.
    assert b"VTIMEZONE" not in body and b"TZID" not in body
    assert all(line.endswith(b"Z") for line in body.splitlines() if line.startswith((b"DTSTART", b"DTEND")))

    # Nothing of the client, their words, the room, or what kind of care it is.
    unfolded = body.decode().replace("\r\n ", "")  # long lines are folded (RFC 5545)
    assert leaks(unfolded) == []
    for left_out in ("cancelled", "pending", "too_old", "too_far", "theirs"):
        assert sessions[left_out].ack_id not in unfolded, left_out


def test_the_privacy_check_can_fail(sessions):
    """What the feed test looks for is in the seeded rows, and found where it is written."""
    assert sessions["confirmed"].client_name == CLIENT_NAME and sessions["confirmed"].concerns == CLIENT_WORDS
    assert leaks(f"SUMMARY:{CLIENT_NAME}\r\nDESCRIPTION:{ROOM}\r\nCATEGORIES:Couples therapy") == [
        CLIENT_NAME,
        "Zephyrine",
        ROOM,
        "meet.example",
        "Couples",
        "therap",
    ]


def test_a_moved_session_keeps_its_uid_and_moves(subscribed, sessions, counsellor):
    path, _ = subscribed
    booking = sessions["confirmed"]
    uid = f"{booking.ack_id.lower()}.staff@mindsettler"
    before = events_of(Client().get(path).content)[uid]
    new_slot = slot_at(counsellor, booking.slot.start + timedelta(days=1))
    booking.slot = new_slot
    booking.version += 1
    booking.save(update_fields=["slot", "version", "updated_at"])
    after = events_of(Client().get(path).content)
    assert list(after).count(uid) == 1
    assert after[uid].decoded("dtstart") == new_slot.start
    assert after[uid]["sequence"] == before["sequence"] + 1


def test_an_app_that_sends_the_etag_back_gets_304(subscribed, sessions):
    path, _ = subscribed
    first = Client().get(path)
    again = Client().get(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""


def test_last_read_is_written_at_most_once_an_hour(subscribed):
    path, _ = subscribed
    subscription = CalendarSubscription.objects.get()
    assert subscription.last_read_at is None
    Client().get(path)
    subscription.refresh_from_db()
    first = subscription.last_read_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        Client().get(path)
    assert not any(q["sql"].lstrip().upper().startswith("UPDATE") for q in queries.captured_queries)
    subscription.refresh_from_db()
    assert subscription.last_read_at == first
    CalendarSubscription.objects.update(last_read_at=first - timedelta(minutes=61))
    Client().get(path)
    subscription.refresh_from_db()
    assert subscription.last_read_at > first - timedelta(minutes=1)


def test_the_calendar_page_says_when_it_was_last_read(counsellor_client, subscribed):
    Client().get(subscribed[0])
    page = counsellor_client.get(reverse("staff:calendar")).content.decode()
    assert "A calendar app last read it" in page


# --- Every address that shows nothing answers the same ----------------------------------------


def _answer(path: str) -> tuple[int, bytes, str, str]:
    response = Client().get(path)
    return response.status_code, response.content, response["Content-Type"], response["Cache-Control"]


def test_every_dead_address_answers_one_identical_404(
    counsellor_client, counsellor, counsellor_user, admin_user, sessions
):
    unknown = _answer(feed_path("x" * 43))
    assert unknown[0] == 404 and unknown[1] == b"Not found.\n"
    assert b"Not found" in unknown[1] and "max-age=0" in unknown[3]

    answers = {"unknown": unknown, "too long": _answer(feed_path("y" * 200))}

    replaced, _ = make_address(counsellor_client)
    live, _ = make_address(counsellor_client)
    answers["replaced"] = _answer(replaced)

    counsellor_client.post(reverse("staff:calendar_app_stop"))
    answers["stopped"] = _answer(live)

    path, _ = make_address(counsellor_client)
    staff_deactivate(user=counsellor_user, by=admin_user)
    answers["deactivated"] = _answer(path)
    assert not CalendarSubscription.objects.exists()  # stopped with the account
    staff_reactivate(user=counsellor_user, by=admin_user)
    answers["deactivated, then reactivated"] = _answer(path)

    # The account is deactivated (or its profile taken away) while the row stays: the feed
    # itself refuses.
    path = FEED_URL.search(calendar_subscription_create(user=counsellor_user)).group(1)
    counsellor_user.__class__.objects.filter(pk=counsellor_user.pk).update(is_active=False)
    answers["inactive account"] = _answer(path)
    counsellor_user.__class__.objects.filter(pk=counsellor_user.pk).update(is_active=True)
    assert _answer(path)[0] == 200
    Counsellor.objects.filter(pk=counsellor.pk).update(user=None)
    answers["no counsellor profile"] = _answer(path)

    assert all(answer == unknown for answer in answers.values()), answers


def test_a_second_factor_reset_stops_the_subscription(subscribed, counsellor_user, admin_user):
    path, _ = subscribed
    staff_second_factor_reset(user=counsellor_user, by=admin_user)
    assert Client().get(path).status_code == 404


def test_a_profile_hidden_from_clients_still_has_its_feed(subscribed, counsellor):
    counsellor.is_active = False
    counsellor.save(update_fields=["is_active"])
    assert Client().get(subscribed[0]).status_code == 200


def test_the_feed_is_read_only(subscribed):
    path, _ = subscribed
    assert Client().post(path).status_code == 405
    assert Client().head(path).status_code == 200


# --- Administrators on the Team page -------------------------------------------------------------


def test_administrators_see_a_live_subscription_and_can_stop_it(admin_client, admin_user, subscribed, counsellor_user):
    path, raw = subscribed
    page = admin_client.get(reverse("staff:team")).content.decode()
    assert "Calendar subscription since" in page and "not read yet" in page and raw not in page
    stop = reverse("staff:team_calendar_stop", args=[counsellor_user.pk])
    assert f'action="{stop}"' in page
    response = admin_client.post(stop)
    assert response.status_code == 302
    assert Client().get(path).status_code == 404
    event = AccountEvent.objects.get(kind=AccountEvent.Kind.CALENDAR_SUBSCRIPTION_STOPPED)
    assert (event.member_id, event.actor_id) == (counsellor_user.pk, admin_user.pk)
    page = admin_client.get(reverse("staff:team")).content.decode()
    assert "Calendar subscription since" not in page and "Calendar subscription stopped" in page
    # Again: nothing to stop, nothing recorded.
    admin_client.post(stop)
    assert AccountEvent.objects.filter(kind=AccountEvent.Kind.CALENDAR_SUBSCRIPTION_STOPPED).count() == 1


# --- From the security review ----------------------------------------------------------


def test_a_staff_browser_whose_session_timed_out_reads_the_feed_and_keeps_the_secret_out_of_sign_in(
    counsellor_user, counsellor
):
    """The feed's secret is its credential, whoever asks: a staff session that has timed out
    (or gave only its password) is not sent to sign in, which put the secret in the sign-in
    page's `next` and, after the password, in the session's row."""
    from django.contrib.sessions.models import Session

    browser = Client()
    sign_in_with_second_factor(browser, counsellor_user)
    path, raw = make_address(browser)
    session = browser.session
    session["staff_last_seen"] = 0  # 30 minutes idle, long ago
    session.save()
    response = browser.get(path)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    assert raw not in repr([row.get_decoded() for row in Session.objects.all()])

    password_only = Client()
    password_only.force_login(counsellor_user)  # no code given in this session
    assert password_only.get(path).status_code == 200
    assert raw not in repr([row.get_decoded() for row in Session.objects.all()])


def test_removing_ones_own_authenticator_app_stops_the_calendar_address(counsellor_user, counsellor):
    """As an administrator's reset does: the phone the app was on may hold the address too."""
    from allauth.mfa.models import Authenticator

    from staff.tests.conftest import totp_code, totp_enable

    secret = totp_enable(counsellor_user)
    browser = Client()
    browser.post(reverse("account_login"), {"login": counsellor_user.email, "password": "a-long-counsellor-password"})
    browser.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    path, _ = make_address(browser)
    assert Client().get(path).status_code == 200
    reauthenticate = browser.get(reverse("mfa_deactivate_totp"))["Location"]
    browser.post(reauthenticate, {"password": "a-long-counsellor-password"})
    assert browser.post(reverse("mfa_deactivate_totp"))["Location"] == reverse("mfa_index")
    assert not Authenticator.objects.filter(user=counsellor_user).exists()
    assert Client().get(path).status_code == 404
    assert not CalendarSubscription.objects.filter(user=counsellor_user).exists()


def test_a_percent_encoded_secret_is_redacted_in_the_request_line(counsellor_client):
    """Django serves `%35` as `5`; gunicorn's request line keeps what was sent."""
    from datetime import timedelta as delta
    from types import SimpleNamespace

    from mindsettler.tests.test_logs import gunicorn_access_logger

    path, raw = make_address(counsellor_client)
    encoded = f"/staff/calendar/{raw[:5]}%{ord(raw[5]):02X}{raw[6:]}.ics"
    assert Client().get(encoded).status_code == 200
    logger, buffer = gunicorn_access_logger('"%(r)s" %(s)s')
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": encoded, "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
    logger.access(SimpleNamespace(status="200 OK", headers=[], sent=1), SimpleNamespace(headers=[]), environ, delta(0))
    line = buffer.getvalue()
    assert raw[6:] not in line and '"GET /staff/calendar/[redacted].ics HTTP/1.1" 200' in line, line


def test_control_characters_of_the_clinics_address_stay_out_of_the_feed(counsellor_client, counsellor, make_booking):
    Clinic.objects.update_or_create(pk=1, defaults={"address": "12 Road\x1b[2J\x7f\nPune\t411001"})
    make_booking(Status.CONFIRMED, slot=slot_at(counsellor, timezone.now() + timedelta(days=2)), mode=Mode.IN_PERSON)
    path, _ = make_address(counsellor_client)
    body = Client().get(path).content
    assert b"LOCATION:12 Road[2J Pune 411001" in body
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", body)


def _reset_password(browser, email: str, password: str) -> None:
    """ "Forgotten your password?" for `email`, and a new `password` through the emailed link."""
    from django.core import mail

    from bookings.emails import emails_send_due

    assert browser.post(reverse("account_reset_password"), {"email": email}).status_code == 302
    emails_send_due()  # as the task queued after commit would (a test's transaction never commits)
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[-1].body).group(1)
    form_url = browser.get(link, follow=True).redirect_chain[-1][0]
    assert browser.post(form_url, {"password1": password, "password2": password}).status_code == 302


def test_a_password_reset_stops_the_subscription_and_the_calendar_page_says_so(
    counsellor_client, subscribed, counsellor_user, counsellor
):
    """Someone who had the password (and so may have made the address, or read it off the
    member's screen) keeps nothing once the member resets it: their sessions end, and so does
    the calendar subscription. The member is told on the calendar and profile pages, and makes a new one."""
    path, _ = subscribed
    _reset_password(Client(), counsellor_user.email, "a-brand-new-password-7")
    assert Client().get(path).status_code == 404
    # The reset ended every session of the member: a new sign-in.
    assert counsellor_client.get(reverse("staff:calendar"))["Location"].startswith(reverse("account_login"))
    counsellor_user.refresh_from_db()
    browser = Client()
    sign_in_with_second_factor(browser, counsellor_user)
    page = browser.get(reverse("staff:calendar")).content.decode()
    assert "Your calendar subscription stopped on" in page
    assert "when your password was reset" in page
    assert "Make a calendar address" in page and "Stop the subscription" not in page
    mine = browser.get(reverse("staff:profile_edit", args=[counsellor.pk])).content.decode()
    assert "Your calendar subscription stopped on" in mine
    # The Team page no longer counts it as live.
    assert "Calendar subscription since" not in counsellor_team_page(counsellor_user)
    # A new address works, and the notice is gone.
    new_path, _ = make_address(browser)
    assert Client().get(new_path).status_code == 200 and Client().get(path).status_code == 404
    page = browser.get(reverse("staff:calendar")).content.decode()
    assert "when your password was reset" not in page and "Stop the subscription" in page


def counsellor_team_page(member) -> str:
    from staff.models import User

    admin = User.objects.create_user(email="second.admin@example.com", role=User.Role.ADMINISTRATOR, first_name="Ada")
    browser = Client()
    sign_in_with_second_factor(browser, admin)
    return browser.get(reverse("staff:team")).content.decode()


def test_a_password_reset_without_a_subscription_says_nothing_of_one(counsellor_user, counsellor):
    _reset_password(Client(), counsellor_user.email, "a-brand-new-password-7")
    counsellor_user.refresh_from_db()
    browser = Client()
    sign_in_with_second_factor(browser, counsellor_user)
    page = browser.get(reverse("staff:calendar")).content.decode()
    assert "Make a calendar address" in page and "when your password was reset" not in page
    assert not CalendarSubscription.objects.exists()


PASSWORD = "a-long-counsellor-password"  # conftest's


def test_changing_the_password_may_stop_the_subscription_too(counsellor_client, subscribed, counsellor_user):
    """A change of password ends the member's other sessions, not an address someone who used
    the account may have made or read: the form asks, and stops it when told to."""
    path, _ = subscribed
    change = reverse("account_change_password")
    page = counsellor_client.get(change).content.decode()
    assert "Also stop my calendar address" in page and 'name="stop_calendar"' in page
    empty = counsellor_client.post(change, {"stop_calendar": "on"}).content.decode()
    assert "Enter your current password." in empty and "Enter a new password." in empty
    assert "<title>Error: Change your password" in empty and "There is a problem" in empty
    # Refused (a wrong current password): nothing is stopped.
    wrong = {"oldpassword": "not-it", "password1": "a-brand-new-password-7", "password2": "a-brand-new-password-7"}
    refused = counsellor_client.post(change, {**wrong, "stop_calendar": "on"})
    assert refused.status_code == 200 and Client().get(path).status_code == 200
    new = {**wrong, "oldpassword": PASSWORD}
    done = counsellor_client.post(change, {**new, "stop_calendar": "on"}, follow=True)
    assert done.status_code == 200
    assert "Your calendar subscription is stopped" in done.content.decode()
    assert Client().get(path).status_code == 404 and not CalendarSubscription.objects.exists()
    # With no live address, the question is not asked.
    assert 'name="stop_calendar"' not in counsellor_client.get(change).content.decode()


def test_changing_the_password_keeps_the_subscription_unless_asked(counsellor_client, subscribed):
    path, _ = subscribed
    new = "a-brand-new-password-7"
    response = counsellor_client.post(
        reverse("account_change_password"), {"oldpassword": PASSWORD, "password1": new, "password2": new}, follow=True
    )
    assert response.status_code == 200 and "calendar subscription is stopped" not in response.content.decode()
    assert Client().get(path).status_code == 200
