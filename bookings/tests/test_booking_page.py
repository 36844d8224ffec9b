"""The private booking page /bookings/<token>/ and its "Cancel this booking" request."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bookings.lifecycle import CLIENT_LABELS, NEXT_STEPS, NEXT_STEPS_ON_BOOKING_PAGE
from bookings.models import Actor, BookingEvent, Clinic, LinkToken, Slot, Status
from bookings.services import booking_transition
from bookings.tests.journey import main_part
from bookings.tokens import token_create
from conftest import request_held_for

pytestmark = pytest.mark.django_db


def page_url(booking, *, lifetime=timedelta(days=30)) -> str:
    return f"/bookings/{token_create(booking=booking, purpose=LinkToken.Purpose.MANAGE, lifetime=lifetime)}/"


@pytest.mark.parametrize("status", [s for s in Status.values if s != Status.DRAFT])
def test_every_status_renders_its_label_next_step_and_amount(client, make_booking, counsellor, status):
    booking = make_booking(status, counsellor=counsellor)
    response = client.get(page_url(booking))
    html = response.content.decode()
    assert response.status_code == 200
    assert booking.ack_id in html
    assert str(CLIENT_LABELS[status]) in html and str(NEXT_STEPS_ON_BOOKING_PAGE[status]) in html
    assert "₹1,500" in html
    # The status line never sends the client to the page they are on.
    status_line = re.search(r'<section id="booking-status".*?</section>', html, re.S).group(0)
    assert "booking page" not in status_line


def test_only_a_request_under_review_says_the_amount_is_not_due_yet(client, make_booking, counsellor):
    pending = make_booking(Status.PENDING, counsellor=counsellor)
    html = client.get(page_url(pending)).content.decode()
    assert "₹1,500, paid online once a time is reserved for you. Nothing is due now." in html
    approved = make_booking(Status.APPROVED, counsellor=counsellor, email="b@example.com")
    html = client.get(page_url(approved)).content.decode()
    assert "Nothing is due now" not in html


def test_the_status_lookup_still_points_to_the_booking_page():
    """NEXT_STEPS is also what /status/, the API and the page after verifying say."""
    assert "booking page" in str(NEXT_STEPS[Status.APPROVED])
    assert "booking page" not in str(NEXT_STEPS_ON_BOOKING_PAGE[Status.APPROVED])


def test_session_details_appear_once_a_slot_is_assigned(client, make_booking, counsellor, slot):
    pending = make_booking(Status.PENDING, counsellor=counsellor, preferred_slot=slot)
    html = client.get(page_url(pending)).content.decode()
    assert "You asked for" in html and "The clinic will confirm a time" in html
    approved = make_booking(Status.APPROVED, slot=slot, email="b@example.com")
    html = client.get(page_url(approved)).content.decode()
    local = timezone.localtime(slot.start)
    assert f"{local:%H:%M}\N{NO-BREAK SPACE}IST" in html and str(local.year) in html
    assert counsellor.display_name in html
    assert "50 minutes" in html and "Online" in html
    assert "will appear here once your session is confirmed." in html  # the room link only once confirmed
    # The confirmation email carries no room link (only the page and reminders do): not promised.
    assert "confirmation email" not in html
    assert counsellor.meeting_url not in html


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.REJECTED, Status.COMPLETED, Status.NO_SHOW])
def test_an_online_session_that_can_no_longer_happen_promises_no_link_to_join(client, make_booking, slot, status):
    booking = make_booking(status, slot=slot)
    html = client.get(page_url(booking)).content.decode()
    assert "Joining" not in html and "will appear here" not in html
    assert "When" in html and counsellor_name(slot) in html  # the rest of the record stays


def counsellor_name(slot) -> str:
    return slot.counsellor.display_name


def test_confirmed_online_session_shows_the_room_and_in_person_the_address(client, make_booking, counsellor):
    Clinic.objects.update_or_create(pk=1, defaults={"address": "12 Lake Road, Kochi", "directions": "Second floor"})
    online = make_booking(Status.CONFIRMED, counsellor=counsellor)
    assert counsellor.meeting_url in client.get(page_url(online)).content.decode()
    in_person = make_booking(Status.CONFIRMED, counsellor=counsellor, mode="in_person")
    html = client.get(page_url(in_person)).content.decode()
    assert "12 Lake Road, Kochi" in html and "Second floor" in html


def test_the_timeline_tells_the_story_in_client_words(client, make_booking, counsellor, slot, admin_user, oncommit):
    booking = make_booking(Status.DRAFT, counsellor=counsellor)
    BookingEvent.objects.create(booking=booking, to_status=Status.DRAFT, action="created", actor=Actor.CLIENT)
    with oncommit():
        booking_transition(booking=booking, to=Status.PENDING, actor=Actor.CLIENT, reason="Email verified")
        booking_transition(
            booking=booking,
            to=Status.REJECTED,
            actor=Actor.STAFF,
            user=admin_user,
            reason="No counsellor for this need",
        )
    html = client.get(page_url(booking)).content.decode()
    steps = ["You sent your booking request", "You confirmed your email address", "could not accept this request"]
    positions = [html.index(s) for s in steps]
    assert positions == sorted(positions)
    assert "No counsellor for this need" in html  # the rejection email points here for the reason


def test_staff_notes_and_the_clients_own_words_stay_off_the_page(client, make_booking, counsellor, admin_user):
    booking = make_booking(Status.PENDING, counsellor=counsellor, concerns="I feel low", preferred_times="evenings")
    BookingEvent.objects.create(
        booking=booking, action="email_resent", actor=Actor.STAFF, actor_user=admin_user, reason="internal note"
    )
    html = client.get(page_url(booking)).content.decode()
    assert "I feel low" not in html and "internal note" not in html and "evenings" not in html


def test_headers_keep_the_token_private(client, make_booking):
    response = client.get(page_url(make_booking(Status.PENDING)))
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]


def test_bad_revoked_and_expired_links_are_refused(client, make_booking):
    booking = make_booking(Status.PENDING)
    assert client.get("/bookings/not-a-token/").status_code == 404
    good = page_url(booking)
    assert client.get(good[:-2] + "/").status_code == 404
    LinkToken.objects.update(revoked_at=timezone.now())
    assert client.get(good).status_code == 410
    expired = page_url(booking, lifetime=timedelta(seconds=-1))
    response = client.get(expired)
    assert response.status_code == 410 and "/status/" in response.content.decode()
    verify = token_create(booking=booking, purpose=LinkToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
    assert client.get(f"/bookings/{verify}/").status_code == 404


def test_the_link_stops_working_some_days_after_the_session(client, make_booking, counsellor, settings):
    start = timezone.now() - timedelta(days=settings.BOOKING_LINK_DAYS_AFTER_SESSION, hours=2)
    old = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    booking = make_booking(Status.COMPLETED, slot=old)
    url = page_url(booking)
    response = client.get(url)
    assert response.status_code == 410
    html = response.content.decode()
    # It says why and whom to ask, and offers no fresh link (which would open this page again).
    assert f"Booking pages close {settings.BOOKING_LINK_DAYS_AFTER_SESSION} days after the session" in html
    assert "please contact the clinic" in html and "/status/" not in main_part(html)
    # What the page links to closes with it: the calendar file names the counsellor and time.
    assert client.get(url + "session.ics").status_code == 404
    Slot.objects.filter(pk=old.pk).update(start=start + timedelta(hours=3), end=start + timedelta(hours=4))
    assert client.get(url).status_code == 200
    assert client.get(url + "session.ics").status_code == 200


def test_a_closed_page_follows_the_setting_and_gives_the_clinics_details(client, make_booking, counsellor, settings):
    settings.BOOKING_LINK_DAYS_AFTER_SESSION = 1
    Clinic.objects.update_or_create(pk=1, defaults={"phone": "+91 22 5555 0100", "email": "care@example.com"})
    start = timezone.now() - timedelta(days=1, hours=2)
    old = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    html = client.get(page_url(make_booking(Status.CANCELLED, slot=old))).content.decode()
    assert "Booking pages close 1 day after the session" in html
    assert 'href="tel:+91 22 5555 0100"' in html and 'href="mailto:care@example.com"' in html


def test_an_expired_link_to_an_open_page_offers_a_fresh_one(client, make_booking):
    html = client.get(page_url(make_booking(Status.PENDING), lifetime=timedelta(seconds=-1))).content.decode()
    assert "Booking pages close" not in html and "we can email you a fresh link" in html


def test_get_changes_nothing(client, make_booking, counsellor):
    booking = make_booking(Status.APPROVED)
    url = page_url(booking)
    for _ in range(2):
        client.get(url)
    booking.refresh_from_db()
    assert booking.status == Status.APPROVED and booking.version == 1
    assert not LinkToken.objects.filter(purpose=LinkToken.Purpose.CANCEL).exists()
    assert mail.outbox == []


# --- Asking to cancel ---------------------------------------------------------------------


def test_cancel_request_emails_a_one_hour_single_use_link(client, make_booking, counsellor):
    booking = make_booking(Status.APPROVED)
    url = page_url(booking)
    assert "Cancel this booking" in client.get(url).content.decode()
    response = client.post(f"{url}cancel/")
    assert response.status_code == 303 and response["Location"] == url
    assert "We have emailed you a link to confirm the cancellation" in client.get(url).content.decode()
    booking.refresh_from_db()
    assert booking.status == Status.APPROVED  # nothing changes until the emailed link is used
    link = LinkToken.objects.get(purpose=LinkToken.Purpose.CANCEL)
    assert timedelta(minutes=59) < link.expires_at - timezone.now() <= timedelta(minutes=60)
    assert mail.outbox[-1].to == [booking.email] and "/cancel/" in mail.outbox[-1].body


def test_cancel_request_is_rate_limited(client, make_booking, presses_apart):
    booking = make_booking(Status.PENDING)
    url = page_url(booking)
    for _ in range(5):
        client.post(f"{url}cancel/")
        presses_apart()
    limited = client.post(f"{url}cancel/")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "Please try again in" in limited.content.decode()
    assert len(mail.outbox) == 5


def test_within_the_cutoff_the_page_says_how_to_contact_the_clinic(client, make_booking, counsellor):
    Clinic.objects.update_or_create(pk=1, defaults={"phone": "+91 484 000 0000", "email": "care@clinic.example"})
    start = timezone.now() + timedelta(hours=5)
    soon = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    booking = make_booking(Status.CONFIRMED, slot=soon)
    url = page_url(booking)
    html = client.get(url).content.decode()
    assert "can no longer be cancelled online" in html
    assert "+91 484 000 0000" in html and "care@clinic.example" in html
    assert f'action="{url}cancel/"' not in html
    response = client.post(f"{url}cancel/")
    assert response.status_code == 303
    assert "Please contact the clinic" in client.get(url).content.decode()
    assert mail.outbox == []


def test_final_bookings_offer_no_cancellation(client, make_booking):
    booking = make_booking(Status.CANCELLED)
    html = client.get(page_url(booking)).content.decode()
    assert "Cancel this booking" not in html and "Need to cancel" not in html


def test_cancel_request_needs_post(client, make_booking):
    url = page_url(make_booking(Status.PENDING))
    assert client.get(f"{url}cancel/").status_code == 405
    assert mail.outbox == []


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED, Status.REJECTED])
def test_an_ended_booking_offers_to_book_again_with_its_choices(client, make_booking, counsellor, status):
    booking = make_booking(status, counsellor=counsellor, mode="in_person")
    html = client.get(page_url(booking)).content.decode()
    section = re.search(r'<section id="book-again".*?</section>', html, re.S).group(0)
    heading = "Your next session" if status == Status.COMPLETED else "Book again"
    assert f">{heading}</h2>" in section and f"with {counsellor.display_name}:" in section
    href = re.search(r'href="([^"]+)"', section).group(1).replace("&amp;", "&")
    assert href == f"/book/?mode=in_person&lang=en&type={booking.session_type.slug}&counsellor={counsellor.slug}"
    # Followed, the wizard starts with those choices made; the client chooses the time.
    html = client.get(href, follow=True).content.decode()
    assert re.search(rf'<option value="{counsellor.pk}" selected>', html)
    assert re.search(r'value="in_person"[^>]*checked', html)


@pytest.mark.parametrize("status", [Status.PENDING, Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED])
def test_an_active_booking_does_not_offer_to_book_again(client, make_booking, counsellor, status):
    booking = make_booking(status, counsellor=counsellor)
    assert 'id="book-again"' not in client.get(page_url(booking)).content.decode()


def test_book_again_leaves_out_a_counsellor_and_a_kind_of_session_no_longer_offered(
    client, make_booking, counsellor, session_type
):
    booking = make_booking(Status.COMPLETED, counsellor=counsellor)
    type(counsellor).objects.filter(pk=counsellor.pk).update(is_active=False)
    type(session_type).objects.filter(pk=session_type.pk).update(is_active=False)
    section = re.search(r'<section id="book-again".*?</section>', client.get(page_url(booking)).content.decode(), re.S)
    assert 'href="/book/?mode=online&amp;lang=en"' in section.group(0)
    assert counsellor.display_name not in section.group(0) and ">Book a session</a>" in section.group(0)


def test_a_confirmed_session_whose_time_has_passed_says_what_comes_next(client, make_booking, counsellor):
    """Until the clinic records it as held, the booking is active: "you are all set" would
    leave them wondering what comes next, and a request for the next one waits for it."""
    start = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    booking = make_booking(
        Status.CONFIRMED, slot=Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(hours=1))
    )
    html = client.get(page_url(booking)).content.decode()
    assert "Your session&#x27;s time has passed. You can book your next session now: your request will" in html
    assert "You are all set" not in html
    # Its request is held until this one is recorded (test_held_requests): the next is a click away.
    assert 'id="book-again"' in html and "Your next session" in html
    # Nothing to join, move, cancel or add to a calendar any more.
    for gone in ("Join the online session", "Need to cancel?", "Cancel this booking", "Move to another time", ".ics"):
        assert gone not in html, gone
    # Once a request for the next is held, the page says so, and offers no second one.
    request_held_for(booking)
    html = client.get(page_url(booking)).content.decode()
    assert "Your request for your next session is saved" in html and 'id="book-again"' not in html
