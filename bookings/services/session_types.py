"""Session types, the kinds of session clients book, and the clinic's details that clients who
book in person are sent: what of a session type is fixed by what already uses it, and what
the two need of each other. Staff forms show these rules; `session_type_save` and
`clinic_save` enforce them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from bookings.errors import SessionTypeChanged, SettingRefused
from bookings.models import ACTIVE_STATUSES, MODE_FLAGS, Booking, Clinic, Mode, SessionType, WaitlistEntry
from bookings.services.waitlist import WAITLIST_LIVE, waitlist_end_unserved

# What an editor is shown of a session type, and so what `seen` carries (see session_type_save).
SESSION_TYPE_SHOWN = (
    "name",
    "slug",
    "description",
    "name_hi",
    "description_hi",
    "duration_minutes",
    "price",
    "offers_online",
    "offers_in_person",
    "is_active",
    "sort_order",
)


@dataclass(frozen=True)
class SessionTypeUse:
    """What already depends on a session type:
    - `bookings`, of any status: its length is fixed, since a booking's end, its calendar
      invitation and its slot's fit are read from it;
    - `open_by_mode`, open bookings by way of meeting: that way stays offered, since approving
      and moving them check it;
    - `waiting`, confirmed clients on its waitlist: told if it stops being offered.
    Its link name is fixed once made (links to the wizard and the chatbot use it); its price
    applies to new bookings only (each booking keeps the amount it was given)."""

    bookings: int = 0
    open_by_mode: dict[str, int] = field(default_factory=dict)
    waiting: int = 0


def session_type_use(session_type: SessionType) -> SessionTypeUse:
    """Three small queries for a saved session type; none for a new one."""
    if session_type.pk is None:
        return SessionTypeUse()
    return SessionTypeUse(
        bookings=session_type.bookings.count(),
        open_by_mode=dict(
            Counter(session_type.bookings.filter(status__in=ACTIVE_STATUSES).values_list("mode", flat=True))
        ),
        waiting=WaitlistEntry.objects.filter(
            session_type=session_type, status__in=WAITLIST_LIVE, verified_at__isnull=False
        ).count(),
    )


def session_type_shown(session_type: SessionType) -> dict[str, Any]:
    """What an editor is shown of it, for `seen`."""
    return {name: getattr(session_type, name) for name in SESSION_TYPE_SHOWN}


NO_ADDRESS = (
    "Clients who book in person are sent the clinic's address, and there is none yet: add it in Clinic settings first."
)


NAME_TAKEN = (
    "Clients can already book a session type of this name. Give this one another name, or untick"
    " “Clients can book it” on the other first."
)
NAME_HI_TAKEN = "Clients reading in Hindi can already book a session type of this name."
# The database's constraints (bookings.models.SessionType) behind the two checks: what a save
# racing another administrator's meets. The Hindi one first: the other's name is part of it.
NAME_CONSTRAINTS = {
    "session_type_active_name_hi": (NAME_HI_TAKEN, "name_hi"),
    "session_type_active_name": (NAME_TAKEN, "name"),
}


def _check_bookable(session_type: SessionType, *, stored: SessionType | None) -> None:
    """What a session type clients can book needs: a name (and Hindi name) of its own, since
    clients choose by name; and, when it starts to be held in person, the clinic's address."""
    others = SessionType.objects.filter(is_active=True).exclude(pk=session_type.pk)
    if others.filter(name__iexact=session_type.name.strip()).exists():
        raise SettingRefused(NAME_TAKEN, "name")
    if session_type.name_hi.strip() and others.filter(name_hi__iexact=session_type.name_hi.strip()).exists():
        raise SettingRefused(NAME_HI_TAKEN, "name_hi")
    was_in_person = stored is not None and stored.is_active and stored.offers_in_person
    if session_type.offers_in_person and not was_in_person and not Clinic.load().address.strip():
        raise SettingRefused(NO_ADDRESS, "offers_in_person")


def clinic_save(*, clinic: Clinic) -> None:
    """Save the clinic's details. Refused (SettingRefused): an empty address while clients can
    book sessions held in person, or have one booked (a retired session type's, say)."""
    if not clinic.address.strip():
        if SessionType.objects.filter(is_active=True, offers_in_person=True).exists():
            raise SettingRefused(
                "Give the clinic's address: clients who book in person are sent it. (A clinic that meets only"
                " online unticks “Can be held in person” on its session types first.)",
                "address",
            )
        if Booking.objects.filter(mode=Mode.IN_PERSON, status__in=ACTIVE_STATUSES).exists():
            raise SettingRefused(
                "Give the clinic's address: clients with sessions in person still to come are shown it, on their "
                "booking pages and in their reminders.",
                "address",
            )
    clinic.save()


def session_type_save(*, session_type: SessionType, seen: dict[str, Any] | None = None) -> int:
    """Save a new session type, or one changed in memory, and return how many clients waiting
    for it were told their place has ended (see waitlist_end_unserved).

    A change is checked against the row as stored, locked for the check and the save. A booking
    placed in a slot as it is made (booking_create_by_staff) takes the same lock: made at the
    same moment, it either commits first and is counted here, or waits and then checks its slot
    against the new length. (Other bookings are placed later, by approval, which checks then.)
    Refused (SettingRefused) are a new length once a booking uses it, dropping a way of
    meeting while open bookings are held that way, and a name another bookable session type
    has (clients would see two the same). With `seen`, what the editor was shown
    (session_type_shown), a save over someone else's change is refused (SessionTypeChanged),
    naming the fields they changed. Unique link names are the database's to enforce."""
    with transaction.atomic():
        stored = None
        if session_type.pk is not None:
            stored = SessionType.objects.select_for_update().get(pk=session_type.pk)
            if seen is not None:
                changed = [name for name, value in session_type_shown(stored).items() if seen.get(name) != value]
                if changed:
                    raise SessionTypeChanged(changed)
            use = session_type_use(stored)
            if use.bookings and session_type.duration_minutes != stored.duration_minutes:
                raise SettingRefused(
                    "A booking of this session type has just been made, so its length is now fixed.",
                    "duration_minutes",
                )
            for mode, flag in MODE_FLAGS.items():
                if use.open_by_mode.get(mode) and getattr(stored, flag) and not getattr(session_type, flag):
                    raise SettingRefused(
                        f"An open booking is held {Mode(mode).label.lower()}, so this way of meeting stays.", flag
                    )
        if session_type.is_active:
            _check_bookable(session_type, stored=stored)
        try:
            with transaction.atomic():
                session_type.save()
        except IntegrityError as exc:
            # Another administrator saved the same name a moment ago, after the check above.
            taken = next((v for name, v in NAME_CONSTRAINTS.items() if name in str(exc)), None)
            if taken is None:
                raise
            raise SettingRefused(*taken) from None
        return waitlist_end_unserved(session_type=session_type)
