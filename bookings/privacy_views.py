"""Privacy requests from the booking page: erase my data, send me my data.

Both start from the booking page (whose link only the client has) and finish from a link
emailed to the booking's address, so only the owner of that inbox can erase or see the data.
Erasure changes state, so its link shows one button and only the POST acts.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from bookings import selectors, services
from bookings.errors import TokenInvalid
from bookings.lifecycle import CLIENT_LABELS, HELD_REQUEST_LABEL
from bookings.models import ACTIVE_STATUSES, Booking, Clinic, LinkToken, Status
from bookings.ratelimit import ratelimit_hit
from bookings.tokens import token_get
from bookings.views import (
    _booking_page_context,
    _link_problem,
    _too_many,
    private_page,
    speak_as_booked,
    speak_as_link,
    wait_text,
)

# Marked here, translated when sent (in the language of the request).
SENT = {
    LinkToken.Purpose.ERASE: gettext_noop(
        "We have emailed you a link to erase your data. It works for %(hours)s hours. Nothing changes until you use it."
    ),
    LinkToken.Purpose.EXPORT: gettext_noop(
        "We have emailed you a link to send you a copy of your data. It works for %(hours)s hours. "
        "Nothing changes until you use it."
    ),
}


def _request(request: HttpRequest, token: str, purpose: str) -> HttpResponse:
    try:
        booking = selectors.booking_for_page(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.MANAGE, token=token)
    speak_as_booked(request, booking)  # its message, on the page it goes back to
    wait = ratelimit_hit(scope="data_request", key=f"booking:{booking.pk}")
    if wait:
        context = _booking_page_context(booking, token)
        return _too_many(
            request,
            "bookings/booking_page.html",
            context,
            wait,
            gettext(
                "We have sent several privacy emails already (the last one is the one that works). "
                "You can ask again in %(wait)s."
            )
            % {"wait": wait_text(wait)},
        )
    services.privacy_request(booking=booking, purpose=purpose)
    messages.success(
        request,
        gettext(SENT[purpose]) % {"hours": services.PRIVACY_LINK_HOURS},
    )
    return HttpResponseRedirect(reverse("bookings:booking_page", args=[token]) + "#privacy", status=303)


@private_page
@require_POST
def erase_request(request: HttpRequest, token: str) -> HttpResponse:
    return _request(request, token, LinkToken.Purpose.ERASE)


@private_page
@require_POST
def export_request(request: HttpRequest, token: str) -> HttpResponse:
    return _request(request, token, LinkToken.Purpose.EXPORT)


def _active_bookings(email: str) -> list[Booking]:
    return list(Booking.objects.filter(email=email, status__in=ACTIVE_STATUSES).order_by("created_at"))


def _erasure_waits_for(email: str) -> dict[str, list[Booking]]:
    """What an erasure waits for, as its page says it: bookings still going ahead, else
    bookings with money still to settle (services.privacy_erase refuses for either)."""
    active = _active_bookings(email)
    return {"active": active, "owed": [] if active else services.bookings_owed_money(email)}


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def erase(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed erasure link: GET explains and shows one button; the POST erases."""
    clinic = Clinic.load()
    if request.method == "POST":
        speak_as_link(request, token)
        try:
            count = services.privacy_erase(token=token)
        except TokenInvalid as exc:
            return _link_problem(request, exc, purpose=LinkToken.Purpose.ERASE, token=token)
        except services.ErasureRefused as exc:
            link = token_get(raw=token, purpose=LinkToken.Purpose.ERASE)
            context = {"token": token, "clinic": clinic, "error": exc.message, **_erasure_waits_for(link.booking.email)}
            return render(request, "bookings/privacy/erase_confirm.html", context, status=409)
        return render(request, "bookings/privacy/erased.html", {"count": count, "clinic": clinic})
    try:
        link = token_get(raw=token, purpose=LinkToken.Purpose.ERASE)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.ERASE, token=token)
    speak_as_booked(request, link.booking)
    context = {
        "token": token,
        "clinic": clinic,
        **_erasure_waits_for(link.booking.email),
        "retention_months": settings.RETENTION_MONTHS,
    }
    return render(request, "bookings/privacy/erase_confirm.html", context)


@private_page
@require_safe
def export(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed export link: a page showing what is held about the address, and the whole
    of it (with every booking's history and payments) as a JSON file at `?download`."""
    download = "download" in request.GET
    try:
        held = services.privacy_held(token=token, full=download)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.EXPORT, token=token)
    if not download:
        speak_as_booked(request, held.link.booking)
        rows = [
            (b, HELD_REQUEST_LABEL if b.status == Status.DRAFT and b.verified_at else CLIENT_LABELS[b.status])
            for b in held.bookings
        ]
        return render(request, "bookings/privacy/export.html", {"held": held, "rows": rows, "token": token})
    data = services.privacy_export(held=held)
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="mindsettler-my-data.json"'
    return response
