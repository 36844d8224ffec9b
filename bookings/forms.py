"""Forms for the client journey. They check the shape of input; booking rules stay in services.

Each form's error messages say what to do next, in plain words, because they are shown both
next to the field and in the error summary at the top of the page (the GOV.UK pattern).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any, NamedTuple

from django import forms
from django.conf import settings
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from bookings import services
from bookings.models import ACK_ALPHABET, Booking, Counsellor, Mode, SessionType, Slot, language_name
from mindsettler.forms import Pairs

NAME_MAX = 120
_MAX_ID = 2**63 - 1  # ids are bigints
PREFERRED_TIMES_MAX = 500
CONCERNS_MAX = 2000
CHECKBOX = forms.CheckboxInput(attrs={"class": "mt-1 size-5 shrink-0 accent-brand-700"})


def id_from(raw: str) -> int | None:
    """The database id written in `raw`, or None: ASCII digits only (str.isdigit() also takes
    "²", which int() refuses) and within a bigint."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= _MAX_ID:
        return int(raw)
    return None


class JourneyForm(forms.Form):
    """Shared plumbing: the summary of errors, in field order, with the anchor of each field."""

    # Fields whose markup is written by hand (radio groups): the id the summary links to.
    anchors: dict[str, str] = {}

    def anchor(self, name: str) -> str:
        return self.anchors.get(name) or self[name].auto_id

    def error_summary(self) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = [("", str(e)) for e in self.non_field_errors()]
        for name in self.fields:
            items.extend((self.anchor(name), str(e)) for e in self.errors.get(name, []))
        return items

    def inline_validate(self, *, url: str, names: tuple[str, ...]) -> None:
        """Ask htmx to check these fields on the server when they lose focus."""
        for name in names:
            self.fields[name].widget.attrs.update(
                {
                    "hx-post": url,
                    "hx-trigger": "blur changed",
                    "hx-target": f"#field-{name}",
                    "hx-swap": "outerHTML",
                    "hx-vals": f'{{"_validate": "{name}"}}',
                    # One request at a time per form, in order: a quick Tab through several
                    # fields checks each of them, and Continue waits for a check in flight
                    # (so their writes to the run's saved state never overlap).
                    "hx-sync": "closest form:queue all",
                }
            )


def _characters_or_fewer_now(count: int) -> str:
    return ngettext("Use %(count)d character or fewer.", "Use %(count)d characters or fewer.", count) % {"count": count}


# Translated when shown, not when the form class is defined: `ngettext_lazy(...) % {...}`
# translates at once, so the forms' limits read in English, at import's language, on Hindi pages.
_characters_or_fewer = lazy(_characters_or_fewer_now, str)


def _text(
    max_length: int, *, required: bool, label: str, rows: int | None = None, messages: dict[str, str] | None = None
) -> forms.CharField:
    widget = (
        forms.Textarea(attrs={"rows": rows, "class": "input"}) if rows else forms.TextInput(attrs={"class": "input"})
    )
    field = forms.CharField(
        label=label,
        required=required,
        max_length=max_length,
        widget=widget,
        error_messages={
            "max_length": _characters_or_fewer(max_length),
            **(messages or {}),
        },
    )
    if rows:
        # A browser cuts a longer paste at `maxlength` without a word: a text area is checked
        # when sent instead, and kept as written, with the error next to it.
        field.widget.attrs.pop("maxlength", None)
    return field


class CounsellorChoice(NamedTuple):
    """A counsellor as the session step's list shows one."""

    pk: int
    display_name: str


class SessionStepForm(JourneyForm):
    """Step 1: what kind of session, how, with whom, and when."""

    anchors = {"session_type": "id_session_type_0", "mode": "id_mode_0", "slot": "slot-picker"}

    session_type = forms.TypedChoiceField(
        coerce=int,
        error_messages={
            "required": _("Choose the kind of session you would like."),
            "invalid_choice": _("Choose one of the kinds of session listed."),
        },
    )
    mode = forms.ChoiceField(
        choices=Mode.choices,
        error_messages={
            "required": _("Choose online or in person."),
            "invalid_choice": _("Choose online or in person."),
        },
    )
    counsellor = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        label=_("Counsellor"),
        help_text=_("Choose “No preference” to see every counsellor's free times."),
        widget=forms.Select(attrs={"class": "input"}),
        error_messages={"invalid_choice": _("Choose one of the counsellors listed, or “No preference”.")},
    )
    slot = forms.CharField(required=False, max_length=20)
    preferred_times = _text(PREFERRED_TIMES_MAX, required=False, label=_("Days and times that suit you"), rows=3)

    def __init__(
        self,
        *args: Any,
        session_types: list[SessionType],
        counsellors: Sequence[Counsellor] | Sequence[CounsellorChoice],
        **kwargs: Any,
    ) -> None:
        """`counsellors`: the models, or for a form that is only shown, not checked, their
        choices (`CounsellorChoice`)."""
        super().__init__(*args, **kwargs)
        self.session_types = {st.pk: st for st in session_types}
        self.counsellors = {c.pk: c for c in counsellors}
        self.fields["session_type"].choices = Pairs((st.pk, st.name) for st in session_types)
        self.fields["counsellor"].choices = Pairs(
            [("", _("No preference")), *((c.pk, c.display_name) for c in counsellors)]
        )
        self.fields["preferred_times"].help_text = _(
            "Only if none of the times above suits you. For example: “weekday evenings after 6” or “Saturday mornings”."
        )

    def clean_session_type(self) -> SessionType:
        return self.session_types[self.cleaned_data["session_type"]]

    def clean_counsellor(self) -> Counsellor | None:
        pk = self.cleaned_data.get("counsellor")
        return self.counsellors[pk] if pk is not None else None

    def clean_slot(self) -> Slot | None:
        raw = (self.cleaned_data.get("slot") or "").strip()
        if not raw:
            return None
        slot = None
        if (slot_id := id_from(raw)) is not None:
            slot = Slot.objects.select_related("counsellor").filter(pk=slot_id).first()
        if slot is None:
            raise forms.ValidationError(_("That time is no longer available. Please choose another time."))
        return slot

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors.keys() & {"session_type", "mode", "counsellor", "slot"}:
            return data
        problems = services.booking_choice_problems(
            session_type=data["session_type"],
            mode=data["mode"],
            counsellor=data.get("counsellor"),
            slot=data.get("slot"),
            preferred_times=data.get("preferred_times", ""),
        )
        for field, message in problems.items():
            self.add_error(field, message)
        return data


def _email(help_text: str, *, required: str = _("Enter your email address.")) -> forms.EmailField:
    """The client's email address, with the wizard's plain-words errors (`required`: the one
    for an empty field)."""
    return forms.EmailField(
        label=_("Email address"),
        max_length=254,
        help_text=help_text,
        widget=forms.EmailInput(attrs={"class": "input", "autocomplete": "email", "spellcheck": "false"}),
        error_messages={
            "required": required,
            "invalid": _("Enter an email address in the right format, like name@example.com."),
            "max_length": _("Enter an email address of 254 characters or fewer."),
        },
    )


def _client_name() -> forms.CharField:
    """The client's name, as they would like to be addressed."""
    return _text(
        NAME_MAX,
        required=True,
        label=_("Your name"),
        messages={"required": _("Enter your name, as you would like us to address you.")},
    )


class AboutStepForm(JourneyForm):
    """Step 2: who the client is and how to reach them."""

    anchors = {"age": "id_age_0"}

    client_name = _client_name()
    email = _email(_("We will send a link to confirm it. We never share it."))
    phone = forms.CharField(
        label=_("Phone number (optional)"),
        required=False,
        max_length=30,
        help_text=_("Only used if we need to reach you about this booking, for example 98765 43210."),
        widget=forms.TextInput(attrs={"class": "input", "type": "tel", "autocomplete": "tel"}),
        error_messages={"max_length": _("Enter a phone number of 30 characters or fewer.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["client_name"].widget.attrs["autocomplete"] = "name"
        # Which age rule applies is a clinic setting; the form follows it.
        if settings.CLIENT_AGE_POLICY == "guardian_consent":
            self.fields["age"] = forms.ChoiceField(
                label=_("Your age"),
                choices=Booking.AgeConfirmation.choices,
                widget=forms.RadioSelect,
                error_messages={
                    "required": _("Tell us whether you are 18 or over, or younger with a guardian's consent."),
                    "invalid_choice": _("Choose one of the options listed."),
                },
            )
        else:
            self.anchors = {"age": "id_age"}
            self.fields["age"] = forms.BooleanField(
                label=_("I am 18 or over"),
                widget=CHECKBOX,
                error_messages={
                    "required": _(
                        "Tick the box to confirm you are 18 or over. (If you are younger, a parent or "
                        "guardian can contact the clinic with you.)"
                    ),
                },
            )

    def clean_email(self) -> str:
        return services.email_normalise(self.cleaned_data["email"])

    def clean_phone(self) -> str:
        try:
            return services.phone_normalise(self.cleaned_data.get("phone", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_age(self) -> str:
        value = self.cleaned_data["age"]
        return Booking.AgeConfirmation.ADULT if value is True else value


class CorrectEmailForm(JourneyForm):
    """After sending: the address was mistyped. The request keeps everything else."""

    email = _email(_("We will send the link there instead. The link sent to the old address stops working."))

    def clean_email(self) -> str:
        return services.email_normalise(self.cleaned_data["email"])


class ConcernsStepForm(JourneyForm):
    """Step 3 (optional): the client's own words. Sensitive: never emailed or logged."""

    concerns = _text(CONCERNS_MAX, required=False, label=_("What brings you to counselling? (optional)"), rows=6)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["concerns"].help_text = _(
            "A few words are enough (at most %(count)s characters), and you can leave this empty. "
            "Only your counsellor and the clinic's administrators will read it. It is never "
            "included in emails."
        ) % {"count": CONCERNS_MAX}


class ConsentForm(JourneyForm):
    """Step 4: agreement to the current privacy notice and cancellation policy."""

    agree_privacy = forms.BooleanField(
        label=_("I have read and agree to the privacy notice"),
        widget=CHECKBOX,
        error_messages={"required": _("Agree to the privacy notice to send your request.")},
    )
    agree_cancellation = forms.BooleanField(
        label=_("I have read and agree to the cancellation policy"),
        widget=CHECKBOX,
        error_messages={"required": _("Agree to the cancellation policy to send your request.")},
    )


# What an ID never contains: the look-alikes 0 and O, 1, I and L are all left out of the
# alphabet, so no typed look-alike can be mapped to the character meant.
_ACK_NEVER = sorted(set(string.digits + string.ascii_uppercase) - set(ACK_ALPHABET))


class AckLookupForm(JourneyForm):
    ack_id = forms.CharField(
        label=_("Acknowledgement ID"),
        max_length=services.ACK_ID_TYPED_MAX_LENGTH,
        help_text=_("It is in your emails from us and looks like MS-7K3QXP."),
        widget=forms.TextInput(attrs={"class": "input", "autocapitalize": "characters", "spellcheck": "false"}),
        error_messages={
            "required": _("Enter your acknowledgement ID, like MS-7K3QXP."),
            "max_length": _("Enter your acknowledgement ID, like MS-7K3QXP."),
        },
    )

    def clean_ack_id(self) -> str:
        # People copy IDs with spaces, dashes of every kind and in lower case ("ms 2xqx-7f"),
        # or type only the six characters after "MS-".
        # services.ack_id_normalise reads them, as the chatbot API does.
        typed = self.cleaned_data["ack_id"]
        normalised = services.ack_id_normalise(typed)
        if normalised is None:
            typed = services.ack_id_compact(typed).removeprefix("MS")
            if any(c in _ACK_NEVER for c in typed):
                raise forms.ValidationError(
                    _(
                        "Acknowledgement IDs never contain %(characters)s, so that none can be misread. "
                        "Check the ID in your email: it looks like MS-7K3QXP."
                    )
                    % {"characters": ", ".join(_ACK_NEVER)}
                )
            raise forms.ValidationError(
                _(
                    "Enter the acknowledgement ID as it appears in your email: MS- followed by six letters "
                    "and numbers, like MS-7K3QXP."
                )
            )
        return normalised


class EmailLookupForm(JourneyForm):
    email = _email(_("The address you booked with."), required=_("Enter the email address you booked with."))


DATE_INPUT = forms.DateInput(attrs={"type": "date", "class": "input"}, format="%Y-%m-%d")


class SessionTypeSelect(forms.Select):
    """A list of session types, as clients read them: on a Hindi page, a name shown in English
    (no Hindi given) is marked lang="en" for screen readers, as elsewhere."""

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        session_type = getattr(option["value"], "instance", None)
        if session_type is not None and "name" in session_type.english_shown:
            option["attrs"]["lang"] = "en"
        return option


class WaitlistForm(JourneyForm):
    """Joining the waitlist: who, for what kind of session, with whom, and which days."""

    client_name = _client_name()
    email = _email(_("We will send a link to confirm it, then email you when a time becomes free."))
    session_type = forms.ModelChoiceField(
        label=_("Kind of session"),
        queryset=SessionType.objects.none(),
        empty_label=None,
        widget=SessionTypeSelect(attrs={"class": "input"}),
        error_messages=dict.fromkeys(("required", "invalid_choice"), _("Choose one of the kinds of session listed.")),
    )
    session_type.label_from_instance = lambda session_type: session_type.shown_name
    mode = forms.ChoiceField(
        label=_("How you would like to meet"),
        choices=Mode.choices,
        widget=forms.Select(attrs={"class": "input"}),
        error_messages={
            "required": _("Choose online or in person."),
            "invalid_choice": _("Choose online or in person."),
        },
    )
    counsellor = forms.ModelChoiceField(
        label=_("Counsellor"),
        queryset=Counsellor.objects.none(),
        required=False,
        empty_label=_("No preference"),  # as in the booking wizard
        widget=forms.Select(attrs={"class": "input"}),
        error_messages={"invalid_choice": _("Choose one of the counsellors listed, or “No preference”.")},
    )
    date_from = forms.DateField(
        label=_("First day that suits you"),
        widget=DATE_INPUT,
        error_messages={
            "required": _("Enter the first day that suits you."),
            "invalid": _("Enter a date, like 2026-12-01."),
        },
    )
    date_to = forms.DateField(
        label=_("Last day that suits you"),
        help_text=_("You leave the waitlist automatically after this day."),
        widget=DATE_INPUT,
        error_messages={
            "required": _("Enter the last day that suits you."),
            "invalid": _("Enter a date, like 2026-12-31."),
        },
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["session_type"].queryset = SessionType.objects.filter(is_active=True)
        self.fields["counsellor"].queryset = Counsellor.objects.filter(is_active=True)
        self.fields["client_name"].widget.attrs["autocomplete"] = "name"

    def clean_email(self) -> str:
        return services.email_normalise(self.cleaned_data["email"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", _("The last day must be on or after the first day."))
        return data


class CounsellorFilterForm(JourneyForm):
    """ "Our counsellors", narrowed to those who speak a language and meet a way (GET: the
    choices stay in the address, and the page works without JavaScript)."""

    language = forms.ChoiceField(
        label=_("Language spoken"),  # not "Language": the footer's switch of the site's own
        required=False,
        widget=forms.Select(attrs={"class": "input"}),
        error_messages={"invalid_choice": _("Choose one of the languages listed, or “Any language”.")},
    )
    mode = forms.ChoiceField(
        label=_("How you would like to meet"),
        required=False,
        choices=[("", _("Online or in person")), *Mode.choices],
        widget=forms.Select(attrs={"class": "input"}),
        error_messages={"invalid_choice": _("Choose online, in person, or “Online or in person”.")},
    )

    def __init__(self, *args: Any, counsellors: list[Counsellor], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        languages: dict[str, str] = {}  # by its folded spelling: "hindi" and "Hindi" are one
        for counsellor in counsellors:
            for language in counsellor.language_list:
                languages.setdefault(language.casefold(), language)
        labelled = sorted(((name, language_name(name)) for name in languages.values()), key=lambda c: c[1].casefold())
        self.fields["language"].choices = [("", _("Any language")), *labelled]
        # A link written by hand (?language=hindi) reads as the list spells it.
        asked = self.data.get("language", "")
        if asked.casefold() in languages and asked != languages[asked.casefold()]:
            self.data = self.data.copy()
            self.data["language"] = languages[asked.casefold()]
        # Worth showing only where a choice leaves some counsellors out.
        speak_all = (
            set.intersection(*({n.casefold() for n in c.language_list} for c in counsellors)) if counsellors else set()
        )
        self.narrows_anything = len(counsellors) > 1 and (
            set(languages) != speak_all or not all(c.offers_online and c.offers_in_person for c in counsellors)
        )

    def narrows(self) -> bool:
        """Whether a choice narrows the list. Only valid choices count: an invalid one is
        explained next to its field and left out, and the other still applies."""
        if not self.is_bound:
            return False
        self.is_valid()  # fills cleaned_data with the valid choices
        return any(self.cleaned_data.values())

    def matching(self, counsellors: list[Counsellor]) -> list[Counsellor]:
        """The counsellors that fit the valid choices."""
        if not self.narrows():
            return counsellors
        language, mode = self.cleaned_data.get("language", "").casefold(), self.cleaned_data.get("mode", "")
        return [
            c
            for c in counsellors
            if (not language or language in {name.casefold() for name in c.language_list})
            and (mode != Mode.ONLINE or c.offers_online)
            and (mode != Mode.IN_PERSON or c.offers_in_person)
        ]
