from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

import phonenumbers
from django import template
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.forms import BoundField
from django.urls import get_script_prefix, get_urlconf
from django.utils import timezone, translation
from django.utils.formats import date_format, number_format
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

from mindsettler.forms import select_html

register = template.Library()


@register.filter
def day_words(day: date, format: str) -> str:
    """date_format(day, format) in the active language: 'Tuesday 1 December 2026'. Its day
    and month names are looked up (about 20 µs) once per day, format and language.
    `{{ day|day_words:"l j F Y" }}` in templates."""
    return _day_words(day, format, translation.get_language())


@lru_cache(maxsize=4096)
def _day_words(day: date, format: str, language: str | None) -> str:
    return date_format(day, format)  # in `language`: the active one


@register.filter
def name_marked(session_type: object) -> str:
    """A session type's name as clients read it, for HTML: marked lang="en" where a Hindi page
    or email shows its English (as bookings/_session_type_name.html does), for a screen reader."""
    if "name" in session_type.english_shown:  # type: ignore[attr-defined]
        return format_html('<span lang="en">{}</span>', session_type.shown_name)  # type: ignore[attr-defined]
    return session_type.shown_name  # type: ignore[attr-defined]


@register.filter
def minutes(count: int) -> str:
    """A session's length in words, '50 minutes', in the active language (its plural looked
    up once per length and language). `{{ session_type.duration_minutes|minutes }}`."""
    return _minutes(int(count), translation.get_language())


@lru_cache(maxsize=256)
def _minutes(count: int, language: str | None) -> str:
    return ngettext("%(minutes)s minute", "%(minutes)s minutes", count) % {"minutes": count}  # in `language`


@register.filter
def hours(count: int) -> str:
    """A length of time in hours, in words: '24 hours', '1 hour' (a link's life, a cutoff)."""
    return ngettext("%(hours)s hour", "%(hours)s hours", int(count)) % {"hours": int(count)}


@register.filter
def link_minutes(count: int) -> str:
    """A link's life from a setting in minutes, in words: '1 hour' for 60, else '30 minutes'."""
    count = int(count)
    return hours(count // 60) if count and count % 60 == 0 else minutes(count)


# A time and its zone are one thing to read: in HTML (pages and HTML emails, where Django
# autoescapes) they are joined by a no-break space, so that a narrow line never leaves the zone
# alone at the start of the next ("10:00" above "IST"). Plain text (text emails and subjects,
# which turn autoescaping off, and Python callers: event words, the calendar feed) keeps an
# ordinary space.
def _zone_space(html: bool) -> str:
    return "\N{NO-BREAK SPACE}" if html else " "


@register.filter(needs_autoescape=True)
def when(value: datetime | None, autoescape: bool = False) -> str:
    """A moment in the clinic's time zone, with the zone named: 'Tuesday 1 December 2026, 10:00 IST'.

    Day and month names follow the active language ('मंगलवार 1 दिसम्बर 2026, 10:00 IST')."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{day_words(local.date(), 'l j F Y')}, {clock(local, autoescape)}"


@register.filter(needs_autoescape=True)
def when_short(value: datetime | None, autoescape: bool = False) -> str:
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{short_day(local.date())}, {clock(local, autoescape)}"


# Hindi has no customary short forms of day and month names ("मंगल 1 दिस" reads as clipped
# words): its short date gives them whole, "मंगलवार 1 दिसंबर".
_SHORT_DAY_FORMATS = {"hi": "l j F"}


@register.filter
def short_day(day: date) -> str:
    """A day in few words, 'Tue 1 Dec', in the active language: in Hindi 'मंगलवार 1 दिसंबर'."""
    return day_words(day, _SHORT_DAY_FORMATS.get(translation.get_language(), "D j M"))


@register.filter
def iso(value: datetime | None) -> str:
    """A moment in the clinic's time zone as ISO 8601, for <time datetime>: what Django's
    `date:'c'` writes, without its formatter's work."""
    return timezone.localtime(value).isoformat() if value is not None else ""


@register.filter(needs_autoescape=True)
def clock(value: datetime | None, autoescape: bool = False) -> str:
    """The time of day with its zone, '10:00 IST'. Unlike Django's "T" format, it names the
    zone of a wall-clock time that occurs twice when daylight saving ends (01:30 BST, then
    01:30 GMT), which is exactly when the client needs it."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{local:%H:%M}{_zone_space(autoescape)}{local.tzname()}"


@register.filter(needs_autoescape=True)
def clock_span(start: datetime | None, end: datetime | None, autoescape: bool = False) -> str:
    """A period within a day, its zone named once at the end: '10:00 to 10:50 IST', with an en
    dash for 'to'. Across a change of clocks each time names its own ('01:30 BST to 01:20
    GMT'). Without an end, the start as `clock` writes it."""
    if start is None or end is None:
        return clock(start, autoescape)
    first, last = timezone.localtime(start), timezone.localtime(end)
    if first.tzname() != last.tzname():
        return f"{clock(first, autoescape)}\N{EN DASH}{clock(last, autoescape)}"
    return f"{first:%H:%M}\N{EN DASH}{clock(last, autoescape)}"


@register.filter(needs_autoescape=True)
def span(start: datetime | None, end: datetime | None, autoescape: bool = False) -> str:
    """A period in few words: 'Mon 30 Nov, 10:00 to 11:00 IST' (clock_span, after its day)."""
    if start is None:
        return ""
    return f"{short_day(timezone.localtime(start).date())}, {clock_span(start, end, autoescape)}"


@register.filter
def phone(value: str | None) -> str:
    """A phone number as people read it, "+91 98765 43210", whether stored (E.164) or as typed."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, "IN")
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


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


# --- Fixed fragments ------------------------------------------------------------------------

# Rendered fragments by (name, language, URL prefix and conf, values they vary on). A few
# entries per language; the bound only guards against a careless `vary_on`.
_FIXED: dict[tuple[object, ...], str] = {}
_FIXED_MAX = 256


@receiver(setting_changed)
def _fixed_forget(**kwargs: object) -> None:
    """Settings change only in tests; a fragment may show any of them (STATIC_URL...)."""
    _FIXED.clear()
    _day_words.cache_clear()
    _minutes.cache_clear()


class FixedNode(template.Node):
    # `{% extends %}` walks the parent's whole node tree on every render, looking for blocks;
    # a fragment holds none (a block inside would be frozen at its first rendering), so the
    # walk need not enter it.
    child_nodelists = ()

    def __init__(self, nodelist: template.NodeList, name: str, vary_on: list[template.base.FilterExpression]) -> None:
        self.nodelist, self.name, self.vary_on = nodelist, name, vary_on

    def render(self, context: template.Context) -> str:
        key = (
            self.name,
            translation.get_language(),
            get_script_prefix(),
            get_urlconf() or settings.ROOT_URLCONF,
            *(str(v.resolve(context)) for v in self.vary_on),
        )
        html = _FIXED.get(key)
        if html is None:
            html = self.nodelist.render(context)
            if len(_FIXED) < _FIXED_MAX:
                _FIXED[key] = html
        return html


@register.tag
def fixed(parser: template.base.Parser, token: template.base.Token) -> FixedNode:
    """`{% fixed "name" value... %}...{% endfixed %}`: the site's fixed chrome (a header, a
    footer, static file URLs) and a page's fixed text, rendered once per process, language
    and the values listed, then reused.

    Only for markup that depends on nothing but translations, URLs (static files' too) and
    the values listed (e.g. settings); never for anything about a booking, a visitor or a
    request (no csrf_token, csp_nonce or request inside), and no `{% block %}`. A
    process-local dict, not the shared cache: the database cache would cost a query per
    fragment.
    """
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("'fixed' needs a fragment name.")
    nodelist = parser.parse(("endfixed",))
    parser.delete_first_token()
    return FixedNode(nodelist, bits[1], [parser.compile_filter(bit) for bit in bits[2:]])


# --- Form fields --------------------------------------------------------------------------

# bookings/_field.html, written in Python for the pages that render it on every request (the
# status lookup): the same markup without two includes and their nodes per field.
# bookings/tests/test_status.py compares the two.
_FIELD = '\n<div id="field-{}" class="mb-6{}">\n  <label for="{}" class="field-label">{}</label>\n  {}\n  {}\n\n  {}\n</div>\n'
_FIELD_HINT = '<p id="{}_helptext" class="field-hint">{}</p>'
_FIELD_ERRORS = '<p id="{}_error" class="field-error">{}</p>'
_FIELD_ERROR = '<span class="sr-only">{} </span>{}'
_ACK_ID = re.compile(r"\bMS-[A-Z0-9]{6}\b")


@register.filter
def whole_ids(text: str) -> SafeString:
    """The text, escaped, with each acknowledgement ID in it kept on one line: on a phone the
    hint broke 'MS-7K3QXP' after its hyphen, and the ID read as two. Used for hints, headings
    and messages (str() of a message is its text: safe text stays unescaped)."""
    escaped = str(conditional_escape(str(text)))
    return mark_safe(_ACK_ID.sub(lambda m: f'<span class="whitespace-nowrap">{m.group(0)}</span>', escaped))  # noqa: S308


@register.simple_tag
def labelled_field(field: BoundField) -> SafeString:
    """`{% labelled_field form.name %}`: `{% include "bookings/_field.html" with field=form.name %}`.

    The label, the hint and the errors, each linked to the input by the aria-describedby
    that Django writes on it."""
    errors = field.errors
    shown = ""
    if errors:
        prefix = gettext("Error:")
        texts = format_html_join(" ", _FIELD_ERROR, ((prefix, error) for error in errors))
        shown = format_html(_FIELD_ERRORS, field.auto_id, texts)  # bookings/_field_errors.html
    return format_html(
        _FIELD,
        field.name,
        " border-l-4 border-red-700 pl-4" if errors else "",
        field.id_for_label,
        field.label,
        format_html(_FIELD_HINT, field.auto_id, whole_ids(field.help_text)) if field.help_text else "",
        shown,
        select_html(field) or field.as_widget(),  # a select (the counsellors) written directly
    )
