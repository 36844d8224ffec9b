"""Form rendering for the portal: labels, hints and errors wired up with aria attributes."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import forms, template
from django.forms.boundfield import BoundField
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

from staff.forms import clinic_time_hint

register = template.Library()


def widget_attrs(field: BoundField, **extra: str) -> dict[str, str]:
    """The attributes `widget` gives the field's widget: our classes, aria-describedby (hint
    and error) and aria-invalid, then `extra`."""
    attrs: dict[str, str] = {}
    described = []
    errors = field.errors
    if field.help_text:
        described.append(f"{field.auto_id}-hint")
    if errors:
        described.append(f"{field.auto_id}-error")
        attrs["aria-invalid"] = "true"
    if described:
        attrs["aria-describedby"] = " ".join(described)
    w = field.field.widget
    if not isinstance(w, (forms.CheckboxInput, forms.RadioSelect, forms.CheckboxSelectMultiple, forms.HiddenInput)):
        attrs["class"] = "input input-error" if errors else "input"
    attrs.update(extra)
    return attrs


@register.simple_tag
def widget(field: BoundField, **extra: str) -> SafeString:
    """The field's widget with our classes, aria-describedby (hint and error) and aria-invalid."""
    return field.as_widget(attrs=widget_attrs(field, **extra))


BADGES = {
    "pending": "bg-amber-100 text-amber-900",
    "approved": "bg-sky-100 text-sky-900",
    "payment_pending": "bg-violet-100 text-violet-900",
    "confirmed": "bg-emerald-100 text-emerald-900",
    "completed": "bg-stone-200 text-stone-800",
    "no_show": "bg-rose-100 text-rose-900",
    "rejected": "bg-red-100 text-red-900",
    "cancelled": "bg-red-100 text-red-900",
    "draft": "bg-stone-100 text-stone-700",
}


@register.filter
def status_badge(status: str) -> str:
    """Tailwind classes for a status badge (colour is never the only signal: the label shows)."""
    return BADGES.get(status, "bg-stone-100 text-stone-700")


@register.filter
def book_again_id(extra_tags: str) -> int | None:
    """The booking a message offers to book the client's next session from (its extra tags
    "book-again:<id>", staff.views._act), or None."""
    for tag in str(extra_tags or "").split():
        if tag.startswith("book-again:") and tag[len("book-again:") :].isdigit():
            return int(tag[len("book-again:") :])
    return None


@register.filter
def words(value: str) -> str:
    """`email_resent` -> `email resent`."""
    return str(value or "").replace("_", " ")


@register.simple_tag
def clinic_time() -> str:
    """Which zone wall-clock times are in: 'In India Standard Time (IST).'"""
    return clinic_time_hint()


@register.filter
def waiting(since: datetime, now: datetime) -> str:
    """How long a request has waited: 'waiting 3 hours, 5 minutes'; 'just arrived' in its first
    minute (timesince says '0 minutes')."""
    if now - since < timedelta(minutes=1):
        return "just arrived"
    return f"waiting {timesince(since, now)}"
