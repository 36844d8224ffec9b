"""The slot picker's repeated markup (templates/bookings/_slot_picker.html), written in Python:
a page of day buttons and a radio per free time cost a few template nodes each, and the
picker is on every step of the booking wizard's first page and every refresh of it."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import template
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

from bookings.templatetags.mindsettler import clock, short_day

register = template.Library()

DAY_BUTTON = (
    '\n  <button type="submit" name="day" value="{0}" id="day-{0}" aria-pressed="{1}" class="btn-small {2}"'
    ' formaction="{4}">{3}</button>'
)
TIME = (
    "\n  "
    '<label class="flex cursor-pointer items-center gap-2 rounded-lg border border-stone-300 bg-white p-3'
    ' has-checked:border-brand-700 has-checked:bg-brand-50">'
    '\n    <input type="radio" name="slot" value="{0}" id="slot-{0}" class="size-5 shrink-0 accent-brand-700"{1}>'
    '\n    <span><span class="font-semibold">{2}</span>'
    '\n      <span class="block text-sm text-muted">{3}</span></span>'
    "\n  </label>"
)


@register.simple_tag
def day_buttons(days: list[date], shown: date | None, action: str) -> SafeString:
    """A submit button per day (`name="day"`): the day shown is pressed. Day and month names
    follow the active language (whole in Hindi: short_day). Each posts to `action`, which (without JavaScript) opens the
    answer at the picker, not at the top of the page."""
    return format_html_join(
        "",
        DAY_BUTTON,
        (
            (
                d.isoformat(),
                "true" if d == shown else "false",
                "btn-primary" if d == shown else "btn-secondary",
                short_day(d),
                action,
            )
            for d in days
        ),
    )


@register.simple_tag
def time_radios(times: list[dict[str, Any]], chosen: str, any_counsellor: bool) -> SafeString:
    """A radio (`name="slot"`) per free time of the day, labelled with the time, its zone, and
    with whom: how many counsellors are free then, or the counsellor's name."""
    rows = []
    for time in times:
        slot = time["slot"]
        if any_counsellor:
            count = time["count"]
            who = ngettext("%(count)s counsellor free", "%(count)s counsellors free", count) % {"count": count}
        else:
            who = slot.counsellor_name
        checked = " checked" if str(slot.pk) == chosen else ""
        rows.append((slot.pk, checked, clock(time["start"], autoescape=True), who))  # HTML: zone kept with time
    return format_html_join("", TIME, rows)
