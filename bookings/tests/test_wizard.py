"""The booking wizard at /book/: steps, validation, htmx fragments, resilience, limits."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.models import Booking, BookingEvent, Clinic, Counsellor, LinkToken, SessionType, Slot, Status
from bookings.tests.journey import (
    ABOUT,
    consent,
    errors_in,
    run_of,
    session_data,
    skipped_heading_levels,
    start,
    step_of,
    submit,
    url,
    walk_to_review,
)
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def test_book_starts_a_run_and_shows_the_free_times_of_the_first_day(client, session_type, slot, make_booking):
    taken = Slot.objects.create(
        counsellor=slot.counsellor, start=slot.start + timedelta(hours=2), end=slot.end + timedelta(hours=2)
    )
    make_booking(Status.APPROVED, slot=taken)
    response = client.get("/book/")
    assert response.status_code == 302
    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="wizard-step"' in html
    assert session_type.name in html
    assert f'id="slot-{slot.pk}"' in html
    assert f'id="slot-{taken.pk}"' not in html, "a held slot is never offered"
    assert "10:00\N{NO-BREAK SPACE}IST" in html and "Times are shown in India Standard Time (IST)." in html
    assert page["Cache-Control"].startswith("max-age=0") and "no-store" in page["Cache-Control"]


def test_before_a_kind_of_session_is_chosen_only_times_that_can_hold_one_are_shown(client, session_type, slot):
    """A 20-minute slot fits no kind of session offered (50 and 80 minutes here): choosing it
    could only be refused. As the chatbot's API, the picker leaves it out."""
    SessionType.objects.create(name="Couples", slug="couples", duration_minutes=80, price=250000)
    short = Slot.objects.create(
        counsellor=slot.counsellor, start=slot.start - timedelta(hours=1), end=slot.start - timedelta(minutes=40)
    )
    html = client.get(client.get("/book/")["Location"]).content.decode()
    assert f'id="slot-{slot.pk}"' in html and f'id="slot-{short.pk}"' not in html


def test_a_browser_that_keeps_no_cookie_is_told_so_instead_of_redirected_for_ever(client, session_type, slot):
    """The answers live in the session: without its cookie, each fresh start would redirect
    to another (a browser stops with "too many redirects", a blank failure)."""
    from django.test import Client

    started = client.get("/book/")
    assert started.status_code == 302 and started["Location"].endswith("&new=1")
    cookieless = Client()  # the same address, without the cookie the first answer set
    page = cookieless.get(started["Location"])
    html = page.content.decode()
    assert page.status_code == 400 and "We could not keep your place in the booking form" in html
    assert "allow cookies for this site" in html and '<a class="btn-primary" href="/book/">Start again</a>' in html
    # With the cookie, the same address is the first step; an older link (no new=1) starts again.
    assert client.get(started["Location"]).status_code == 200
    assert Client().get(url(run_of(started["Location"]), "session")).status_code == 302


def test_no_javascript_path_end_to_end_creates_one_draft_and_emails_the_link(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    review = client.get(url(run, "review"))
    html = review.content.decode()
    assert "Priya Sharma" in html and "priya@example.com" in html and "+91 98765 43210" in html
    assert "Trouble sleeping since the move." in html
    assert "10:00\N{NO-BREAK SPACE}IST" in html

    response = submit(client, run)
    assert response.status_code == 303 and step_of(response["Location"]) == "done"
    done = client.get(response["Location"])
    assert "priya@example.com" in done.content.decode()

    booking = Booking.objects.get()
    assert booking.status == Status.DRAFT
    assert booking.submission_key == run
    assert booking.email == "priya@example.com"
    assert booking.phone == "+919876543210"
    assert booking.preferred_slot == slot and booking.counsellor == slot.counsellor
    assert booking.concerns == "Trouble sleeping since the move."
    assert booking.age_confirmation == Booking.AgeConfirmation.ADULT
    assert booking.consent_policy_version and booking.consented_at is not None
    assert [m.to for m in mail.outbox] == [["priya@example.com"]]
    assert "/verify/" in mail.outbox[0].body
    assert "Trouble sleeping" not in mail.outbox[0].body
    assert "Trouble sleeping" not in mail.outbox[0].alternatives[0].content


def test_back_and_reload_keep_what_was_typed(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    about = client.get(url(run, "about")).content.decode()
    assert 'value="Priya Sharma"' in about and 'value="Priya@Example.com"' in about
    session = client.get(url(run, "session")).content.decode()
    assert re.search(rf'value="{slot.pk}" id="slot-{slot.pk}"[^>]*checked', session)
    concerns = client.get(url(run, "concerns")).content.decode()
    assert "Trouble sleeping since the move." in concerns


def test_change_link_returns_to_the_review(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    response = client.post(url(run, "about", **{"return": "review"}), {**ABOUT, "client_name": "Priya S"})
    assert response.status_code == 303 and step_of(response["Location"]) == "review"
    assert "Priya S" in client.get(response["Location"]).content.decode()


def test_a_later_step_cannot_be_opened_before_the_earlier_ones(client, session_type, slot):
    run = start(client)
    response = client.get(url(run, "review"))
    assert response.status_code == 302 and step_of(response["Location"]) == "session"


def test_get_never_changes_state(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    for step in ("session", "about", "concerns", "review"):
        assert client.get(url(run, step)).status_code == 200
    assert not Booking.objects.exists()
    assert mail.outbox == []


# --- Bad input, step by step --------------------------------------------------------------


@pytest.fixture
def online_only(db) -> SessionType:
    return SessionType.objects.create(
        name="Online check-in", slug="check-in", duration_minutes=30, price=50000, offers_in_person=False
    )


@pytest.mark.parametrize(
    ("change", "field_error"),
    [
        ({"session_type": "999999"}, "Choose one of the kinds of session listed."),
        ({"session_type": "<script>"}, "Choose one of the kinds of session listed."),
        ({"session_type": ""}, "Choose the kind of session you would like."),
        ({"mode": "telepathy"}, "Choose online or in person."),
        ({"counsellor": "999999"}, "Choose one of the counsellors listed"),
        ({"slot": "999999"}, "That time is no longer available."),
        ({"slot": "12; DROP TABLE"}, "That time is no longer available."),
        ({"slot": ""}, "Choose a time, or tell us which days and times suit you."),
        ({"slot": "", "preferred_times": "x" * 501}, "Use 500 characters or fewer."),
    ],
)
def test_session_step_refuses_bad_input(client, session_type, slot, change, field_error):
    run = start(client)
    response = client.post(url(run, "session"), {**session_data(session_type=session_type, slot=slot), **change})
    assert response.status_code == 200
    assert any(field_error in e for e in errors_in(response)), errors_in(response)
    assert 'class="error-summary"' in response.content.decode()


def test_forged_inactive_session_type_is_refused(client, session_type, slot):
    hidden = SessionType.objects.create(name="Secret", slug="secret", duration_minutes=50, price=1, is_active=False)
    run = start(client)
    response = client.post(url(run, "session"), session_data(session_type=hidden, slot=slot))
    assert "Choose one of the kinds of session listed." in errors_in(response)


def test_another_counsellors_slot_is_refused(client, session_type, slot, other_slot, counsellor):
    run = start(client)
    response = client.post(
        url(run, "session"), session_data(session_type=session_type, slot=other_slot, counsellor=counsellor.pk)
    )
    assert any("different counsellor" in e for e in errors_in(response))


def test_past_and_too_soon_slots_are_refused(client, session_type, counsellor):
    past_start = timezone.now() - timedelta(days=1)
    past = Slot.objects.create(counsellor=counsellor, start=past_start, end=past_start + timedelta(hours=1))
    soon_start = timezone.now() + timedelta(hours=2)
    soon = Slot.objects.create(counsellor=counsellor, start=soon_start, end=soon_start + timedelta(hours=1))
    for bad in (past, soon):
        run = start(client)
        response = client.post(url(run, "session"), session_data(session_type=session_type, slot=bad))
        assert any("too soon" in e for e in errors_in(response)), errors_in(response)


def test_mode_the_session_type_does_not_offer_is_refused(client, online_only, slot):
    run = start(client)
    response = client.post(url(run, "session"), session_data(session_type=online_only, slot=slot, mode="in_person"))
    assert any("is not held in person. Choose online" in e for e in errors_in(response)), errors_in(response)


def test_slot_too_short_for_the_session_type_is_refused(client, counsellor):
    long_type = SessionType.objects.create(name="Couples", slug="couples", duration_minutes=80, price=1)
    start_at = next_weekday_at(14)
    short = Slot.objects.create(counsellor=counsellor, start=start_at, end=start_at + timedelta(minutes=60))
    run = start(client)
    response = client.post(url(run, "session"), session_data(session_type=long_type, slot=short))
    assert any("too short" in e for e in errors_in(response))


def test_preferred_times_instead_of_a_slot(client, session_type):
    run = start(client)
    data = session_data(session_type=session_type, preferred_times="Weekday evenings")
    response = client.post(url(run, "session"), data)
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("change", "anchor", "message"),
    [
        ({"email": "not-an-email"}, "id_email", "Enter an email address in the right format"),
        ({"email": "a@b"}, "id_email", "Enter an email address in the right format"),
        ({"phone": "12ab"}, "id_phone", "Enter a phone number"),
        ({"phone": "12345"}, "id_phone", "This phone number is not valid"),
        ({"client_name": ""}, "id_client_name", "Enter your name"),
        ({"client_name": "x" * 121}, "id_client_name", "Use 120 characters or fewer."),
        ({"age": ""}, "id_age", "Tick the box to confirm you are 18 or over."),
    ],
)
def test_about_step_refuses_bad_input_with_a_linked_summary(client, session_type, slot, change, anchor, message):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    response = client.post(url(run, "about"), {**ABOUT, **change})
    html = response.content.decode()
    assert response.status_code == 200
    assert any(message in e for e in errors_in(response)), errors_in(response)
    # GOV.UK pattern: the summary links to the field; the field points at its error.
    assert f'href="#{anchor}"' in html
    field = re.search(rf'<input[^>]*id="{anchor}"[^>]*>', html).group(0)
    assert f"{anchor}_error" in field and 'aria-invalid="true"' in field
    assert html.index("error-summary") < html.index(f'id="{anchor}_error"')
    assert "<title>Error: About you" in html


def test_guardian_consent_policy_offers_the_younger_option(client, session_type, slot, settings):
    settings.CLIENT_AGE_POLICY = "guardian_consent"
    run = start(client)
    client.post(url(run, "session"), session_data(session_type=session_type, slot=slot))
    assert "parent" in client.get(url(run, "about")).content.decode()
    response = client.post(url(run, "about"), {**ABOUT, "age": "guardian"})
    assert response.status_code == 303
    client.post(url(run, "concerns"), {"concerns": ""})
    submit(client, run)
    assert Booking.objects.get().age_confirmation == Booking.AgeConfirmation.GUARDIAN


def test_concerns_step_refuses_overlong_text(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    page = client.get(url(run, "concerns")).content.decode()
    # Said before, and not cut by the browser: a paste past `maxlength` would lose its end unseen.
    assert "at most 2000 characters" in page and "maxlength" not in page.split('id="id_concerns"')[1].split(">")[0]
    written = "I have not slept well since the move. " * 60
    response = client.post(url(run, "concerns"), {"concerns": written})
    assert "Use 2000 characters or fewer." in errors_in(response)
    html = response.content.decode()
    assert 'aria-describedby="id_concerns_helptext id_concerns_error"' in html
    assert written.strip() in html.replace("&#x27;", "'")  # kept as written, to shorten


def test_a_price_changed_while_the_review_was_open_is_shown_before_anything_is_sent(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    sent = consent(client, run)
    SessionType.objects.filter(pk=session_type.pk).update(price=180000)
    response = client.post(url(run, "review"), sent)
    assert response.status_code == 409
    html = response.content.decode()
    assert "The price of this session has changed to ₹1,800 since this page was shown." in html
    assert "₹1,800" in html[: html.index("Before you send")]  # the new price, in "Your session"
    assert not Booking.objects.exists()
    # Sent again from that page, at the price it now shows: the request goes.
    assert submit(client, run).status_code == 303
    assert Booking.objects.get().amount == 180000


def test_a_length_changed_while_the_review_was_open_is_shown_before_anything_is_sent(client, session_type, slot):
    """A type no booking uses yet may change its length; the calendar invitation says it."""
    run = walk_to_review(client, session_type=session_type, slot=slot)
    sent = consent(client, run)
    SessionType.objects.filter(pk=session_type.pk).update(duration_minutes=45)
    response = client.post(url(run, "review"), sent)
    assert response.status_code == 409
    assert (
        "The length of this session has changed to 45 minutes since this page was shown." in response.content.decode()
    )
    assert not Booking.objects.exists()
    assert submit(client, run).status_code == 303


def test_consent_is_recorded_only_for_the_policy_version_the_client_was_shown(client, session_type, slot, settings):
    """A new privacy notice or cancellation policy published while the review was open: the
    client agreed to the old one, so nothing is sent until they have seen and agreed to the new."""
    settings.POLICY_VERSION = "2026-11-01"
    run = walk_to_review(client, session_type=session_type, slot=slot)
    sent = consent(client, run)
    settings.POLICY_VERSION = "2026-12-15"
    response = client.post(url(run, "review"), sent)
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed since this page was shown" in html and "(version 2026-12-15)" in html
    boxes = re.findall(r'<input[^>]*name="agree_[a-z]+"[^>]*>', html)
    assert len(boxes) == 2 and not any("checked" in box for box in boxes)  # agreed again, not carried over
    assert not Booking.objects.exists()
    assert submit(client, run).status_code == 303
    assert Booking.objects.get().consent_policy_version == "2026-12-15"


def test_review_requires_both_agreements(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    response = client.post(url(run, "review"), {})
    html = response.content.decode()
    assert 'href="#id_agree_privacy"' in html and 'href="#id_agree_cancellation"' in html
    assert not Booking.objects.exists()


def test_review_says_nothing_is_paid_now_and_when_the_price_is_due(client, session_type, slot):
    """Before "Send my request" an anxious client wonders whether it charges them."""
    run = walk_to_review(client, session_type=session_type, slot=slot)
    html = client.get(url(run, "review")).content.decode()
    assert "You pay nothing now." in html
    assert "we email you a link to pay ₹1,500 online." in html


def test_html_and_script_in_every_text_field_is_shown_escaped(client, session_type):
    evil = '<script>alert("x")</script><b>'
    run = walk_to_review(
        client,
        session_type=session_type,
        preferred_times=evil,
        about={**ABOUT, "client_name": evil},
        concerns=evil,
    )
    for step in ("session", "about", "concerns", "review"):
        html = client.get(url(run, step)).content.decode()
        assert "<script>alert" not in html and "<b>" not in html, step
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;" in html, step
    submit(client, run)
    booking = Booking.objects.get()
    assert booking.client_name == evil and booking.concerns == evil  # stored as typed
    assert "<script>" not in mail.outbox[0].alternatives[0].content


# --- Slot availability and double submits -------------------------------------------------


def test_slot_taken_meanwhile_is_an_error_on_the_chosen_day_and_leads_back_to_the_review(
    client, session_type, slot, make_booking, counsellor
):
    later_start = next_weekday_at(10, days_ahead=5)
    chosen = Slot.objects.create(counsellor=counsellor, start=later_start, end=later_start + timedelta(hours=1))
    same_day = Slot.objects.create(counsellor=counsellor, start=chosen.end, end=chosen.end + timedelta(hours=1))
    run = walk_to_review(client, session_type=session_type, slot=chosen)
    sent = consent(client, run)  # the review page, as the client has it
    make_booking(Status.APPROVED, slot=chosen)  # someone else got it first
    response = client.post(url(run, "review"), sent)
    review_next = url(run, "session", **{"return": "review"})
    assert response.status_code == 303 and response["Location"] == review_next
    page = client.get(response["Location"])
    html = page.content.decode()
    # An error the client sees at once: "Error:" in the title, the summary at the top linking
    # to the times, and the reason next to them.
    assert re.search(r"<title>Error: Choose your session", html)
    message = "Sorry, that time has just been taken. Please choose another time."
    assert errors_in(page) == [message]  # next to the times
    summary = re.search(r"<div class=\"error-summary\".*?</div>", html, re.S).group(0)
    assert f'<a href="#slot-picker" class="font-semibold text-red-800">{message}</a>' in summary
    assert html.index("data-error-summary") < html.index('id="slot-picker"')
    assert 'aria-describedby="slot-hint id_slot_error"' in html
    assert 'class="notice"' not in html
    # The picker shows the day of the time that went, not the first day.
    day = later_start.date().isoformat()
    assert f'value="{day}" id="day-{day}" aria-pressed="true"' in html
    assert f'id="slot-{chosen.pk}"' not in html and f'id="slot-{same_day.pk}"' in html
    assert not Booking.objects.filter(status=Status.DRAFT).exists()
    assert "Error:" not in client.get(review_next).content.decode().split("</title>")[0]  # said once
    # Everything else was kept: choosing another time goes straight back to the review.
    assert client.get(url(run, "about")).status_code == 302  # the session step must be redone
    other = Slot.objects.create(
        counsellor=slot.counsellor, start=slot.start + timedelta(hours=3), end=slot.end + timedelta(hours=3)
    )
    response = client.post(review_next, session_data(session_type=session_type, slot=other))
    assert response.status_code == 303 and step_of(response["Location"]) == "review"
    assert "Priya Sharma" in client.get(response["Location"]).content.decode()


def test_slot_taken_between_steps_with_htmx_swaps_in_the_picker(client, session_type, slot, make_booking):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    sent = consent(client, run)  # the review page, as the client has it
    make_booking(Status.PENDING, slot=None, preferred_slot=slot)  # only a wish: still free
    make_booking(Status.CONFIRMED, slot=slot)
    response = client.post(url(run, "review"), sent, headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-step="session"' in html and "<html" not in html
    assert "<title>Error: Choose your session" in html and "data-error-summary" in html
    assert response["HX-Push-Url"] == url(run, "session", **{"return": "review"})
    assert f'action="{url(run, "session", **{"return": "review"}).replace("&", "&amp;")}"' in html


def test_submitting_twice_makes_one_draft(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    first = submit(client, run)
    second = submit(client, run)  # a double click, or Back and send again
    assert first.status_code == 303 and step_of(first["Location"]) == "done"
    assert second.status_code == 200 and "Check your email" in second.content.decode()
    assert Booking.objects.count() == 1
    assert BookingEvent.objects.filter(action="created").count() == 1
    assert len(mail.outbox) == 1


def test_after_sending_the_session_keeps_no_answers(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    stored = client.session["booking_wizard"][run]
    assert stored["data"] == {} and stored["booking_id"] == Booking.objects.get().pk
    # Back to an earlier step after sending: the "check your email" page, not a blank form.
    assert "Check your email" in client.get(url(run, "about")).content.decode()


def test_a_lost_run_starts_again_instead_of_failing(client, session_type, slot):
    response = client.post(url("not-a-run", "about"), ABOUT)
    assert response.status_code == 303  # to the first step, with what was sent kept
    assert run_of(response["Location"]) != "not-a-run"
    assert not Booking.objects.exists()


def test_two_runs_in_two_tabs_do_not_mix(client, session_type, slot, other_slot):
    first = walk_to_review(client, session_type=session_type, slot=slot)
    second = walk_to_review(
        client, session_type=session_type, slot=other_slot, about={**ABOUT, "email": "b@example.com"}
    )
    submit(client, first)
    submit(client, second)
    assert set(Booking.objects.values_list("email", "preferred_slot")) == {
        ("priya@example.com", slot.pk),
        ("b@example.com", other_slot.pk),
    }


# --- Preselection from a link (the chatbot's) --------------------------------------------


def test_slot_in_the_querystring_is_preselected(client, session_type, slot, other_slot):
    run = start(client, f"?slot={other_slot.pk}")
    html = client.get(url(run, "session")).content.decode()
    assert re.search(rf'value="{other_slot.pk}" id="slot-{other_slot.pk}"[^>]*checked', html)
    assert re.search(rf'<option value="{other_slot.counsellor_id}" selected>', html)
    # The only session type is chosen too, so Continue needs nothing else.
    assert (
        client.post(
            url(run, "session"),
            session_data(session_type=session_type, slot=other_slot, counsellor=other_slot.counsellor_id),
        ).status_code
        == 303
    )


def test_a_stale_preselected_slot_says_so(client, session_type, slot, make_booking):
    make_booking(Status.APPROVED, slot=slot)
    run = start(client, f"?slot={slot.pk}")
    html = client.get(url(run, "session")).content.decode()
    assert "The time you chose is no longer available" in html


def test_choices_that_rule_out_the_preselected_time_say_so(client, session_type, slot):
    """After "Book the next free time" on a counsellor's profile, a session that does not fit it."""
    couples = SessionType.objects.create(name="Couples session", slug="couples", duration_minutes=80, price=250000)
    run = start(client, f"?slot={slot.pk}")
    data = {**session_data(session_type=couples, slot=slot, counsellor=slot.counsellor_id), "_refresh": "1"}
    for headers in ({}, HX):
        # Without JavaScript the notice is carried to the page the redirect leads to.
        html = client.post(url(run, "session"), data, headers=headers, follow=True).content.decode()
        assert not re.search(rf'id="slot-{slot.pk}"[^>]*checked', html)
        local = timezone.localtime(slot.start)
        # It takes focus (wizard.js after a swap; autofocus on a page), so it is read out.
        autofocus = "" if headers else " autofocus"
        note = re.search(rf'<p class="notice" tabindex="-1" data-notice{autofocus}>(.*?)</p>', html).group(1)
        assert note.startswith("The time you had chosen, ") and f"{local:%H:%M}\N{NO-BREAK SPACE}IST" in note
        assert "is not free for these choices. Please choose another time." in note
        data["slot"] = str(slot.pk)
    # Said once: the step shown again has no note, and no time chosen.
    assert 'class="notice"' not in client.get(url(run, "session")).content.decode()
    # Choices that keep the time fit say nothing.
    html = client.post(
        url(run, "session"), {**data, "session_type": session_type.pk, "slot": slot.pk}, follow=True
    ).content.decode()
    assert 'class="notice"' not in html and re.search(rf'id="slot-{slot.pk}"[^>]*checked', html)


def _mode_checked(html: str) -> list[str]:
    return re.findall(r'<input type="radio" name="mode" value="(\w+)"[^>]*checked', html)


def test_the_way_of_meeting_in_the_querystring_is_preselected_when_it_can_be_had(client, session_type, slot):
    """A waitlist offer's link carries the way of meeting the client waited for."""
    run = start(client, f"?slot={slot.pk}&type=individual&mode=in_person")
    assert _mode_checked(client.get(url(run, "session")).content.decode()) == ["in_person"]
    for mode in ("nope", "<script>", ""):
        run = start(client, f"?slot={slot.pk}&type=individual&mode={mode}")
        assert _mode_checked(client.get(url(run, "session")).content.decode()) == []


def test_a_way_of_meeting_the_slot_or_the_session_cannot_have_is_ignored(client, session_type, slot):
    type(slot.counsellor).objects.filter(pk=slot.counsellor_id).update(offers_in_person=False)
    run = start(client, f"?slot={slot.pk}&type=individual&mode=in_person")
    assert _mode_checked(client.get(url(run, "session")).content.decode()) == []
    session_type.offers_online = False
    session_type.save()
    run = start(client, "?type=individual&mode=online")  # held in person only: that is chosen
    assert _mode_checked(client.get(url(run, "session")).content.decode()) == ["in_person"]


def test_garbage_in_the_querystring_is_ignored(client, session_type, slot):
    run = start(client, "?slot=<script>&type=nope")
    assert client.get(url(run, "session")).status_code == 200


# --- Day-by-day picker --------------------------------------------------------------------


def test_the_session_step_headings_skip_no_level(client, session_type, slot):
    html = client.get(url(start(client), "session")).content.decode()
    assert 'id="day-heading"' in html and skipped_heading_levels(html) == []


def test_other_days_are_reached_without_losing_the_chosen_time(client, session_type, slot, counsellor):
    later_start = next_weekday_at(10, days_ahead=5)
    later = Slot.objects.create(counsellor=counsellor, start=later_start, end=later_start + timedelta(hours=1))
    run = start(client)
    data = session_data(session_type=session_type, slot=slot)
    response = client.post(url(run, "session"), {**data, "day": later_start.date().isoformat()}, follow=True)
    html = response.content.decode()
    assert response.redirect_chain == [(url(run, "session") + "#slot-picker", 303)]
    assert response.status_code == 200 and errors_in(response) == []
    assert f'id="slot-{later.pk}"' in html
    assert "Your chosen time" in html  # the time picked on the other day stays chosen
    # Continue from the other day's page without touching the radios: the first pick stands.
    response = client.post(url(run, "session"), {k: v for k, v in data.items() if k != "slot"})
    assert response.status_code == 303
    run_state = client.session["booking_wizard"][run]
    assert run_state["data"]["session"]["slot"] == str(slot.pk)


def test_choosing_a_counsellor_narrows_the_times(client, session_type, slot, other_slot, counsellor):
    run = start(client)
    response = client.post(
        url(run, "session"),
        {**session_data(session_type=session_type), "counsellor": counsellor.pk, "_refresh": "1"},
        follow=True,
    )
    # "Show free times for these choices" without JavaScript: saved, then a redirect to the step.
    assert response.redirect_chain == [(url(run, "session"), 303)]
    html = response.content.decode()
    assert f'id="slot-{slot.pk}"' in html and f'id="slot-{other_slot.pk}"' not in html
    assert f'<option value="{counsellor.pk}" selected>' in html
    # Shown again (the step's GET reads only the counsellors' names): the same choice and times.
    again = client.get(url(run, "session")).content.decode()
    assert f'<option value="{counsellor.pk}" selected>' in again
    assert f'id="slot-{slot.pk}"' in again and f'id="slot-{other_slot.pk}"' not in again


def test_a_day_button_reached_from_the_review_still_returns_to_it(client, session_type, slot, counsellor):
    later_start = next_weekday_at(10, days_ahead=5)
    later = Slot.objects.create(counsellor=counsellor, start=later_start, end=later_start + timedelta(hours=1))
    run = walk_to_review(client, session_type=session_type, slot=slot)
    change = url(run, "session", **{"return": "review"})
    response = client.post(
        change, {**session_data(session_type=session_type, slot=slot), "day": str(later_start.date())}
    )
    assert response.status_code == 303 and response["Location"] == change + "#slot-picker"
    response = client.post(change, session_data(session_type=session_type, slot=later))
    assert response.status_code == 303 and step_of(response["Location"]) == "review"


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "0001-01-01T00:00:00", "x" * 50])
def test_a_day_outside_the_window_shows_the_nearest_days_never_an_error(client, session_type, slot, day):
    run = start(client)
    for headers in ({}, HX):
        response = client.post(
            url(run, "session"), {**session_data(session_type=session_type), "day": day}, headers=headers, follow=True
        )
        assert response.status_code == 200 and f'id="slot-{slot.pk}"' in response.content.decode()
    assert client.get(url(run, "session")).status_code == 200  # the stored day too


# --- htmx ---------------------------------------------------------------------------------


def test_a_day_button_with_htmx_gets_the_picker_alone(client, session_type, slot, counsellor):
    later_start = next_weekday_at(10, days_ahead=5)
    later = Slot.objects.create(counsellor=counsellor, start=later_start, end=later_start + timedelta(hours=1))
    run = start(client)
    data = session_data(session_type=session_type, slot=slot, preferred_times="Evenings")
    response = client.post(url(run, "session"), {**data, "day": later_start.date().isoformat()}, headers=HX)
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Retarget"] == "#slot-picker"
    assert html.lstrip().startswith('<fieldset id="slot-picker"') and html.rstrip().endswith("</fieldset>")
    assert "<html" not in html and 'id="wizard-step"' not in html and 'name="session_type"' not in html
    assert f'id="slot-{later.pk}"' in html and "Your chosen time" in html
    assert "Evenings</textarea>" in html  # the fieldset's own fields come back as they were
    # The choices are kept, as without JavaScript: a reload shows that day.
    assert client.session["booking_wizard"][run]["data"]["session"]["day"] == later_start.date().isoformat()
    assert f'id="slot-{later.pk}"' in client.get(url(run, "session")).content.decode()


def test_other_refreshes_with_htmx_get_the_whole_step(client, session_type, online_only, slot):
    run = start(client)  # two kinds of session: none chosen yet
    day = {"day": timezone.localdate(slot.start).isoformat()}
    for data in (
        {**session_data(session_type=online_only), **day},  # a day, but another kind of session
        {**session_data(session_type=online_only), "_refresh": "1"},  # the choices above the picker
    ):
        response = client.post(url(run, "session"), data, headers=HX)
        html = response.content.decode()
        assert "HX-Retarget" not in response and 'id="wizard-step"' in html and 'name="session_type"' in html
    # Without JavaScript a day button gets the whole page, after a redirect.
    response = client.post(url(run, "session"), {**session_data(session_type=online_only), **day}, follow=True)
    assert response.redirect_chain == [(url(run, "session") + "#slot-picker", 303)]
    assert "HX-Retarget" not in response and "<html" in response.content.decode()


def test_htmx_step_post_returns_the_next_step_fragment_and_pushes_its_url(client, session_type, slot):
    run = start(client)
    response = client.post(url(run, "session"), session_data(session_type=session_type, slot=slot), headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="wizard-step"' in html and 'data-step="about"' in html
    assert "<html" not in html
    assert "<title>About you" in html
    assert response["HX-Push-Url"] == url(run, "about")


def test_htmx_errors_come_back_in_the_fragment(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    response = client.post(url(run, "about"), {**ABOUT, "email": "nope"}, headers=HX)
    html = response.content.decode()
    assert 'id="wizard-step"' in html and "<html" not in html and "data-error-summary" in html


def test_htmx_history_restore_gets_the_whole_page(client, session_type, slot):
    run = start(client)
    response = client.get(url(run, "session"), headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.content.decode()


def test_inline_validation_of_one_field_on_blur(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    response = client.post(url(run, "about"), {**ABOUT, "email": "nope", "_validate": "email"}, headers=HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="field-email"') and "<html" not in html
    assert "Enter an email address in the right format" in html
    assert "Enter your name" not in html
    # A field passed through empty is not scolded yet.
    empty = client.post(url(run, "about"), {**ABOUT, "phone": "", "_validate": "phone"}, headers=HX)
    assert "field-error" not in empty.content.decode()
    good = client.post(url(run, "about"), {**ABOUT, "_validate": "phone"}, headers=HX)
    assert "field-error" not in good.content.decode()
    # What was typed is kept, even before Continue.
    assert client.session["booking_wizard"][run]["data"]["about"]["email"] == "nope"


def test_inline_validation_rejects_unknown_fields(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    assert client.post(url(run, "about"), {"_validate": "age"}, headers=HX).status_code == 400


def test_inputs_carry_htmx_blur_validation_and_forms_real_actions(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    html = client.get(url(run, "about")).content.decode()
    email = re.search(r'<input[^>]*id="id_email"[^>]*>', html).group(0)
    assert 'hx-trigger="blur changed"' in email and 'hx-target="#field-email"' in email
    form = re.search(r"<form[^>]*>", html).group(0)
    assert 'action="/book/?run=' in form and 'method="post"' in form and "hx-post=" in form


def test_pages_load_the_focus_script_with_the_csp_nonce_and_no_inline_script(client, session_type, slot):
    run = start(client)
    html = client.get(url(run, "session")).content.decode()
    scripts = re.findall(r"<script[^>]*>", html)
    assert any("js/wizard.js" in s and "nonce=" in s for s in scripts)
    assert all("src=" in s for s in scripts), scripts
    assert " style=" not in html and " onclick=" not in html


# --- Rate limits and resending ------------------------------------------------------------


def test_submissions_are_rate_limited_per_email(client, session_type, slot, other_slot, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "wizard_submit_email": (1, 3600)}
    submit(client, walk_to_review(client, session_type=session_type, slot=slot))
    run = walk_to_review(client, session_type=session_type, slot=other_slot)
    response = submit(client, run)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600
    assert "Please try again in" in response.content.decode()
    assert Booking.objects.count() == 1


def test_submissions_are_rate_limited_per_ip(client, session_type, slot, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "wizard_submit_ip": (0, 60)}
    run = walk_to_review(client, session_type=session_type, slot=slot)
    response = client.post(url(run, "review"), consent(client, run), headers=HX)
    assert response.status_code == 429 and "Retry-After" in response
    assert 'id="wizard-step"' in response.content.decode()


def test_the_done_page_resends_the_email_with_a_limit(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    old = LinkToken.objects.get(purpose=LinkToken.Purpose.VERIFY)
    response = client.post(url(run, "done"), {"_resend": "1"})
    # Without JavaScript: post/redirect/get, so a reload shows the page and sends nothing.
    assert response.status_code == 303 and response["Location"] == url(run, "done")
    assert "We have sent the email again" in client.get(response["Location"]).content.decode()
    assert "We have sent the email again" not in client.get(url(run, "done")).content.decode()  # said once
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert len(mail.outbox) == 2
    for _ in range(2):
        assert client.post(url(run, "done"), {"_resend": "1"}).status_code == 303
    limited = client.post(url(run, "done"), {"_resend": "1"})
    assert limited.status_code == 429 and limited["Retry-After"]
    assert "We have sent this email several times already" in limited.content.decode()
    assert len(mail.outbox) == 4


def test_the_done_page_resends_in_place_with_htmx(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    response = client.post(url(run, "done"), {"_resend": "1"}, headers=HX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="wizard-step"' in html and "<html" not in html
    assert "We have sent the email again" in html
    assert len(mail.outbox) == 2


def test_after_every_resend_is_spent_a_mistyped_address_can_still_be_corrected(client, session_type, slot):
    """The client who presses "Send the email again" most is the one who mistyped the address."""
    run = walk_to_review(client, session_type=session_type, slot=slot, about={**ABOUT, "email": "priya@exmaple.com"})
    submit(client, run)
    for _ in range(3):
        client.post(url(run, "done"), {"_resend": "1"})
    assert client.post(url(run, "done"), {"_resend": "1"}).status_code == 429
    sent = len(mail.outbox)

    response = client.post(url(run, "done"), {"_email": "1", "email": "priya@example.com"})
    assert response.status_code == 303 and response["Location"] == url(run, "done")
    page = client.get(response["Location"]).content.decode()
    assert "priya@example.com" in page and "We have sent the email again" in page
    assert Booking.objects.get().email == "priya@example.com"
    assert len(mail.outbox) == sent + 1 and mail.outbox[-1].to == ["priya@example.com"]
    # The corrected address has its own allowance of resends, and its own limit.
    for _ in range(3):
        assert client.post(url(run, "done"), {"_resend": "1"}).status_code == 303
    assert client.post(url(run, "done"), {"_resend": "1"}).status_code == 429
    assert [m.to for m in mail.outbox[sent:]] == [["priya@example.com"]] * 4


def test_correcting_to_the_same_address_is_a_resend_and_limited_as_one(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    for _ in range(3):
        client.post(url(run, "done"), {"_resend": "1"})
    refused = client.post(url(run, "done"), {"_email": "1", "email": "PRIYA@example.com"})
    assert refused.status_code == 429 and len(mail.outbox) == 4
    assert "We have sent this email several times already" in refused.content.decode()


def test_a_mistyped_address_is_corrected_on_the_done_page_and_the_request_kept(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    booking = Booking.objects.get()
    old = LinkToken.objects.get(purpose=LinkToken.Purpose.VERIFY)
    shown = client.get(url(run, "done")).content.decode()
    assert "Wrong email address?" in shown and 'name="_email"' in shown

    # A wrong address is answered next to the field; nothing is sent.
    wrong = client.post(url(run, "done"), {"_email": "1", "email": "priya@example"}, headers=HX)
    html = wrong.content.decode()
    assert wrong.status_code == 200 and "in the right format" in html and "<details" in html and " open>" in html
    assert len(mail.outbox) == 1

    fixed = client.post(url(run, "done"), {"_email": "1", "email": " Priya.Sharma@Example.com "}, headers=HX)
    html = fixed.content.decode()
    assert "We have sent an email to" in html and "priya.sharma@example.com" in html
    booking.refresh_from_db()
    assert booking.email == "priya.sharma@example.com" and booking.status == Status.DRAFT
    assert booking.concerns == Booking.objects.get().concerns  # the request itself is untouched
    assert mail.outbox[-1].to == ["priya.sharma@example.com"]
    old.refresh_from_db()
    assert old.revoked_at is not None  # the link sent to the wrong address no longer works

    # The new link confirms the request, as the first would have.
    link = re.search(r"http://testserver(/verify/[^\s]+/)", mail.outbox[-1].body).group(1)
    client.post(link)
    booking.refresh_from_db()
    assert booking.status == Status.PENDING


@pytest.mark.parametrize("scope", ["wizard_submit_ip", "wizard_submit_email"])
def test_a_corrected_address_is_limited_as_a_new_request_would_be(client, session_type, slot, settings, scope):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, scope: (0, 3600)}
    limited = client.post(url(run, "done"), {"_email": "1", "email": "someone.else@example.com"})
    assert limited.status_code == 429 and limited["Retry-After"]
    assert len(mail.outbox) == 1 and Booking.objects.get().email != "someone.else@example.com"
    # The limit on resends is not spent by a refused correction.
    assert client.post(url(run, "done"), {"_resend": "1"}).status_code == 303


@pytest.mark.parametrize("headers", [{}, HX], ids=["no-js", "htmx"])
def test_a_refused_correction_is_shown_next_to_the_address_in_the_open_panel(
    client, session_type, slot, settings, headers
):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "wizard_submit_email": (0, 3600)}
    refused = client.post(url(run, "done"), {"_email": "1", "email": "someone.else@example.com"}, headers=headers)
    html = refused.content.decode()
    assert refused.status_code == 429
    panel = re.search(r'<details class="card" id="correct-email"([^>]*)>(.*?)</details>', html, re.S)
    assert panel.group(1) == " open", "the panel stays open"
    error = re.search(r'<p id="id_email_error" class="field-error">(.*?)</p>', panel.group(2), re.S)
    assert "We have sent several emails in a short time. Please try again in" in error.group(1)
    assert 'value="someone.else@example.com"' in panel.group(2)  # what was typed is kept
    assert re.search(r'<a href="#id_email"[^>]*>We have sent several emails', html)  # the summary links to it
    assert len(mail.outbox) == 1


# --- Query budget -------------------------------------------------------------------------


def test_slot_step_renders_a_busy_day_in_a_constant_number_of_queries(
    client, session_type, make_booking, django_assert_max_num_queries
):
    day_start = next_weekday_at(8)
    for n in range(50):
        person = Counsellor.objects.create(display_name=f"Counsellor {n:02d}", slug=f"c{n}")
        for hour in range(8):
            begins = day_start + timedelta(hours=hour)
            held = Slot.objects.create(counsellor=person, start=begins, end=begins + timedelta(minutes=55))
            if (n + hour) % 3 == 0:
                make_booking(Status.APPROVED, slot=held)
    run = start(client)
    busy_day = timezone.localdate(day_start).isoformat()
    client.post(url(run, "session"), {**session_data(session_type=session_type), "day": busy_day, "_refresh": "1"})
    # The session, the session types, the counsellors, and the days with their free times.
    with django_assert_max_num_queries(4):
        response = client.get(url(run, "session"))
    html = response.content.decode()
    assert html.count('name="slot"') == 8 + 1  # one per time (any counsellor), plus "none"
    assert "34 counsellors free" in html or "33 counsellors free" in html
    assert f'name="day" value="{busy_day}" id="day-{busy_day}" aria-pressed="true"' in html

    # No day chosen yet, and none free on the first day that can be booked: one more query
    # reads the first free day's times.
    other = start(client)
    client.post(url(other, "session"), {**session_data(session_type=session_type), "_refresh": "1"})
    with django_assert_max_num_queries(5):
        response = client.get(url(other, "session"))
    assert response.content.decode().count('name="slot"') == 8 + 1


def test_back_keeps_what_was_typed_on_the_step_even_unfinished(client, session_type, slot):
    run = start(client)
    assert client.post(url(run, "session"), session_data(session_type=session_type, slot=slot)).status_code == 303
    back = client.post(url(run, "about"), {"client_name": "Priya", "email": "not yet an address", "_back": "1"})
    assert back.status_code == 303 and back["Location"] == url(run, "session")
    about = client.get(url(run, "about")).content.decode()
    assert 'value="Priya"' in about and 'value="not yet an address"' in about
    assert "There is a problem" not in about  # errors wait for "Continue"
    # From the next step too, and Continue still checks.
    assert client.post(url(run, "about"), ABOUT).status_code == 303
    assert client.post(url(run, "concerns"), {"concerns": "Hard to sleep", "_back": "1"})["Location"] == url(
        run, "about"
    )
    assert "Hard to sleep" in client.get(url(run, "concerns")).content.decode()


def test_the_review_shows_the_phone_number_as_people_read_it(client, session_type, slot):
    run = walk_to_review(client, session_type=session_type, slot=slot)
    review = client.get(url(run, "review")).content.decode()
    assert "+91 98765 43210" in review and "+919876543210" not in review


def test_with_nothing_to_book_the_wizard_gives_the_clinics_phone_and_email(client):
    """A new clinic, before its first session type: "Please contact the clinic" says how."""
    run = start(client)
    html = client.get(url(run, "session")).content.decode()
    assert "No sessions can be booked online at the moment. Please contact the clinic." in html
    assert "tel:" not in html and "mailto:" not in html  # none given yet
    assert not Clinic.objects.exists(), "showing the step saves nothing"
    Clinic.objects.update_or_create(pk=1, defaults={"phone": "+91 484 000 0000", "email": "care@clinic.example"})
    html = client.get(url(run, "session")).content.decode()
    assert '<a href="tel:+91 484 000 0000">+91 484 000 0000</a>' in html
    assert '<a href="mailto:care@clinic.example">care@clinic.example</a>' in html


def test_a_clinic_with_session_types_is_not_read_by_the_wizard(client, session_type, slot):
    Clinic.objects.update_or_create(pk=1, defaults={"phone": "+91 484 000 0000"})
    run = start(client)
    with CaptureQueriesContext(connection) as queries:
        html = client.get(url(run, "session")).content.decode()
    assert "tel:" not in html
    assert not [q for q in queries.captured_queries if "bookings_clinic" in q["sql"]]


def test_a_step_with_errors_starts_at_its_summary_without_javascript(client, session_type, slot):
    """autofocus on the summary: with JavaScript off, focus starts there (GOV.UK), as
    wizard.js puts it after a swap; a step shown without errors focuses nothing."""
    run = start(client)
    assert "autofocus" not in client.get(url(run, "session")).content.decode()
    for headers in ({}, HX):
        response = client.post(url(run, "session"), {"session_type": "", "mode": "", "slot": ""}, headers=headers)
        html = response.content.decode()
        assert "There is a problem" in html and html.count("autofocus") == 1
        assert re.search(r'<div class="error-summary"[^>]*data-error-summary autofocus>', html)


def test_the_done_page_says_how_long_the_link_works_from_the_setting(client, session_type, slot, settings):
    settings.VERIFICATION_LINK_HOURS = 1
    run = walk_to_review(client, session_type=session_type, slot=slot)
    submit(client, run)
    html = client.get(url(run, "done")).content.decode()
    assert "The link works for 1 hour." in html and "24 hours" not in html
    assert "The link works once and for 1 hour." in mail.outbox[-1].body


def test_a_step_sent_after_the_session_ended_keeps_what_was_typed_and_says_why_the_rest_is_gone(
    client, session_type, slot, settings
):
    """The page left open overnight: the session (12 hours) has ended when "About you" is sent.
    It was a silent fresh start that dropped what was just typed."""
    run = start(client)
    assert client.post(url(run, "session"), session_data(session_type=session_type, slot=slot)).status_code == 303
    client.cookies.pop(settings.SESSION_COOKIE_NAME)  # the session has ended

    about = {"client_name": "Meera Nair", "email": "meera@example.com", "phone": "", "age": "on"}
    response = client.post(url(run, "about"), about)
    assert response.status_code == 303
    fresh = run_of(response["Location"])
    assert fresh != run and step_of(response["Location"]) == "session"
    page = client.get(response["Location"]).content.decode()
    assert "This page was open a long time, so your earlier answers were cleared." in page
    assert "What you had just entered is kept" not in client.get(response["Location"]).content.decode()  # said once
    assert client.post(url(fresh, "session"), session_data(session_type=session_type, slot=slot)).status_code == 303
    assert 'value="Meera Nair"' in client.get(url(fresh, "about")).content.decode()
