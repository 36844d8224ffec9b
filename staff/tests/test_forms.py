"""The staff forms' error messages say what to enter, and how (GOV.UK), never Django's
generic "This field is required." or "Enter a whole number."."""

from __future__ import annotations

import html
import inspect

import pytest
from django import forms
from django.urls import reverse

import staff.forms
from staff.forms import CancelForm

pytestmark = pytest.mark.django_db

GENERIC = {
    "This field is required.",
    "Enter a valid date.",
    "Enter a valid time.",
    "Enter a valid date/time.",
    "Enter a whole number.",
    "Enter a number.",
    "Enter a valid email address.",
    "Enter a valid URL.",
    "Select a valid choice. %(value)s is not one of the available choices.",
    "Select a valid choice. That choice is not one of the available choices.",
}
# Given in the form's __init__ (allauth's fields, or a field a parent declares).
SET_WHEN_MADE = (
    {("CancelForm", "reason"), ("ActivateTOTPForm", "code")}
    | {("PasswordFromLinkForm", name) for name in ("password1", "password2")}
    | {("ChangePasswordForm", name) for name in ("oldpassword", "password1", "password2")}
)


def test_no_staff_form_field_has_a_generic_message():
    generic = []
    for name, form in inspect.getmembers(staff.forms, inspect.isclass):
        if not issubclass(form, forms.BaseForm) or form.__module__ != "staff.forms":
            continue
        for field_name, field in form.base_fields.items():
            for key, message in field.error_messages.items():
                if key == "required" and not field.required:
                    continue
                if str(message) in GENERIC and (name, field_name) not in SET_WHEN_MADE:
                    generic.append(f"{name}.{field_name} {key}")
    assert generic == []
    assert CancelForm().fields["reason"].error_messages["required"] == "Give a reason for cancelling this booking."


def _sent_empty(client, path: str, fields: list[str]) -> str:
    response = client.post(path, dict.fromkeys(fields, ""))
    assert response.status_code == 400, path
    page = html.unescape(response.content.decode())
    assert "This field is required." not in page and "There is a problem" in page
    return page


def test_the_new_booking_form_sent_empty_says_what_to_enter(admin_client, session_type):
    page = _sent_empty(
        admin_client,
        reverse("staff:booking_new"),
        ["client_name", "email", "phone", "session_type", "mode", "counsellor", "slot", "status", "consent_by"],
    )
    for message in (
        "Enter the client's name, as they would like to be called.",
        "Enter the client's email address, like name@example.com.",
        "Choose the session type.",
        "Choose online or in person.",
        "Choose approved, pending review, or paid at the clinic now.",  # administrators record money
        "Choose whether the client is on the phone or here.",
    ):
        assert message in page


@pytest.mark.parametrize(
    ("name", "fields", "messages"),
    [
        (
            "availability_hours_add",
            ["hours-weekday", "hours-start_time", "hours-end_time", "hours-session_minutes", "hours-buffer_minutes"],
            [
                "Choose the day of the week.",
                "Enter the time the hours start, a time like 09:30.",
                "Enter the time the hours end, a time like 09:30.",
                "Enter the session length in minutes, like 50.",
                "Enter the buffer between sessions in minutes, like 10.",
            ],
        ),
        ("availability_generate", ["generate-weeks"], ["Enter the number of weeks ahead to publish, like 4."]),
        (
            "availability_slot_add",
            ["slot-start", "slot-minutes"],
            [
                "Enter when the session starts: a date and a time, like 2026-12-01 09:30.",
                "Enter the length in minutes, like 60.",
            ],
        ),
        (
            "availability_blocked_add",
            ["blocked-start", "blocked-end", "blocked-reason"],
            [
                "Enter when the time off starts: a date and a time, like 2026-12-01 09:30.",
                "Enter when the time off ends: a date and a time, like 2026-12-01 09:30.",
            ],
        ),
    ],
)
def test_the_availability_forms_sent_empty_say_what_to_enter(counsellor_client, counsellor, name, fields, messages):
    page = _sent_empty(counsellor_client, reverse(f"staff:{name}", args=[counsellor.pk]), fields)
    for message in messages:
        assert message in page


def test_a_new_session_type_sent_empty_says_what_to_enter(admin_client):
    page = _sent_empty(
        admin_client,
        reverse("staff:session_type_new"),
        ["name", "slug", "description", "duration_minutes", "price_rupees", "sort_order", "offers_online"],
    )
    for message in (
        "Enter a name for the session type, like Individual session.",
        "Enter the length in minutes, like 50.",
        "Enter the price in rupees, like 1500.",
        "Enter its position in lists as a number, like 1: lower numbers come first.",
    ):
        assert message in page


def test_an_invitation_sent_empty_says_what_to_enter(admin_client):
    page = _sent_empty(admin_client, reverse("staff:team_invite"), ["email", "name", "role"])
    assert "Enter the email address of the person to invite, like name@example.com." in page
    assert "Choose counsellor or administrator." in page
