"""Forms of the staff portal. They parse and validate input; the rules live in bookings.services."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Self

from allauth.account.forms import ChangePasswordForm as AllauthChangePasswordForm
from allauth.account.forms import ResetPasswordKeyForm
from allauth.core import context as allauth_context
from allauth.mfa.totp import forms as totp_forms
from allauth.mfa.totp.internal import auth as totp_auth
from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import F, Max, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from bookings.clinic_time import SkippedTime, clinic_moment, zone_abbreviations
from bookings.errors import PolicyVersionChanged, SessionTypeChanged, SettingRefused
from bookings.models import (
    MEETING_URL_MAX_LENGTH,
    MODE_FLAGS,
    Booking,
    Clinic,
    ConsentGiven,
    Counsellor,
    Mode,
    Payment,
    SessionType,
    Slot,
    Status,
    meeting_url_https,
)
from bookings.services import (
    CLINIC_PAYMENT_METHODS,
    SESSION_TYPE_SHOWN,
    Settle,
    email_normalise,
    payment_captured_amount,
    payment_settle_choices,
    phone_normalise,
    session_type_shown,
    session_type_use,
    staff_booking_problems,
)
from bookings.templatetags.mindsettler import money, span
from mindsettler.forms import Pairs
from staff.middleware import second_factor_given, setup_allowed
from staff.models import CalendarSubscription, User

DATETIME_LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


class ClinicDateTimeField(forms.DateTimeField):
    """A date and time on the clinic's clocks (or with its own offset), read by clinic_moment:
    a time the clocks repeat is its first occurrence, and one they skip is refused saying when
    they jump. Django's field refused both alike, naming the zone's identifier."""

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = parse_datetime(str(value).strip())
            except ValueError:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
            if moment is None:  # one of input_formats, else refused as invalid
                moment = forms.fields.BaseTemporalField.to_python(self, value)
        if timezone.is_aware(moment):
            return moment
        try:
            return clinic_moment(moment)
        except SkippedTime as exc:
            raise forms.ValidationError(exc.message, code="skipped_time") from None


class _ReadOnceChoiceIterator(forms.models.ModelChoiceIterator):
    """Iterates the field's queryset itself rather than `.iterator()`, so the slots are read
    once per form however often the page counts or renders them (a query per use otherwise)."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class SlotChoiceField(forms.ModelChoiceField):
    iterator = _ReadOnceChoiceIterator
    # A slot offered when the page was shown may have been taken (or removed) since.
    default_error_messages = {"invalid_choice": "That slot is no longer free. Choose another time."}

    def label_from_instance(self, obj: Slot) -> str:
        # 'Mon 30 Nov, 10:00 to 11:00 IST' (an en dash for 'to'), as the availability page and the rest of the portal
        # write a slot; "10:00 IST (60 min)" left the end to be worked out.
        label = f"{span(obj.start, obj.end)} · {obj.counsellor.display_name}"
        if getattr(obj, "asked_for", False):  # staff.selectors.approve_slot_choices
            label += " · another request asked for it"
        return label


def clinic_time_hint() -> str:
    """The hint of a date-and-time input: which zone its wall-clock time is read in (the
    clinic's), as the booking form names it: 'In India Standard Time (IST).' For a zone with
    daylight saving, both abbreviations ('In London time (GMT/BST).'): the date typed may be on
    either side of a change of clocks, whatever today's is."""
    return f"In {settings.TIME_ZONE_NAME} ({zone_abbreviations()})."


def phone_input(value: str) -> str:
    """A typed phone number, normalised; else the error saying what is wrong with it."""
    try:
        return phone_normalise(value)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None


def rupees_to_paise(value: Decimal | None) -> int | None:
    return None if value is None else int((value * 100).to_integral_value())


# Errors say what to enter and how, next to the field and in the summary (GOV.UK), never
# Django's "This field is required." or "Enter a whole number."


def whole_number_messages(what: str, *, low: int, high: int, unit: str = "", example: int) -> dict[str, str]:
    """`what`: "the session length"; `unit`: "minutes" (or "" for a bare number)."""
    units = f" {unit}" if unit else ""
    as_ = f"a whole number of {unit}" if unit else "a whole number"
    return {
        "required": f"Enter {what}{f' in {unit}' if unit else ''}, like {example}.",
        "invalid": f"Enter {what} as {as_}, like {example}.",
        "min_value": f"Enter {what} from {low} to {high}{units}.",
        "max_value": f"Enter {what} from {low} to {high}{units}.",
    }


def moment_messages(what: str) -> dict[str, str]:
    """A date and a time (datetime-local): `what` is "when the session starts"."""
    return {
        "required": f"Enter {what}: a date and a time, like 2026-12-01 09:30.",
        "invalid": f"Enter {what} as a date and a time, like 2026-12-01 09:30.",
    }


def time_messages(what: str) -> dict[str, str]:
    return {
        "required": f"Enter {what}, a time like 09:30.",
        "invalid": f"Enter {what} as hours and minutes, like 09:30.",
    }


def rupees_messages(what: str) -> dict[str, str]:
    return {
        "required": f"Enter {what} in rupees, like 1500.",
        "invalid": f"Enter {what} as a number of rupees, like 1500 or 1500.50.",
        "min_value": f"Enter {what} of at least 1 rupee.",
        "max_digits": f"Enter {what} of less than 1,00,00,000 rupees.",
        "max_whole_digits": f"Enter {what} of less than 1,00,00,000 rupees.",
        "max_decimal_places": f"Enter {what} in rupees and paise, with at most 2 digits after the point.",
    }


EMAIL_INVALID = "Enter an email address in the correct format, like name@example.com."


# --- The booking list -------------------------------------------------------------------

# Bookings with no time yet come last either way, on every database (SQLite puts NULL first,
# PostgreSQL last); names alphabetically whatever their case.
# The list's status filter for reserved times not paid yet: approved, or a payment under way.
AWAITING_PAYMENT = "awaiting_payment"
# And for confirmed sessions that have ended and are not yet recorded as held or missed.
TO_RECORD = "to_record"

SORTS = {
    "newest": ("Newest request first", ["-created_at", "-id"]),
    "oldest": ("Oldest request first", ["created_at", "id"]),
    "session": ("Session time, soonest first", [F("session_at").asc(nulls_last=True), "-created_at"]),
    "session_desc": ("Session time, latest first", [F("session_at").desc(nulls_last=True), "-created_at"]),
    "client": ("Client name", [Lower("client_name"), "id"]),
}
PAGE_SIZES = (25, 50, 100)


# The days a filter may name. Far outside them a day's bounds in the clinic's zone fall outside
# what a datetime can hold (year 1, year 9999); no booking is there anyway.
_YEARS = [
    MinValueValidator(date(2000, 1, 1), "Enter a date in the year 2000 or later."),
    MaxValueValidator(date(2099, 12, 31), "Enter a date before the year 2100."),
]
# The same for a moment: far outside them, a wall-clock time read in the clinic's zone, or that
# time plus a session, falls outside what a datetime can hold (year 1, year 9999).
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_TIMES = [
    MinValueValidator(_EARLIEST, "Enter a time in the year 2000 or later."),
    MaxValueValidator(_LATEST, "Enter a time before the year 2100."),
]


class BookingFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=100, help_text="Acknowledgement ID, name or email.")
    status = forms.ChoiceField(
        label="Status",
        required=False,
        error_messages={"invalid_choice": "Choose a status from the list."},
        choices=Pairs(
            [
                ("", "All statuses"),
                ("active", "All active"),
                (AWAITING_PAYMENT, "Waiting for payment"),
                (TO_RECORD, "Ended, to record as held or missed"),
                *[c for c in Status.choices if c[0] != Status.DRAFT],
            ]
        ),
    )
    # Plain choices built from lists read once: validating them costs no extra query.
    counsellor = forms.TypedChoiceField(
        label="Counsellor",
        required=False,
        coerce=int,
        empty_value=None,
        error_messages={"invalid_choice": "Choose a counsellor from the list."},
    )
    session_type = forms.TypedChoiceField(
        label="Session type",
        required=False,
        coerce=int,
        empty_value=None,
        error_messages={"invalid_choice": "Choose a session type from the list."},
    )
    mode = forms.ChoiceField(
        label="Mode",
        required=False,
        choices=Pairs([("", "Online and in person"), *Mode.choices]),
        error_messages={"invalid_choice": "Choose online, in person, or both."},
    )
    date_from = forms.DateField(
        label="Session from",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=_YEARS,
        error_messages={"invalid": "Enter the first day as a real date, like 2026-12-01."},
    )
    date_to = forms.DateField(
        label="Session to",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=_YEARS,
        error_messages={"invalid": "Enter the last day as a real date, like 2026-12-01."},
    )
    sort = forms.ChoiceField(
        label="Sort by",
        required=False,
        choices=Pairs((k, v[0]) for k, v in SORTS.items()),
        error_messages={"invalid_choice": "Choose an order from the list."},
    )
    # Labels as text: a number label is localised (number_format) on every render.
    per_page = forms.TypedChoiceField(
        label="Per page",
        required=False,
        coerce=int,
        choices=Pairs((n, str(n)) for n in PAGE_SIZES),
        empty_value=25,
        error_messages={"invalid_choice": "Choose 25, 50 or 100 bookings per page."},
    )

    def __init__(
        self,
        *args: Any,
        counsellors: list[tuple[int, str]] | None,
        session_types: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        """`counsellors` and `session_types` as (id, name) pairs; no counsellor filter if None."""
        super().__init__(*args, **kwargs)
        if counsellors is None:
            del self.fields["counsellor"]
        else:
            self.fields["counsellor"].choices = Pairs([("", "All counsellors"), *counsellors])
        self.fields["session_type"].choices = Pairs([("", "All types"), *session_types])

    def clean_date_to(self) -> date | None:
        date_from, date_to = self.cleaned_data.get("date_from"), self.cleaned_data["date_to"]
        if date_from and date_to and date_to < date_from:
            raise forms.ValidationError("This is before “Session from”. Swap the two dates, or change one.")
        return date_to

    def cleaned(self) -> dict[str, Any]:
        """The valid filters; invalid ones are dropped so a bad link still shows a list."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {k: v for k, v in data.items() if v not in (None, "")}


# --- Booking actions --------------------------------------------------------------------


class ReportMonthForm(forms.Form):
    """The month of the staff report, as `?month=2026-10` (the view gives this month when the
    request names none)."""

    # As the other date fields of the portal: no booking is older, and a month far outside
    # would take its bounds outside what a datetime holds.
    FIRST_YEAR, LAST_YEAR = 2000, 2099

    month = forms.CharField(
        label="Month",
        max_length=7,
        help_text="Year and month, for example 2026-10.",
        # A month picker where the browser has one; elsewhere, text as the hint says.
        widget=forms.TextInput(attrs={"type": "month"}),
        error_messages={"required": "Enter a month as year and month, for example 2026-10."},
    )

    def clean_month(self) -> date:
        raw = self.cleaned_data["month"]
        try:
            month = datetime.strptime(raw, "%Y-%m").date()
        except ValueError:
            raise forms.ValidationError(
                "Enter a month as year and month, for example 2026-10.", code="invalid"
            ) from None
        if not self.FIRST_YEAR <= month.year <= self.LAST_YEAR:
            raise forms.ValidationError("Choose a month between January 2000 and December 2099.", code="out_of_range")
        return month


class VersionForm(forms.Form):
    # Written by the page: wrong only on a page from before this field, or one made by hand.
    version = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        error_messages=dict.fromkeys(
            ("required", "invalid", "min_value"), "This page is out of date. Reload it and try again."
        ),
    )

    def resubmittable(self, *, version: int) -> Self:
        """This form as it was sent, for the booking's current `version`: refused because
        someone else changed the booking meanwhile, it shows again what was typed and ticked,
        and pressing again acts on the booking as it is now."""
        data = self.data.copy()
        data[self.add_prefix("version")] = str(version)
        self.data = data
        self.full_clean()  # valid as sent: only the version has changed
        return self


# The slot field's empty choice, when no time the client chose is offered: approving or
# moving takes a choice, so that one Enter does not book a time nobody picked.
CHOOSE_A_TIME = "Choose a time"


class SlotChoiceForm(VersionForm):
    """A staff action that puts a booking into a slot (approve, move): its `slot` field offers
    `slots`, and takes a choice unless the client's own chosen time is among them."""

    def __init__(self, *args: Any, slots: QuerySet[Slot], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offer(slots)

    def offer(self, slots: QuerySet[Slot], *, chosen: int | None = None) -> None:
        """Offer `slots`. If the slot the client `chosen` (their preferred one) is among them,
        it is selected, as the client asked for it; otherwise the first choice is empty and
        choosing a time is required."""
        field = self.fields["slot"]
        field.queryset = slots
        offered = chosen is not None and any(slot.pk == chosen for slot in field.queryset)
        field.empty_label = None if offered else CHOOSE_A_TIME
        if offered and not self.is_bound:
            self.initial["slot"] = chosen


class ClinicPaymentForm(VersionForm):
    """An administrator records the booking's price, handed over at the clinic's desk. The
    amount is the booking's, not typed: the tick says it was received."""

    prefix = "clinic_payment"
    method = forms.ChoiceField(
        label="How did the client pay?",
        choices=CLINIC_PAYMENT_METHODS,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how the client paid.", "invalid_choice": "Choose how the client paid."},
    )
    reference = forms.CharField(
        label="Receipt number",
        required=False,
        max_length=100,
        help_text="The number on the clinic's receipt, or the card machine's or UPI reference. The client sees "
        "it on their booking page.",
        error_messages={"max_length": "A receipt number has at most 100 characters."},
    )
    received = forms.BooleanField(error_messages={"required": "Tick this once the money is in hand."})

    def __init__(self, *args: Any, booking: Booking, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["received"].label = f"I have received {money(booking.amount, booking.currency)} from the client"


class NoShowForm(VersionForm):
    """Marking a no-show is final, and sits beside "Mark as completed": it asks for a tick."""

    prefix = "no_show"  # its fields' names and ids on a page with other forms
    confirm = forms.BooleanField(
        label="The client did not come, and did not cancel",
        error_messages={"required": "Tick this to confirm the client did not come: a no-show is final."},
    )


def below_price_field() -> forms.BooleanField:
    """Asked (shown) only when an amount staff typed is below the session type's price: "1.5"
    typed for ₹1,500 made a ₹1.50 booking, and nothing said so (check_below_price)."""
    return forms.BooleanField(label="I meant to charge less than the price", required=False)


def check_below_price(form: forms.Form, *, amount: int | None, price: int, name: str) -> None:
    """In `form`'s clean(): an `amount` (paise) below `price`, the session type `name`'s, is an
    error at the amount until its below_price box is ticked. Sets `form.below_price_asked`,
    which the page reads to show the box (also when it was shown, and ticked, before)."""
    form.below_price_asked = bool(form.data.get(form.add_prefix("below_price")))
    if amount is None or amount >= price or "amount" not in form.fields:
        return
    form.below_price_asked = True
    if not form.cleaned_data.get("below_price"):
        form.add_error(
            "amount",
            forms.ValidationError(
                f"{money(amount)} is less than the price of {name} ({money(price)}). Check the amount, "
                "in rupees, or tick “I meant to charge less than the price”.",
                code="below_price",
            ),
        )


class ApproveForm(SlotChoiceForm):
    prefix = "approve"  # its fields' names and ids on a page with other forms
    slot = SlotChoiceField(
        label="Time slot",
        queryset=Slot.objects.none(),
        empty_label=CHOOSE_A_TIME,
        error_messages={"required": "Choose a time for the session."},
    )
    amount = forms.DecimalField(
        label="Amount (₹)",
        min_value=1,
        max_digits=9,
        decimal_places=2,
        required=False,
        help_text="In rupees. From the session type.",
        error_messages=rupees_messages("the amount"),
    )
    below_price = below_price_field()

    def __init__(
        self,
        *args: Any,
        slots: QuerySet[Slot],
        amount_editable: bool,
        booking: Booking | None = None,
        **kwargs: Any,
    ) -> None:
        """`booking`: the one approved, whose session type's price an amount below is asked
        about, unless it is the amount the booking already has (a phone booking's, agreed
        then); None on the page that only shows the form."""
        super().__init__(*args, slots=slots, **kwargs)
        self.booking = booking
        self.below_price_asked = False
        if not amount_editable:
            del self.fields["amount"]
            del self.fields["below_price"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        amount = self.amount_paise()
        if self.booking is not None and amount != self.booking.amount:
            session_type = self.booking.session_type
            check_below_price(self, amount=amount, price=session_type.price, name=session_type.name)
        return data

    def amount_paise(self) -> int | None:
        return rupees_to_paise(self.cleaned_data.get("amount"))


REJECT_REASONS = [
    ("no_capacity", "We have no suitable time available in the coming weeks."),
    ("not_suitable", "This service is not the right fit for what you describe; we suggest a specialist."),
    ("urgent", "What you describe needs urgent care that we cannot offer; please contact a crisis service."),
    ("duplicate", "This request duplicates another booking."),
]


class RejectForm(VersionForm):
    prefix = "reject"  # its fields' names and ids on a page with other forms
    preset = forms.ChoiceField(
        label="Common reasons",
        required=False,
        choices=[("", "None of these: I write my own below"), *REJECT_REASONS],
        error_messages={"invalid_choice": "Choose one of the common reasons, or none of them."},
        initial="",
        widget=forms.RadioSelect,
    )
    # Required unless a common reason is chosen (clean()): the page does not call it optional.
    reason = forms.CharField(
        label="Reason",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Sent to the client. With a common reason, what you write here follows it.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        preset = dict(REJECT_REASONS).get(data.get("preset") or "", "")
        reason = " ".join(part for part in (preset, (data.get("reason") or "").strip()) if part)
        if not reason:
            self.add_error("reason", "Give a reason for rejecting this request, or choose a common reason.")
        elif len(reason) > 500:
            room = 500 - len(preset) - 1
            self.add_error("reason", f"With the common reason, keep your words to {room} characters.")
        data["reason"] = reason
        return data


class CancelForm(VersionForm):
    prefix = "cancel"  # its fields' names and ids on a page with other forms
    # Kept in the audit trail for colleagues: neither the client's email nor their booking page
    # shows it (selectors.event_reason_for_client), so staff must not be told it is sent.
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For the clinic's records: the client does not see it.",
    )
    client_asked = forms.BooleanField(
        label="The client asked to cancel",
        required=False,
        help_text=(
            "Their email then says it is cancelled as they asked, not that the clinic had to cancel. "
            "Inside the cancellation cutoff, it is also recorded as a late cancellation."
        ),
    )
    error_messages = {"required": "Give a reason for cancelling this booking."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].error_messages["required"] = "Give a reason for cancelling this booking."


class MeetingUrlForm(forms.Form):
    prefix = "meeting"  # its fields' names and ids on a page with other forms
    meeting_url = forms.URLField(
        label="Meeting link for this booking",
        required=False,
        assume_scheme="https",
        max_length=MEETING_URL_MAX_LENGTH,
        validators=[meeting_url_https],
        error_messages={"invalid": "Enter the meeting link as a web address, like https://meet.example.com/room."},
        help_text="Leave empty to use the counsellor's room.",
    )


class EmailCorrectForm(forms.Form):
    prefix = "address"  # its fields' names and ids on a page with other forms
    email = forms.EmailField(
        label="Client's correct email",
        max_length=254,
        help_text="Checked with the client. The links sent before stop working, and this address gets the last email again.",
        error_messages={"required": "Enter the client's correct email address.", "invalid": EMAIL_INVALID},
    )

    def clean_email(self) -> str:
        return email_normalise(self.cleaned_data["email"])


class PaymentSettleForm(forms.Form):
    """What an administrator did about a payment that needs attention. One per payment on
    the page, so its prefix names the payment."""

    how = forms.ChoiceField(
        label="What did you do?",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose what you did.",
            "invalid_choice": "That can no longer be done for this payment. Reload the page.",
        },
    )
    reference = forms.CharField(
        label="Refund reference",
        required=False,
        max_length=100,
        help_text="From the provider's dashboard (rfnd_…). The client sees it on their booking page.",
    )
    note = forms.CharField(
        label="Note for the team",
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Staff read it in the booking's timeline; the client does not. Not the client's own words.",
        error_messages={"required": "Say briefly what you did, for whoever looks next."},
    )

    def __init__(self, *args: Any, payment: Payment, **kwargs: Any) -> None:
        super().__init__(*args, prefix=f"settle-{payment.pk}", **kwargs)
        amount = money(payment_captured_amount(payment), payment.currency)
        provider = payment.provider.capitalize()
        labels = {
            Settle.REFUND: f"Ask {provider} to refund {amount} now",
            Settle.REFUNDED: f"I refunded {amount} from {provider}'s dashboard: record it",
            Settle.DEALT_WITH: "Nothing more to do here: mark it as dealt with",
        }
        if payment.at_clinic:
            labels[Settle.REFUNDED] = f"The clinic gave {amount} back to the client: record it"
            self.fields["reference"].label = "Refund reference"
            self.fields[
                "reference"
            ].help_text = (
                "The number of the receipt, or of the bank transfer. The client sees it on their booking page."
            )
        # None left (dealt with meanwhile): any, so a stale page's answer reaches the
        # service, which says what happened.
        choices = payment_settle_choices(payment) or list(labels)
        self.fields["how"].choices = [(how, labels[how]) for how in choices]
        if Settle.REFUNDED not in choices:
            del self.fields["reference"]

    def clean_reference(self) -> str:
        reference = self.cleaned_data["reference"].strip()
        if reference and self.cleaned_data.get("how") != Settle.REFUNDED:
            raise forms.ValidationError("A refund reference goes with “I refunded … from the dashboard” only.")
        return reference


# --- Settings -------------------------------------------------------------------------


class ClinicForm(forms.ModelForm):
    class Meta:
        model = Clinic
        fields = ["address", "directions", "phone", "email"]
        widgets = {"address": forms.Textarea(attrs={"rows": 3}), "directions": forms.Textarea(attrs={"rows": 4})}

    def clean_phone(self) -> str:
        """Checked, and kept as typed: clients read it as the clinic writes it."""
        typed = self.cleaned_data.get("phone", "").strip()
        phone_input(typed)
        return typed

    def clean_address(self) -> str:
        return self.cleaned_data.get("address", "").strip()


class SessionTypeForm(forms.ModelForm):
    """A kind of session clients can book: what it is called, how long it lasts, what it costs
    and how it can be held. What is fixed by what already uses it (services.SessionTypeUse) is
    shown disabled, with the reason; services.session_type_save enforces it.

    Two administrators may have it open at once: `seen` carries what the page showed, and
    the save refuses to go over someone else's change (see `refused`)."""

    price_rupees = forms.DecimalField(
        label="Price (₹)",
        min_value=1,
        max_digits=9,
        decimal_places=2,
        help_text="New bookings are charged this; bookings already made keep their amount.",
        error_messages=rupees_messages("the price"),
    )
    seen = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = SessionType
        # What `seen` carries, but the price: the form takes it in rupees (price_rupees).
        fields = [name for name in SESSION_TYPE_SHOWN if name != "price"]
        labels = {
            "slug": "Link name",
            "description": "Description for clients",
            "name_hi": "Name in Hindi",
            "description_hi": "Description in Hindi",
            "duration_minutes": "Length (minutes)",
            "offers_online": "Can be held online",
            "offers_in_person": "Can be held in person",
            "is_active": "Clients can book it",
            "sort_order": "Position in lists",
        }
        help_texts = {
            "description": "One or two sentences, shown under its name in the booking form.",
            "name_hi": "Clients reading the site or their emails in Hindi see this; left empty, they see the name.",
            "description_hi": "Left empty, clients reading in Hindi see the description.",
            "is_active": "Untick to stop offering it. Bookings already made are not changed.",
            "sort_order": "Lower numbers come first; equal numbers go by name.",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "name_hi": forms.TextInput(attrs={"lang": "hi"}),
            "description_hi": forms.Textarea(attrs={"rows": 3, "lang": "hi"}),
        }
        error_messages = {
            "name": {"required": "Enter a name for the session type, like Individual session."},
            "slug": {
                "unique": "Another session type has this link name. Choose another, or leave it empty.",
                "invalid": "Use lowercase letters, digits and hyphens only, e.g. family-session.",
                "required": "Enter a link name: lowercase letters, digits and hyphens, e.g. family-session.",
            },
            "duration_minutes": whole_number_messages("the length", low=10, high=480, unit="minutes", example=50),
            "sort_order": {
                "required": "Enter its position in lists as a number, like 1: lower numbers come first.",
                "invalid": "Enter its position in lists as a whole number, like 1.",
            },
        }

    field_order = ["name", "slug", "description", "name_hi", "description_hi", "duration_minutes", "price_rupees"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance  # as the database has it: the form has not edited it yet
        made = stored.pk is not None
        self.fields["seen"].initial = json.dumps(session_type_shown(stored) if made else {})
        if stored.currency != "INR":
            self.fields["price_rupees"].label = f"Price ({stored.currency})"
        slug = self.fields["slug"]
        if made:
            slug.disabled = True
            slug.help_text = "Fixed: links to the booking form and the chatbot use it."
            self.fields["price_rupees"].initial = Decimal(stored.price) / 100
        else:
            slug.required = False
            slug.help_text = "Used in links, e.g. /book/?type=individual. Left empty, it is made from the name."
            last = SessionType.objects.aggregate(last=Max("sort_order"))["last"]
            self.initial["sort_order"] = 0 if last is None else last + 1  # after those there are
        use = session_type_use(stored)
        duration = self.fields["duration_minutes"]
        if use.bookings:
            duration.disabled = True
            used = "1 booking uses" if use.bookings == 1 else f"{use.bookings} bookings use"
            duration.help_text = (
                f"Fixed: {used} this length. To offer another length, add a session type and untick"
                " “Clients can book it” on this one."
            )
        else:
            duration.validators = [*duration.validators, MinValueValidator(10), MaxValueValidator(480)]
            duration.widget.attrs.update(min=10, max=480)
        for mode, name in MODE_FLAGS.items():
            count = use.open_by_mode.get(mode, 0)
            if count and getattr(stored, name):
                self.fields[name].disabled = True
                held = "1 open booking is" if count == 1 else f"{count} open bookings are"
                self.fields[name].help_text = f"Fixed while {held} held {Mode(mode).label.lower()}."
        if use.waiting and stored.is_active:
            self.fields["is_active"].help_text += (
                f" {use.waiting} client{'s are' if use.waiting != 1 else ' is'} on the waitlist for it: if you untick"
                " it, they are emailed that their place has ended."
            )

    def validate_constraints(self) -> None:
        """The model's constraints, but for the names': a name another bookable session type
        has is refused by services.session_type_save, next to its field and in words. (The
        database's constraints behind that rule are for two saves at the same moment.)"""
        try:
            self.instance.validate_constraints(exclude=self._get_validation_exclusions() | {"name", "name_hi"})
        except forms.ValidationError as exc:
            self._update_errors(exc)

    def clean_slug(self) -> str:
        if self.instance.pk is not None:  # fixed: the field is disabled
            return self.instance.slug
        slug = self.cleaned_data["slug"].lower()  # links are matched as written
        if slug:
            return slug
        base = slugify(self.cleaned_data.get("name", ""))[:40] or "session"
        candidate, number = base, 1
        while SessionType.objects.filter(slug=candidate).exists():
            number += 1
            candidate = f"{base}-{number}"
        return candidate

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("offers_online") and not data.get("offers_in_person"):
            self.add_error("offers_online", "Tick online, in person, or both: a session must be held one way.")
        return data

    def seen_values(self) -> dict[str, Any] | None:
        """What the page showed of a saved session type; None for a new one."""
        if self.instance.pk is None:
            return None
        try:
            seen = json.loads(self.cleaned_data.get("seen") or "{}")
        except (ValueError, RecursionError):  # not what the page sent: as if it showed nothing
            seen = {}
        return seen if isinstance(seen, dict) else {}

    def refused(self, error: SessionTypeChanged | SettingRefused) -> None:
        """Show why the save was refused. After someone else's change the page shows what is
        stored now and carries it as `seen`, so saving again means it."""
        if isinstance(error, SettingRefused):
            self.add_error(error.field, error.message)
            return
        labels = {"price": "Price", **{n: str(f.label) for n, f in self.fields.items()}}
        self.add_error(
            None,
            "Someone else saved this session type while you had it open ("
            + ", ".join(labels[name] for name in error.fields)
            + "). Check those fields against the list in Clinic settings, then save again.",
        )
        stored = SessionType.objects.get(pk=self.instance.pk)
        self.data = self.data.copy()
        self.data["seen"] = json.dumps(session_type_shown(stored))

    def save(self, commit: bool = True) -> SessionType:
        self.instance.price = rupees_to_paise(self.cleaned_data["price_rupees"])
        return super().save(commit)


class PasswordFromLinkForm(ResetPasswordKeyForm):
    """Choosing a password from an invitation or reset link, labelled as the portal writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["password1"].label = "New password"
        self.fields["password2"].label = "New password again"
        self.fields["password1"].error_messages["required"] = "Enter a new password."
        self.fields["password2"].error_messages["required"] = "Enter the new password again, to check it."


CALENDAR_STOPPED = "Your calendar subscription is stopped: calendar apps can no longer read your sessions."


class ChangePasswordForm(AllauthChangePasswordForm):
    """Changing one's password while signed in, labelled as the portal writes. It ends the
    member's other sessions (the password is part of each one's hash), but a calendar
    address made or read by whoever used the account goes on working: a member with one is
    asked whether to stop it too."""

    stop_calendar = forms.BooleanField(
        required=False,
        label="Also stop my calendar address",
        help_text=(
            "Choose this if someone else may have used your account or seen the address: calendar "
            "apps reading it will stop showing your sessions, until you make a new address on the "
            "calendar page and add it to your app again."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["oldpassword"].label = "Current password"
        self.fields["password1"].label = "New password"
        self.fields["password2"].label = "New password again"
        self.fields["oldpassword"].error_messages["required"] = "Enter your current password."
        self.fields["password1"].error_messages["required"] = "Enter a new password."
        self.fields["password2"].error_messages["required"] = "Enter the new password again, to check it."
        live = CalendarSubscription.objects.filter(user_id=self.user.pk, stopped_at__isnull=True).exists()
        if not live:
            del self.fields["stop_calendar"]

    def save(self) -> None:
        from staff.services import calendar_subscription_stop  # staff.services reads this module

        super().save()
        if self.cleaned_data.get("stop_calendar") and calendar_subscription_stop(user=self.user):
            messages.success(allauth_context.request, CALENDAR_STOPPED)


class ActivateTOTPForm(totp_forms.ActivateTOTPForm):
    """allauth's second-factor setup, keeping the key it showed. allauth makes a new key each
    time the page loads, so someone who added the key to their app and then reloaded the page
    (or opened it twice) had every code refused as incorrect. The key stays pending in this
    session until a code confirms it (allauth then forgets it), as a bound form already does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pending = allauth_context.request.session.get(totp_auth.SECRET_SESSION_KEY)
        super().__init__(*args, **kwargs)
        if pending and not self.is_bound:
            self.secret = allauth_context.request.session[totp_auth.SECRET_SESSION_KEY] = pending
        self.fields["code"].error_messages["required"] = "Enter the 6-digit code your authenticator app shows."

    def clean_code(self) -> str:
        session = allauth_context.request.session
        # The page is shown only to a session that may set up the app (staff.second_factor);
        # the code is refused all the same to any other, whatever reached this form.
        if not setup_allowed(session, self.user):
            raise forms.ValidationError("Open the link we email you first, then enter the code.")
        code = super().clean_code()
        # This sign-in has given a code of the app: the portal opens to it (staff.middleware),
        # and not to another sign-in of the account made with the password alone.
        second_factor_given(session, self.user)
        return code


class CounsellorRoomForm(forms.ModelForm):
    prefix = "room"  # its fields' names and ids on a page with other forms

    class Meta:
        model = Counsellor
        fields = ["meeting_url", "offers_online", "offers_in_person"]
        labels = {"meeting_url": "Online room (default meeting link)"}
        error_messages = {
            "meeting_url": {"invalid": "Enter the room's link as a web address, like https://meet.example.com/room."}
        }
        help_texts = {"meeting_url": "Shown to the client on their booking page once a session is confirmed."}


# --- Availability -----------------------------------------------------------------------

WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


def session_minutes_field(label: str) -> forms.IntegerField:
    """How long each published session is: weekly hours and a range on the calendar."""
    return forms.IntegerField(
        label=label,
        min_value=10,
        max_value=240,
        initial=50,
        error_messages=whole_number_messages("the session length", low=10, high=240, unit="minutes", example=50),
    )


def buffer_minutes_field(label: str) -> forms.IntegerField:
    """The rest between published sessions."""
    return forms.IntegerField(
        label=label,
        min_value=0,
        max_value=120,
        initial=10,
        error_messages=whole_number_messages(
            "the buffer between sessions", low=0, high=120, unit="minutes", example=10
        ),
    )


class EndOfHoursField(forms.TimeField):
    """When hours end: 24:00 (or 00:00) is midnight, the end of their day; a time earlier than
    the start is the next day's (22:00 to 01:00)."""

    def to_python(self, value: Any) -> time | None:
        if isinstance(value, str) and value.strip() in ("24:00", "24.00", "2400"):
            return time(0)
        return super().to_python(value)


class WeeklyHoursForm(forms.Form):
    prefix = "hours"  # its fields' names and ids on a page with other forms
    weekday = forms.TypedChoiceField(
        label="Day",
        choices=WEEKDAYS,
        coerce=int,
        error_messages=dict.fromkeys(("required", "invalid_choice"), "Choose the day of the week."),
    )
    start_time = forms.TimeField(
        label="From",
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        error_messages=time_messages("the time the hours start"),
    )
    end_time = EndOfHoursField(
        label="To",
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        error_messages=time_messages("the time the hours end"),
    )
    session_minutes = session_minutes_field("Session length (minutes)")
    buffer_minutes = buffer_minutes_field("Buffer between sessions (minutes)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Both, so that each input reads its zone and the two stand level side by side.
        self.fields["start_time"].help_text = self.fields["end_time"].help_text = clinic_time_hint()


class GenerateForm(forms.Form):
    prefix = "generate"  # its fields' names and ids on a page with other forms
    weeks = forms.IntegerField(
        label="Weeks ahead",
        min_value=1,
        max_value=12,
        initial=4,
        error_messages=whole_number_messages("the number of weeks ahead to publish", low=1, high=12, example=4),
    )


class SlotForm(forms.Form):
    prefix = "slot"  # its fields' names and ids on a page with other forms
    start = ClinicDateTimeField(
        label="Starts",
        widget=DATETIME_LOCAL,
        input_formats=DATETIME_FORMATS,
        validators=_TIMES,
        error_messages=moment_messages("when the session starts"),
    )
    minutes = forms.IntegerField(
        label="Length (minutes)",
        min_value=10,
        max_value=240,
        initial=60,
        error_messages=whole_number_messages("the length", low=10, high=240, unit="minutes", example=60),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["start"].help_text = clinic_time_hint()


class BlockedPeriodForm(forms.Form):
    prefix = "blocked"  # its fields' names and ids on a page with other forms
    start = ClinicDateTimeField(
        label="From",
        widget=DATETIME_LOCAL,
        input_formats=DATETIME_FORMATS,
        validators=_TIMES,
        error_messages=moment_messages("when the time off starts"),
    )
    end = ClinicDateTimeField(
        label="Until",
        widget=DATETIME_LOCAL,
        input_formats=DATETIME_FORMATS,
        validators=_TIMES,
        error_messages=moment_messages("when the time off ends"),
    )
    reason = forms.CharField(label="Reason", required=False, max_length=200, help_text="Only staff see it.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["start"].help_text = self.fields["end"].help_text = clinic_time_hint()


class PublishRangeForm(forms.Form):
    """A range selected on the calendar, split into sessions."""

    counsellor = forms.ModelChoiceField(
        label="Counsellor",
        queryset=Counsellor.objects.none(),
        empty_label=None,
        error_messages=dict.fromkeys(("required", "invalid_choice"), "Choose a counsellor whose times you publish."),
    )
    # Sent by the calendar from the selection, not typed.
    start = ClinicDateTimeField(
        input_formats=[*DATETIME_FORMATS, "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        error_messages=dict.fromkeys(("required", "invalid"), "Select a time on the calendar to publish."),
    )
    end = ClinicDateTimeField(
        input_formats=[*DATETIME_FORMATS, "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        error_messages=dict.fromkeys(("required", "invalid"), "Select a time on the calendar to publish."),
    )
    session_minutes = session_minutes_field("Session length")
    buffer_minutes = buffer_minutes_field("Buffer")

    def __init__(self, *args: Any, counsellors: QuerySet[Counsellor], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["counsellor"].queryset = counsellors

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end, minutes = data.get("start"), data.get("end"), data.get("session_minutes")
        if start is None or end is None:
            return data
        # Far outside these years a moment read in the clinic's zone falls outside what a
        # datetime can hold (year 1, year 9999); no calendar shows them anyway.
        if not (_EARLIEST <= start <= _LATEST and _EARLIEST <= end <= _LATEST):
            raise forms.ValidationError("Select a time between the years 2000 and 2099.", code="out_of_range")
        # A selection spans one day of the clinic's: a whole day, or several, selected in the
        # month view would publish sessions round the clock (the availability page publishes
        # weekly hours for many days).
        first, last = timezone.localtime(start), timezone.localtime(end)
        if end <= start:
            raise forms.ValidationError("The selected time must end after it starts.", code="backwards")
        # A selection dragged to the bottom of the Week view ends at the next midnight: still
        # that day's evening. From midnight to midnight it is a day clicked in the Month view.
        to_midnight = last.time() == time.min and last.date() == first.date() + timedelta(days=1)
        if first.date() != last.date() and not (to_midnight and first.time() != time.min):
            raise forms.ValidationError(
                f"Select a time within one day ({first:%Z}), for example 10:00 to 13:00, in the "
                "Week or Day view. To publish many days, use the weekly hours on the availability page.",
                code="not_one_day",
            )
        if minutes is not None and end - start < timedelta(minutes=minutes):
            raise forms.ValidationError(
                f"The selected time ({first:%H:%M} to {last:%H:%M} {first:%Z}) is shorter than one "
                f"{minutes}-minute session. Select a longer time, or shorten the session.",
                code="shorter_than_session",
            )
        return data


# --- Bookings made by staff -------------------------------------------------------------


class StaffBookingForm(forms.Form):
    client_name = forms.CharField(
        label="Client's name",
        max_length=120,
        error_messages={"required": "Enter the client's name, as they would like to be called."},
    )
    email = forms.EmailField(
        label="Client's email",
        help_text="They receive the booking emails and link here.",
        error_messages={
            "required": "Enter the client's email address, like name@example.com.",
            "invalid": EMAIL_INVALID,
        },
    )
    phone = forms.CharField(label="Phone", required=False, max_length=30)
    language = forms.ChoiceField(
        label="Their emails in",
        choices=settings.LANGUAGES,
        initial=settings.LANGUAGE_CODE,
        help_text="Ask which language they read most easily.",
        error_messages=dict.fromkeys(("required", "invalid_choice"), "Choose the language of their emails."),
    )
    session_type = forms.ModelChoiceField(
        label="Session type",
        queryset=SessionType.objects.none(),
        empty_label=None,
        error_messages={
            "required": "Choose the session type.",
            "invalid_choice": "That session type is no longer offered. Choose another.",
        },
    )
    mode = forms.ChoiceField(
        label="Mode",
        choices=Mode.choices,
        widget=forms.RadioSelect,
        initial=Mode.ONLINE,
        error_messages=dict.fromkeys(("required", "invalid_choice"), "Choose online or in person."),
    )
    counsellor = forms.ModelChoiceField(
        label="Counsellor",
        queryset=Counsellor.objects.none(),
        required=False,
        empty_label="Not decided yet",
        error_messages={"invalid_choice": "That counsellor can no longer be chosen. Choose another."},
    )
    slot = SlotChoiceField(
        label="Time slot",
        queryset=Slot.objects.none(),
        required=False,
        empty_label="No time yet (the request waits for review)",
        # Not called optional on the page: approving, or confirming as paid at the clinic,
        # needs a time (clean() says so next to it; __init__ writes the hint).
    )
    # Pending by default, like the slot's "No time yet": approving needs a time.
    status = forms.ChoiceField(
        label="Start as",
        choices=[(Status.APPROVED, "Approved: the client pays to confirm"), (Status.PENDING, "Pending review")],
        widget=forms.RadioSelect,
        initial=Status.PENDING,
        error_messages=dict.fromkeys(("required", "invalid_choice"), "Choose approved or pending review."),
    )
    amount = forms.DecimalField(
        label="Amount (₹)",
        min_value=1,
        max_digits=9,
        decimal_places=2,
        required=False,
        help_text="In rupees. Leave empty for the session type's price.",
        error_messages=rupees_messages("the amount"),
    )
    below_price = below_price_field()
    # The privacy notice's version the page showed, always the current one (the template writes
    # it): the client agreed to that one (clean_consent).
    policy_shown = forms.CharField(widget=forms.HiddenInput, required=False)
    # The client's agreement to the privacy notice, as the wizard asks it of those who book
    # online: staff read them its summary (shown on the page) and tick for them.
    consent_by = forms.ChoiceField(
        label="The client is",
        choices=[(ConsentGiven.PHONE, "On the phone"), (ConsentGiven.IN_PERSON, "Here in person")],
        widget=forms.RadioSelect,
        initial=ConsentGiven.PHONE,
        error_messages=dict.fromkeys(
            ("required", "invalid_choice"), "Choose whether the client is on the phone or here."
        ),
    )
    consent = forms.BooleanField(
        label="I read the privacy notice summary to the client and they agreed",
        error_messages={
            "required": "Read the client the privacy notice summary and ask whether they agree. Without their"
            " agreement the clinic can't hold their details, so no booking can be made."
        },
    )

    # A third way to start, for administrators (who record money): a client at the desk who
    # has just paid. The booking is made approved into its time and confirmed by the payment.
    PAID_AT_CLINIC = "paid_at_clinic"

    def __init__(
        self,
        *args: Any,
        slots: QuerySet[Slot],
        counsellors: QuerySet[Counsellor],
        amount_editable: bool,
        clinic_payment: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slot"].queryset = slots
        self.fields["slot"].help_text = (
            "Needed to start it approved or paid at the clinic." if clinic_payment else "Needed to start it approved."
        )
        self.fields["counsellor"].queryset = counsellors
        self.fields["session_type"].queryset = SessionType.objects.filter(is_active=True)
        if clinic_payment:
            self.fields["status"].choices = [
                *self.fields["status"].choices,
                (self.PAID_AT_CLINIC, "Paid at the clinic now: confirmed at once"),
            ]
            self.fields["status"].error_messages["invalid_choice"] = self.fields["status"].error_messages[
                "required"
            ] = "Choose approved, pending review, or paid at the clinic now."
            # Asked only when paid now; named apart from the booking's own fields.
            self.fields["clinic_method"] = forms.ChoiceField(
                label="If paid now: how?",
                choices=CLINIC_PAYMENT_METHODS,
                widget=forms.RadioSelect,
                required=False,
            )
            self.fields["clinic_reference"] = forms.CharField(
                label="If paid now: receipt number",
                required=False,
                max_length=100,
                help_text="The number on the clinic's receipt, or the card machine's or UPI reference.",
                error_messages={"max_length": "A receipt number has at most 100 characters."},
            )
        if not amount_editable:
            del self.fields["amount"]
            del self.fields["below_price"]
        # Whether the page shows below_price: the amount was below the price, now or before.
        self.below_price_asked = bool(self.data.get(self.add_prefix("below_price")))
        # Asked as the booking form asks clients, by the clinic's age rule (CLIENT_AGE_POLICY).
        if settings.CLIENT_AGE_POLICY == "guardian_consent":
            self.fields["age"] = forms.ChoiceField(
                label="Client's age",
                choices=Booking.AgeConfirmation.choices,
                widget=forms.RadioSelect,
                error_messages={
                    "required": "Ask the client whether they are 18 or over, or younger with a parent's or"
                    " guardian's consent."
                },
            )
        else:
            self.fields["age"] = forms.BooleanField(
                label="The client says they are 18 or over",
                error_messages={
                    "required": "Ask the client: the clinic books clients who are 18 or over. A younger client"
                    " needs a parent or guardian to contact the clinic with them."
                },
            )
        self.fields["consent"].help_text = f"Privacy notice version {settings.POLICY_VERSION}."
        # The page's order (templates/staff/booking_new.html), which the error summary follows:
        # fields added above would otherwise be listed last.
        self.order_fields(
            [
                *("client_name", "email", "phone", "age", "language"),
                *("session_type", "mode", "counsellor", "slot", "status", "amount", "below_price"),
                *("clinic_method", "clinic_reference"),
            ]
        )

    def clean_email(self) -> str:
        return email_normalise(self.cleaned_data["email"])

    def clean_consent(self) -> bool:
        if self.cleaned_data.get("policy_shown") != settings.POLICY_VERSION:
            # A new notice was published while the page was open: the tick was for the old one.
            # The page shows the new version (the template), the box cleared for the client's
            # answer to it.
            self.data = self.data.copy()
            self.data.pop(self.add_prefix("consent"), None)
            raise forms.ValidationError(PolicyVersionChanged(settings.POLICY_VERSION).message, code="policy_changed")
        return True

    def clean_age(self) -> str:
        age = self.cleaned_data["age"]
        return Booking.AgeConfirmation.ADULT if age is True else age

    def clean_phone(self) -> str:
        return phone_input(self.cleaned_data.get("phone", ""))

    def paid_at_clinic(self) -> tuple[str, str] | None:
        """(how, receipt number) of a payment just taken at the desk; None if not paid now."""
        if self.cleaned_data.get("status") != self.PAID_AT_CLINIC:
            return None
        return self.cleaned_data["clinic_method"], self.cleaned_data.get("clinic_reference", "")

    def booking_status(self) -> str:
        """The status the booking is made in: paid now, it is made approved, then confirmed."""
        status = self.cleaned_data["status"]
        return Status.APPROVED if status == self.PAID_AT_CLINIC else status

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("status") == self.PAID_AT_CLINIC:
            if not data.get("clinic_method"):
                self.add_error("clinic_method", "Choose how the client paid.")
            if "slot" not in self.errors and data.get("slot") is None:
                self.add_error("slot", "Choose the time they have paid for.")
        if self.errors.keys() & {"status", "session_type", "mode", "counsellor", "slot"}:
            return data
        problems = staff_booking_problems(
            status=self.booking_status(),
            session_type=data["session_type"],
            mode=data["mode"],
            counsellor=data.get("counsellor"),
            slot=data.get("slot"),
        )
        for field, message in problems.items():
            self.add_error(field, message)
        session_type = data["session_type"]
        check_below_price(self, amount=self.amount_paise(), price=session_type.price, name=session_type.name)
        return data

    def amount_paise(self) -> int | None:
        return rupees_to_paise(self.cleaned_data.get("amount"))


# --- Staff accounts ---------------------------------------------------------------------


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        error_messages={
            "required": "Enter the email address of the person to invite, like name@example.com.",
            "invalid": EMAIL_INVALID,
        },
    )
    name = forms.CharField(
        label="Full name",
        max_length=120,
        required=False,
        help_text="Needed for a counsellor: clients see it once their profile is shown.",
    )
    role = forms.ChoiceField(
        label="Role",
        choices=User.Role.choices,
        widget=forms.RadioSelect,
        initial=User.Role.COUNSELLOR,
        error_messages=dict.fromkeys(("required", "invalid_choice"), "Choose counsellor or administrator."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("role") == User.Role.COUNSELLOR and not data.get("name", "").strip():
            self.add_error("name", "Enter the counsellor's full name: clients see it when they choose and book.")
        return data


class ConfirmForm(forms.Form):
    """The explicit tick that a staff-account action asks for (the page works without JavaScript,
    so the confirmation is part of the form)."""

    confirm = forms.BooleanField(label="I understand", error_messages={"required": "Tick the box to confirm."})


def booking_initial_version(booking: Booking) -> dict[str, int]:
    return {"version": booking.version}


# --- Counsellor profiles ----------------------------------------------------------------


class CounsellorProfileForm(forms.ModelForm):
    """What clients read on the public profile, and the counsellor's own email preference."""

    class Meta:
        model = Counsellor
        fields = [
            "display_name",
            "slug",
            "title",
            "title_hi",
            "approach",
            "approach_hi",
            "bio",
            "bio_hi",
            "languages",
            "offers_online",
            "offers_in_person",
            "daily_summary",
            "change_emails",
            "is_active",
        ]
        labels = {
            "display_name": "Name shown to clients",
            "slug": "Link name",
            "title": "Title or qualification",
            "title_hi": "Title in Hindi",
            "approach": "How you work",
            "approach_hi": "How you work, in Hindi",
            "bio": "About you",
            "bio_hi": "About you, in Hindi",
            "languages": "Languages you offer sessions in",
            "offers_online": "I offer online sessions",
            "offers_in_person": "I offer sessions in person",
            "daily_summary": "Email me a summary of my sessions each morning",
            "change_emails": "Email me when a session of mine is cancelled, moved, or handed to or from me",
            "is_active": "Show this profile to clients",
        }
        help_texts = {
            "slug": (
                "The end of the profile's address, /counsellors/link-name/: lowercase letters, numbers and "
                "hyphens. Changed (after a change of name, say), links with the old one lead to the new one, "
                "and no other counsellor can take the old one."
            ),
            "approach": "A few sentences in plain words, e.g. the kinds of help you offer.",
            "bio": "Training and experience. Public: do not mention clients.",
            "title_hi": "Clients reading the site in Hindi see this; left empty, they see the title in English.",
            "approach_hi": "Clients reading in Hindi see this; left empty, they see “How you work” in English.",
            "bio_hi": "Clients reading in Hindi see this; left empty, they see “About you” in English.",
            "languages": "Separate them with commas, e.g. English, Hindi.",
            "daily_summary": "Times, acknowledgement IDs and client initials only.",
            "change_emails": "By acknowledgement ID and time; not when you made the change yourself.",
            "is_active": "Clients can see and book this counsellor only while this is ticked.",
        }
        error_messages = {
            "display_name": {"required": "Enter the name clients see, like Dr Asha Rao."},
            "slug": {
                "required": "Enter a link name, like asha-rao.",
                "invalid": "Use only letters, numbers and hyphens in the link name, like asha-rao.",
                "unique": "Another counsellor has this link name. Choose another.",
            },
        }
        widgets = {
            "approach": forms.Textarea(attrs={"rows": 4}),
            "bio": forms.Textarea(attrs={"rows": 5}),
            "title_hi": forms.TextInput(attrs={"lang": "hi"}),
            "approach_hi": forms.Textarea(attrs={"rows": 4, "lang": "hi"}),
            "bio_hi": forms.Textarea(attrs={"rows": 5, "lang": "hi"}),
        }

    def __init__(self, *args: Any, can_publish: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Whether clients see a counsellor, and at what address, are an administrator's
        # decisions (e.g. after someone has left and come back); a counsellor's own form does
        # not have those fields at all.
        if not can_publish:
            del self.fields["is_active"]
            del self.fields["slug"]

    def clean_slug(self) -> str:
        return self.cleaned_data["slug"].lower()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not (data.get("offers_online") or data.get("offers_in_person")):
            self.add_error("offers_online", "Offer at least one way of meeting: online or in person.")
        if data.get("is_active") and self.instance.user_id and not self.instance.user.is_active:
            self.add_error(
                "is_active",
                "Their staff account is deactivated: reactivate it on the Staff page first, "
                "so that clients do not book someone who cannot sign in.",
            )
        return data


class MoveForm(SlotChoiceForm):
    """Move a booking to another free slot (staff)."""

    prefix = "move"  # its fields' names and ids on a page with other forms

    slot = SlotChoiceField(
        label="New time slot",
        queryset=Slot.objects.none(),
        empty_label=CHOOSE_A_TIME,
        error_messages={"required": "Choose the new time."},
    )
    client_asked = forms.BooleanField(
        label="The client asked for this move",
        required=False,
        help_text="Their email then says it moved as they asked, not that the clinic moved it.",
    )
