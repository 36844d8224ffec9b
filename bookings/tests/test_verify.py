"""Email verification at /verify/<token>/: one button, only its POST verifies."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bookings.models import Booking, LinkToken, Status
from bookings.services import booking_submit, session_type_save
from bookings.tests.journey import link_in_last_email, main_part, submit, walk_to_review
from bookings.tokens import token_hash

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft_link(client, session_type, slot) -> str:
    """A draft made through the wizard, and the path of its emailed verification link."""
    submit(client, walk_to_review(client, session_type=session_type, slot=slot))
    return link_in_last_email("/verify/")


def _token(path: str) -> str:
    return path.rstrip("/").split("/")[-1]


def test_get_shows_one_button_and_changes_nothing(client, draft_link):
    for _ in range(3):  # mail scanners open links, sometimes more than once
        response = client.get(draft_link)
        html = response.content.decode()
        assert response.status_code == 200
        assert main_part(html).count('type="submit"') == 1 and "Confirm my email" in html
        assert f'action="{draft_link}"' in html and 'method="post"' in html
    booking = Booking.objects.get()
    assert booking.status == Status.DRAFT
    assert LinkToken.objects.get(purpose=LinkToken.Purpose.VERIFY).used_at is None
    assert len(mail.outbox) == 1


def test_post_verifies_and_shows_the_acknowledgement_id(client, draft_link):
    response = client.post(draft_link)
    booking = Booking.objects.get()
    html = response.content.decode()
    assert response.status_code == 200
    assert booking.status == Status.PENDING
    assert booking.ack_id in html and "What happens next" in html
    assert "A counsellor is reviewing your request" in html
    assert "The time you chose is no longer offered" not in html
    assert not booking.events.filter(action="time_withdrawn").exists()
    received = mail.outbox[-1]
    assert received.to == [booking.email]
    assert booking.ack_id in received.subject
    assert "/bookings/" in received.body
    assert "Trouble sleeping" not in received.body + received.alternatives[0].content


def test_a_time_withdrawn_before_the_email_was_confirmed_is_said_to_both_sides(client, draft_link, slot):
    """A blocked period (leave) deletes the free slot a draft chose: drafts, unconfirmed, may be
    anyone's and hold nothing. The request still reaches the clinic, without a time: the client
    is told they will be offered another, and the staff's timeline says what happened."""
    from bookings.services import blocked_period_create

    assert "The time you chose is no longer offered" not in client.get(draft_link).content.decode()
    blocked_period_create(counsellor=slot.counsellor, start=slot.start, end=slot.end, reason="Leave")
    response = client.post(draft_link)
    booking = Booking.objects.get()
    assert booking.status == Status.PENDING and booking.preferred_slot is None
    assert "The time you chose is no longer offered" in response.content.decode()
    event = booking.events.get(action="time_withdrawn")
    assert event.actor == "system" and "withdrawn before they confirmed" in event.reason
    page = client.get(link_in_last_email("/bookings/")).content.decode()
    assert "The time you chose was no longer offered; the clinic will offer you another" in page


def test_a_time_taken_before_the_email_was_confirmed_is_said_plainly(client, draft_link, slot, make_booking):
    """Staff approve another request into the slot a draft chose while its client has not yet
    opened the verification email. The request still reaches the clinic, and the client is told
    at once, on the page and on their booking page, that the time is gone; the time they asked
    for is kept (if it comes free again, staff find it chosen for them)."""
    other = make_booking(Status.APPROVED, slot=slot)
    response = client.post(draft_link)
    html = response.content.decode()
    booking = Booking.objects.exclude(pk=other.pk).get()
    assert booking.status == Status.PENDING and booking.preferred_slot == slot
    assert "The time you chose has just been taken." in html
    assert "Your request is with the clinic, who will offer you another time." in html
    assert "The time you chose is no longer offered" not in html
    event = booking.events.get(action="time_withdrawn")
    assert event.actor == "system" and "taken by another booking" in event.reason
    page = client.get(link_in_last_email("/bookings/")).content.decode()
    assert "which has since been taken; the clinic will offer you another time." in page
    assert "with Asha Menon." not in page and "The clinic will confirm a time with you." not in page
    assert "The time you chose was no longer offered; the clinic will offer you another" in page


def test_a_time_blocked_off_before_the_email_was_confirmed_is_said_to_be_withdrawn(client, draft_link, slot):
    """Leave that keeps a slot (a booking of the day's other hours, say) still blocks it."""
    from bookings.models import BlockedPeriod

    BlockedPeriod.objects.create(counsellor=slot.counsellor, start=slot.start, end=slot.end, reason="Leave")
    html = client.post(draft_link).content.decode()
    booking = Booking.objects.get()
    assert booking.status == Status.PENDING and booking.preferred_slot == slot
    assert "The time you chose is no longer offered" in html
    assert booking.events.filter(action="time_withdrawn").exists()
    page = client.get(link_in_last_email("/bookings/")).content.decode()
    assert "which is no longer offered; the clinic will offer you another time." in page


def test_a_time_now_too_soon_to_book_online_is_said_at_confirmation(client, draft_link, slot, settings):
    settings.BOOKING_MIN_NOTICE_HOURS = 24 * 10  # the slot is three days away
    html = client.post(draft_link).content.decode()
    assert "The time you chose is now too soon to book online." in html
    assert Booking.objects.get().events.filter(action="time_withdrawn").exists()


def test_the_booking_page_says_when_the_time_asked_for_is_taken_after_confirmation(
    client, draft_link, slot, make_booking
):
    client.post(draft_link)
    page_link = link_in_last_email("/bookings/")
    assert "You asked for" in (page := client.get(page_link).content.decode()) and "with Asha Menon." in page
    make_booking(Status.CONFIRMED, slot=slot)
    page = client.get(page_link).content.decode()
    assert "which has since been taken; the clinic will offer you another time." in page


def test_token_pages_keep_the_token_out_of_referers_and_caches(client, draft_link):
    for response in (client.get(draft_link), client.post(draft_link), client.get(draft_link)):
        assert response["Referrer-Policy"] == "same-origin"
        assert "no-store" in response["Cache-Control"]


def test_a_used_link_explains_and_verifies_nothing_twice(client, draft_link):
    client.post(draft_link)
    again = client.post(draft_link)
    assert again.status_code == 410
    # Back, a reload, the page read in another language: what the first press did, with the ID.
    ack_id = Booking.objects.get().ack_id
    assert f"your email address is confirmed, and your request {ack_id} has reached us" in again.content.decode()
    assert client.get(draft_link).status_code == 410
    assert Booking.objects.get().events.filter(to_status=Status.PENDING).count() == 1


def test_a_way_of_meeting_no_longer_offered_is_refused_and_the_link_still_stands(client, draft_link, session_type):
    """An administrator may stop holding a session type online while no open booking is held
    that way: a draft is not one yet. Verifying it made a request nobody could approve
    (approving checks the way of meeting), so the client waited for an answer that could only
    be a rejection. Found by the random walk (test_lifecycle_walk.py)."""
    session_type.offers_online = False
    session_type_save(session_type=session_type)
    response = client.post(draft_link)
    assert response.status_code == 409
    assert "is not held online" in response.content.decode()
    assert Booking.objects.get().status == Status.DRAFT
    assert LinkToken.objects.get(purpose=LinkToken.Purpose.VERIFY).used_at is None  # nothing changed


def test_an_expired_link_offers_a_resend_that_reaches_only_the_draft_address(client, draft_link):
    LinkToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    page = client.get(draft_link)
    html = page.content.decode()
    assert page.status_code == 410 and "expired" in html
    assert f'action="{draft_link}resend/"' in html
    assert client.post(draft_link).status_code == 410
    assert Booking.objects.get().status == Status.DRAFT

    resent = client.post(f"{draft_link}resend/")
    assert resent.status_code == 200
    assert [m.to for m in mail.outbox] == [["priya@example.com"], ["priya@example.com"]]
    new_link = link_in_last_email("/verify/")
    assert new_link != draft_link
    client.post(new_link)
    assert Booking.objects.get().status == Status.PENDING


def test_resend_is_rate_limited(client, draft_link, presses_apart):
    LinkToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for _ in range(3):
        assert client.post(f"{draft_link}resend/").status_code == 200
        presses_apart()
    limited = client.post(f"{draft_link}resend/")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "Please try again in" in limited.content.decode()
    assert len(mail.outbox) == 1 + 3


def test_resend_answers_the_same_for_an_unknown_link_and_sends_nothing(client, draft_link):
    response = client.post("/verify/made-up-token/resend/")
    assert response.status_code == 200
    assert len(mail.outbox) == 1


def test_resend_for_a_verified_booking_sends_nothing(client, draft_link):
    client.post(draft_link)
    sent = len(mail.outbox)
    page = client.get(draft_link)
    assert "Send me a new link" not in page.content.decode()
    client.post(f"{draft_link}resend/")
    assert len(mail.outbox) == sent


def test_a_replaced_link_no_longer_works(client, draft_link, presses_apart):
    presses_apart()
    client.post(f"{draft_link}resend/")
    response = client.post(draft_link)
    assert response.status_code == 410 and "no longer valid" in response.content.decode()
    assert Booking.objects.get().status == Status.DRAFT


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t + "x", lambda t: "x" * 150]
)
def test_tampered_tokens_are_refused(client, draft_link, mangle):
    bad = f"/verify/{mangle(_token(draft_link))}/"
    assert client.get(bad).status_code == 404
    assert client.post(bad).status_code == 404
    assert Booking.objects.get().status == Status.DRAFT


def test_a_token_for_another_purpose_does_not_verify(client, draft_link, oncommit):
    from bookings.tokens import token_create

    booking = Booking.objects.get()
    manage = token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=timedelta(days=1))
    assert client.post(f"/verify/{manage}/").status_code == 404
    assert Booking.objects.get().status == Status.DRAFT


def test_an_existing_active_booking_is_not_revealed_and_no_second_one_is_made(client, draft_link, make_booking):
    existing = make_booking(Status.PENDING, email="priya@example.com")
    response = client.post(draft_link)
    html = response.content.decode()
    assert response.status_code == 409
    assert "already an active booking" in html
    assert existing.ack_id not in html and "Test Client" not in html
    assert Booking.objects.get(pk=existing.pk).status == Status.PENDING
    assert Booking.objects.exclude(pk=existing.pk).get().status == Status.DRAFT
    notice = mail.outbox[-1]
    assert notice.to == ["priya@example.com"] and existing.ack_id in notice.body
    # The link is used up: a second try does not email again.
    assert client.post(draft_link).status_code == 410


def test_only_the_token_hash_is_stored(client, draft_link):
    raw = _token(draft_link)
    assert not LinkToken.objects.filter(token_hash=raw).exists()
    assert LinkToken.objects.filter(token_hash=token_hash(raw)).exists()


def test_a_draft_made_by_the_service_verifies_through_the_page(client, session_type, slot, oncommit):
    with oncommit():
        booking, created = booking_submit(
            submission_key="k1",
            session_type=session_type,
            mode="online",
            counsellor=None,
            preferred_slot=slot,
            preferred_times="",
            client_name="Asha",
            email="a@example.com",
            phone="",
            age_confirmation="adult",
            concerns="",
        )
    assert created
    client.post(link_in_last_email("/verify/"))
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


def test_the_confirm_button_passes_csrf_as_a_browser_sends_it(draft_link):
    """Browsers send `Origin: null` with form posts from a `no-referrer` page (Fetch spec),
    which Django's CSRF check refuses; the page's policy must let its own button work."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    page = browser.get(draft_link)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    origin = "null" if page["Referrer-Policy"] == "no-referrer" else "http://testserver"
    response = browser.post(draft_link, {"csrfmiddlewaretoken": token}, headers={"Origin": origin})
    assert response.status_code == 200
    assert Booking.objects.get().status == Status.PENDING


def test_a_time_whose_counsellor_stopped_meeting_that_way_before_confirmation_is_said_lost(
    client, session_type, slot, counsellor
):
    """Drafts hold nothing: the counsellor may stop meeting online meanwhile. The request
    made then says its time is no longer offered, for staff to offer another."""
    from bookings.services import counsellor_save

    submit(client, walk_to_review(client, session_type=session_type, slot=slot, mode="online"))
    verify = link_in_last_email("/verify/")
    counsellor.offers_online = False
    counsellor_save(counsellor=counsellor)
    page = client.post(verify).content.decode()
    booking = Booking.objects.get()
    assert booking.status == Status.PENDING and booking.events.filter(action="time_withdrawn").exists()
    assert "no longer offered" in page
