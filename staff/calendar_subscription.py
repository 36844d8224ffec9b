"""The counsellor's calendar subscription: the text of the feed their calendar app reads.

Calendars are often shared with family or a workplace, and a phone shows the next event on
its lock screen, so an event says as little as it can: "Session MS-ABC123 · online", a link
to the booking's page in the portal (which asks for the sign-in and the second factor) and,
for a session in person, the clinic's address. Never the client's name, email or words, nor
what kind of care it is, nor the online room's link (whoever has it can join the session).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from icalendar import Calendar, Event, vDuration, vText

from bookings.emails import absolute_url
from bookings.models import Mode, Status

# The app's own booking statuses, as a calendar reads them. Approved and being paid: the time
# is held, but the session is not yet paid for and may lapse. A no-show's time was held and
# used up, as a held session's.
EVENT_STATUS = {
    Status.APPROVED: "TENTATIVE",
    Status.PAYMENT_PENDING: "TENTATIVE",
    Status.CONFIRMED: "CONFIRMED",
    Status.COMPLETED: "CONFIRMED",
    Status.NO_SHOW: "CONFIRMED",
}

# How often a calendar app should read the feed again (RFC 7986; Apple's and Outlook's older
# name for it). Google Calendar decides for itself, every few hours.
REFRESH = timedelta(hours=1)


def event_summary(*, ack_id: str, mode: str, status: str) -> str:
    way = "in person" if mode == Mode.IN_PERSON else "online"
    unpaid = " · not yet paid" if EVENT_STATUS[status] == "TENTATIVE" else ""
    return f"Session {ack_id} · {way}{unpaid}"


def sessions_ics(*, sessions: Iterable[Any], address: str) -> bytes:
    """The feed of `sessions` (staff.selectors.calendar_feed_sessions' rows). Each event's UID
    is its booking's for good, and its SEQUENCE the booking's version, so a moved session
    moves in the calendar instead of appearing twice. Times in UTC: calendar apps show them in
    the device's zone. DTSTAMP and LAST-MODIFIED are the booking's last change (RFC 5545: in a
    calendar without METHOD they say the same), so the same data gives the same bytes and
    calendar apps can ask with If-None-Match. Cancelled sessions are left out: a subscribed
    calendar removes what its feed no longer holds."""
    cal = Calendar()
    cal.add("prodid", "-//MindSettler//Staff calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "Sessions")
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))
    # On one line, without control characters (RFC 5545 TEXT allows none; an address is typed).
    location = " ".join("".join(c for c in address if c.isspace() or unicodedata.category(c) != "Cc").split())
    location = location or settings.CLINIC_NAME
    detail = absolute_url(reverse("staff:booking_detail", args=[0]))[:-2]  # ".../staff/bookings/"
    for session in sessions:
        event = Event()
        event.add("uid", f"{session.ack_id.lower()}.staff@mindsettler")
        event.add("sequence", session.version)
        event.add("dtstamp", session.updated_at.astimezone(UTC))
        event.add("last-modified", session.updated_at.astimezone(UTC))
        start = session.slot__start.astimezone(UTC)
        event.add("dtstart", start)
        event.add("dtend", start + timedelta(minutes=session.session_type__duration_minutes))
        event.add("summary", event_summary(ack_id=session.ack_id, mode=session.mode, status=session.status))
        if session.mode == Mode.IN_PERSON:
            event.add("location", vText(location))
        url = f"{detail}{int(session.pk)}/"
        event.add("description", url)
        event.add("url", url)
        event.add("status", EVENT_STATUS[session.status])
        # Shown as "busy" to those the calendar is shared with, where the app honours it.
        event.add("class", "PRIVATE")
        cal.add_component(event)
    return cal.to_ical()
