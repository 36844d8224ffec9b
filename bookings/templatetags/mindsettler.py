from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.formats import date_format, number_format

register = template.Library()


@register.filter
def when(value: datetime | None) -> str:
    """A moment in the clinic's time zone, with the zone named: 'Tuesday 1 December 2026, 10:00 IST'.

    Day and month names follow the active language ('मंगलवार 1 दिसम्बर 2026, 10:00 IST')."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{date_format(local, 'l j F Y')}, {local:%H:%M} {local.tzname()}"


@register.filter
def when_short(value: datetime | None) -> str:
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{date_format(local, 'D j M')}, {local:%H:%M} {local.tzname()}"


@register.filter
def clock(value: datetime | None) -> str:
    """The time of day with its zone, '10:00 IST'. Unlike Django's "T" format, it names the
    zone of a wall-clock time that occurs twice when daylight saving ends (01:30 BST, then
    01:30 GMT), which is exactly when the client needs it."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{local:%H:%M} {local.tzname()}"


@register.filter
def money(minor: int | None, currency: str = "INR") -> str:
    """Minor units to a price: 150000 -> '₹1,500', with the active language's separators."""
    if minor is None:
        return ""
    major, paise = divmod(int(minor), 100)
    symbol = "₹" if currency == "INR" else f"{currency} "
    if paise:
        return symbol + number_format(Decimal(int(minor)) / 100, decimal_pos=2, force_grouping=True)
    return symbol + number_format(major, force_grouping=True)
