"""Bad input: property-based tests (Hypothesis) over the forms and service entry points, and
stored HTML/script rendered harmless in every output. Example counts are modest: the suite
runs twice in CI (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bookings import services
from bookings.forms import AboutStepForm, AckLookupForm, ConcernsStepForm, ConsentForm, EmailLookupForm
from bookings.models import Booking, BookingEvent, OutboundEmail
from bookings.tests.journey import link_in_last_email, submit, walk_to_review
from staff.forms import RejectForm

pytestmark = pytest.mark.django_db

EXAMPLES = hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
nasty_text = st.one_of(
    st.text(),  # any Unicode, including NUL, surrogates excluded by Python's str
    st.text(alphabet=st.sampled_from("\x00\u202e\u200b\ufeff\U0001f600<>&\"'%\\\r\n\t"), max_size=50),
    st.builds(lambda c, n: c * n, st.sampled_from("a\x00é<"), st.integers(1000, 200_000)),  # huge
    st.sampled_from(["", " ", "MS-", "ms-abc234", "+91 98765 43210", "a@b.c", "<script>alert(1)</script>"]),
)
wrong_types = st.one_of(st.integers(), st.none(), st.booleans(), st.lists(st.text(max_size=5), max_size=3))
value = st.one_of(nasty_text, wrong_types)


def form_data(fields: list[str]):
    return st.fixed_dictionaries({}, optional=dict.fromkeys(fields, value))


@EXAMPLES
@given(data=form_data(["client_name", "email", "phone", "age"]))
def test_about_step_form_validates_anything(data):
    form = AboutStepForm(data)
    if form.is_valid():
        assert "\x00" not in form.cleaned_data["client_name"] + form.cleaned_data["email"]
        assert form.cleaned_data["phone"] == "" or form.cleaned_data["phone"].startswith("+")
    else:
        assert all(message for _, message in form.error_summary())


@EXAMPLES
@given(
    concerns=form_data(["concerns"]),
    consent=form_data(["agree_privacy", "agree_cancellation"]),
    ack=form_data(["ack_id"]),
    address=form_data(["email"]),
    reject=form_data(["version", "preset", "reason"]),
)
def test_other_forms_validate_anything(concerns, consent, ack, address, reject):
    for form in (
        ConcernsStepForm(concerns),
        ConsentForm(consent),
        AckLookupForm(ack),
        EmailLookupForm(address),
        RejectForm(reject, prefix=""),  # the staff page's prefix aside
    ):
        if not form.is_valid():
            assert form.errors
    ack_form = AckLookupForm(ack)
    if ack_form.is_valid():
        assert re.fullmatch(r"MS-[A-Z0-9]{6}", ack_form.cleaned_data["ack_id"])


@EXAMPLES
@given(raw=nasty_text)
def test_normalisers_answer_or_refuse_clearly(raw):
    normalised = services.ack_id_normalise(raw)
    assert normalised is None or re.fullmatch(r"MS-[A-Z0-9]{6}", normalised)
    try:
        phone = services.phone_normalise(raw[:1000])
    except ValueError as exc:
        assert "phone number" in str(exc)
    else:
        assert phone == "" or re.fullmatch(r"\+\d{6,15}", phone)
    assert services.email_normalise(raw) == raw.strip().lower()


@EXAMPLES
@given(lookup=st.sampled_from(["ack", "email", "other", ""]), text=nasty_text)
def test_status_lookup_never_fails_and_stores_nothing(client, settings, lookup, text):
    settings.RATELIMIT_ENABLED = False
    field = "ack_id" if lookup == "ack" else "email"
    response = client.post("/status/", {"lookup": lookup, field: text.replace("\x00", "\ufffd")[:100_000]})
    assert response.status_code == 200
    raw_nul = client.post("/status/", {"lookup": lookup, field: text + "\x00"})
    assert raw_nul.status_code in (200, 400)
    assert not Booking.objects.exists() and not OutboundEmail.objects.exists()


@EXAMPLES
@given(name=nasty_text, phone=nasty_text, concerns=nasty_text, times=nasty_text)
def test_the_wizard_refuses_bad_answers_without_a_server_error_or_a_half_made_booking(
    session_type, slot, name, phone, concerns, times
):
    browser = Client()
    start = browser.get("/book/")
    url = start["Location"]
    steps = (
        ("session", {"session_type": session_type.pk, "mode": "online", "slot": slot.pk, "preferred_times": times}),
        ("about", {"client_name": name, "email": "x@example.com", "phone": phone, "age": "on"}),
        ("concerns", {"concerns": concerns}),
    )
    for step, data in steps:
        response = browser.post(url.replace("step=session", f"step={step}"), data)
        # 302: an earlier step was refused, so the wizard sends the client back to it.
        assert response.status_code in (200, 302, 303, 400), (step, response.status_code)
    assert not Booking.objects.exists()  # nothing is stored before the final, consented send


@EXAMPLES
@given(token=nasty_text)
def test_emailed_link_paths_with_any_token_answer_calmly(client, token):
    token = quote(token[:5000], safe="") or "x"
    for path in (f"/verify/{token}/", f"/bookings/{token}/", f"/cancel/{token}/", f"/privacy/export/{token}/"):
        try:
            response = client.get(path)
        except ValueError:  # the test client itself refuses some URLs; a browser would too
            continue
        assert response.status_code in (404, 410), (path, response.status_code)


# --- Stored script, rendered harmless everywhere ------------------------------------------

SCRIPT = "<script>alert(1)</script>"


def test_script_in_every_client_field_is_escaped_in_every_output(
    client, session_type, slot, admin_user, api_token, settings
):
    settings.RATELIMIT_ENABLED = False
    about = {"client_name": SCRIPT, "email": "xss@example.com", "phone": "98765 43210", "age": "on"}
    run = walk_to_review(
        client, session_type=session_type, slot=slot, about=about, concerns=SCRIPT, preferred_times=SCRIPT
    )
    review = client.get(f"/book/?run={run}&step=review")
    assert SCRIPT not in review.content.decode() and "&lt;script&gt;" in review.content.decode()
    assert submit(client, run).status_code == 303
    verify = link_in_last_email("/verify/")
    assert client.post(verify).status_code == 200
    booking = Booking.objects.get()
    assert booking.client_name == SCRIPT and booking.concerns == SCRIPT  # stored as typed

    from staff.tests.conftest import sign_in_with_second_factor

    staff = Client()
    sign_in_with_second_factor(staff, admin_user)
    approve = staff.post(
        f"/staff/bookings/{booking.pk}/approve/", {"approve-slot": slot.pk, "approve-version": booking.version}
    )
    assert approve.status_code == 302
    BookingEvent.objects.create(booking=booking, action="note", actor="staff", reason=SCRIPT)

    page = link_in_last_email("/bookings/")
    day = timezone.localdate(slot.start)
    html_outputs = {
        "booking page": client.get(page),
        "staff detail": staff.get(f"/staff/bookings/{booking.pk}/"),
        "staff list": staff.get("/staff/bookings/"),
        "staff dashboard": staff.get("/staff/"),
    }
    for where, response in html_outputs.items():
        assert response.status_code == 200, where
        assert SCRIPT not in response.content.decode(), where
    for message in mail.outbox:
        # The plain-text part is text/plain (never rendered as HTML); the HTML part escapes.
        for content, _mimetype in message.alternatives:
            assert SCRIPT not in content, message.subject
    for email in OutboundEmail.objects.all():
        assert SCRIPT not in email.body_html

    feed = staff.get(
        "/staff/calendar/feed/",
        {"start": (day - timedelta(days=1)).isoformat(), "end": (day + timedelta(days=2)).isoformat()},
    )
    assert feed.status_code == 200 and feed["Content-Type"].startswith("application/json")
    assert "<script" not in feed.content.decode()  # neither raw nor as a JSON string
    json.loads(feed.content)

    export = staff.get("/staff/bookings/export.csv")
    assert export.status_code == 200 and "attachment" in export["Content-Disposition"]
    text = b"".join(export.streaming_content).decode() if export.streaming else export.content.decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert any(booking.ack_id in row for row in rows)
    assert all(not cell.startswith(("=", "+", "-", "@")) or cell[1:2] == "" for row in rows[1:] for cell in row)
    assert export["Content-Type"].startswith("text/csv")  # data for a spreadsheet, never HTML

    api = client.get(f"/api/v1/bookings/{booking.ack_id}", HTTP_AUTHORIZATION=f"Bearer {api_token}")
    assert api.status_code == 200 and "<script" not in api.content.decode()


@pytest.mark.parametrize("raw", ["\x00", "asha\x00", "a" * 51, "आशा", "asha mehta"])
def test_a_link_to_book_with_a_counsellor_who_is_no_slug_chooses_no_one(client, session_type, counsellor, raw):
    """`/book/?counsellor=<slug>` from a profile: anything else (PostgreSQL refuses a NUL in
    text outright) opens the wizard with no counsellor chosen."""
    response = client.get(f"/book/?counsellor={quote(raw)}", follow=True)
    assert response.status_code == 200
    assert 'value="" selected>No preference</option>' in response.content.decode()
    chosen = client.get(f"/book/?counsellor={counsellor.slug}", follow=True).content.decode()
    assert f'value="{counsellor.pk}" selected' in chosen


@pytest.mark.parametrize("raw", ["²", "١٢", "9" * 30])
def test_ids_that_are_not_plain_digits_are_no_slot(client, session_type, slot, raw):
    """str.isdigit() takes "²" (int() does not) and "١٢" (Arabic-Indic 12); neither, nor a
    number past a bigint, is a slot's id: no server error, no slot chosen."""
    assert client.get(f"/book/?slot={quote(raw)}", follow=True).status_code == 200
    url = client.get("/book/")["Location"]
    answer = {"session_type": session_type.pk, "mode": "online", "slot": raw}
    assert client.post(url, {**answer, "_refresh": "1"}, follow=True).status_code == 200
    response = client.post(url, answer)
    assert response.status_code == 200 and "no longer available" in response.content.decode()
