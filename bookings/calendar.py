"""iCalendar invitations for confirmed sessions. No client data beyond the acknowledgement ID."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from icalendar import Calendar, Event, vCalAddress, vText

from bookings.models import Booking, Clinic, Mode, Slot


def booking_ics(*, booking: Booking, cancel: bool = False) -> str:
    """A one-event calendar for the booking's session. The UID stays the same for the life
    of the booking and SEQUENCE grows with every change, so calendar apps update the event
    in place (or remove it, with `cancel`). Its words are in the booking's language, as its
    emails are."""
    slot = booking.slot
    if slot is None:
        return ""
    with translation.override(booking.language):
        return _booking_ics(booking=booking, slot=slot, cancel=cancel)


def _booking_ics(*, booking: Booking, slot: Slot, cancel: bool) -> str:
    clinic = Clinic.load()
    cal = Calendar()
    cal.add("prodid", "-//MindSettler//Bookings//EN")
    cal.add("version", "2.0")
    # PUBLISH: an event to add, not a meeting request (REQUEST) that calendar apps would ask
    # the client to accept or decline, and answer to the organizer. A cancellation is CANCEL.
    cal.add("method", "CANCEL" if cancel else "PUBLISH")
    event = Event()
    event.add("uid", f"{booking.ack_id.lower()}@mindsettler")
    event.add("sequence", booking.version)
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", slot.start.astimezone(UTC))
    event.add("dtend", booking.session_end.astimezone(UTC))
    counsellor = booking.counsellor.display_name if booking.counsellor else settings.CLINIC_NAME
    # Its words' language (RFC 5545 LANGUAGE), for calendar apps that read events aloud.
    language = {"LANGUAGE": translation.get_language()}
    # An "appointment", not a counselling session: calendars are often shared with family or
    # a workplace, and the title is what others see. The booking page says so by its link.
    event.add(
        "summary",
        _("Appointment with %(counsellor)s (%(ack_id)s)") % {"counsellor": counsellor, "ack_id": booking.ack_id},
        parameters=language,
    )
    if booking.mode == Mode.IN_PERSON:
        event.add("location", vText(" ".join(clinic.address.split()) or settings.CLINIC_NAME))
    else:
        event.add("location", vText(_("Online")), parameters=language)
    event.add(
        "description",
        _("Your booking page: see the emails from %(clinic)s. Acknowledgement ID %(ack_id)s.")
        % {"clinic": settings.CLINIC_NAME, "ack_id": booking.ack_id},
        parameters=language,
    )
    organizer = vCalAddress(f"mailto:{settings.DEFAULT_FROM_EMAIL.split('<')[-1].rstrip('>')}")
    organizer.params["cn"] = vText(settings.CLINIC_NAME)
    event["organizer"] = organizer
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    cal.add_component(event)
    return cal.to_ical().decode("utf-8")
