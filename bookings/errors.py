"""Domain errors. Each carries a message fit to show a client or a member of staff."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _


class BookingError(Exception):
    """A refused action. `message` is human-readable; `code` is stable for the API and tests;
    `field`, when given, names the form field it is about, for the error to stand beside it."""

    code = "refused"
    default_message = _("That could not be done.")

    def __init__(self, message: str | None = None, *, field: str = "") -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)


class TransitionNotAllowed(BookingError):
    code = "transition_not_allowed"
    default_message = _("That change is not possible for this booking in its current state.")


class StaleBooking(BookingError):
    code = "stale"
    default_message = _(
        "This booking was changed by someone else since you opened it. "
        "Here is its current state; please check and try again."
    )


class SlotUnavailable(BookingError):
    code = "slot_unavailable"
    default_message = _("Sorry, that time has just been taken. Please choose another time.")


class ActiveBookingExists(BookingError):
    code = "active_booking_exists"
    default_message = _(
        "There is already an active booking for this email address. We have emailed that address a link to it."
    )


class RequestHeld(ActiveBookingExists):
    """The address's one active booking is a session that has ended and is not yet recorded
    as held or missed: the new request is kept, and made as soon as it is."""

    code = "request_held"
    default_message = _(
        "Your email address is confirmed. Your last session has not yet been recorded by the clinic: your "
        "request is saved, and we will send it to them as soon as it has been."
    )


class PolicyVersionChanged(BookingError):
    """The client agreed to a privacy notice that is no longer the current one: a new version
    was published while the form was open. Staff-facing (a booking made for a client)."""

    code = "policy_version_changed"

    def __init__(self, current: str) -> None:
        super().__init__(
            f"The privacy notice changed to version {current} while this form was open. Read the client the "
            "new summary, and tick the box again if they agree.",
            field="consent",
        )


class TooLate(BookingError):
    code = "too_late"


class PaymentError(BookingError):
    code = "payment_error"
    default_message = _("The payment could not be started. Nothing was charged; please try again.")


class TokenInvalid(BookingError):
    """An emailed link that cannot be used: `reason` is unknown, used, expired or revoked."""

    code = "token_invalid"
    messages = {
        "unknown": _("This link is not valid. Please check that you copied all of it."),
        "used": _("This link has already been used."),
        "expired": _("This link has expired."),
        "revoked": _("This link is no longer valid."),
    }

    def __init__(self, reason: str, *, link: Any = None) -> None:
        self.reason = reason
        self.link = link
        super().__init__(self.messages.get(reason, self.messages["unknown"]))


class SlotsHeld(BookingError):
    """Slots that cannot be removed because active bookings hold (or asked for) them."""

    code = "slots_held"
    default_message = _("Some of these times hold active bookings, so they cannot be removed.")

    def __init__(self, message: str | None = None, *, bookings: list[Any] | None = None) -> None:
        self.bookings = list(bookings or [])
        super().__init__(message)


class SessionTypeChanged(BookingError):
    """Someone else saved the session type after the editor was opened: `fields` changed."""

    code = "session_type_changed"

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        super().__init__("Someone else saved this session type while you had it open.")


class SettingRefused(BookingError):
    """A clinic setting (a session type, the clinic's details) refused by a rule, naming the
    form `field` it is about."""

    code = "setting_refused"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field=field)
