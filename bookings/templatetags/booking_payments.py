"""Template access to payment reads, so the booking page needs no extra context."""

from __future__ import annotations

from django import template

from bookings.models import Booking
from bookings.selectors import booking_payment_summary

register = template.Library()


@register.simple_tag
def payment_summary(booking: Booking) -> dict[str, object]:
    """`{% payment_summary booking as pay %}`: see selectors.booking_payment_summary."""
    return booking_payment_summary(booking=booking)
