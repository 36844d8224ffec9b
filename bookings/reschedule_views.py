"""Clients moving their own session: choose a new time on the booking page's "move" page (the
wizard's day-by-day picker), then confirm from an emailed single-use link. Like cancelling,
only the POST from that link changes anything, so neither a mail scanner nor someone who only
saw the booking page can move a session. The rules are in services.booking_reschedule."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from bookings import selectors, services
from bookings.errors import BookingError, TokenInvalid
from bookings.forms import id_from
from bookings.models import Booking, Clinic, LinkToken, Slot
from bookings.notifications import manage_path
from bookings.ratelimit import ratelimit_hit
from bookings.slot_picker import slot_picker
from bookings.templatetags.mindsettler import link_minutes
from bookings.tokens import token_get
from bookings.views import _link_problem, private_page, speak_as_booked, speak_as_link, wait_text


def _picker_context(booking: Booking, token: str, *, day: str, chosen: str) -> dict[str, object]:
    problem = services.reschedule_problem_for_client(booking=booking)
    context: dict[str, object] = {
        "booking": booking,
        "token": token,
        "problem": problem,
        "clinic": Clinic.load(),
        "link_minutes": settings.RESCHEDULE_LINK_MINUTES,
        "moves_left": max(settings.RESCHEDULE_LIMIT - services.reschedule_moves_used(booking=booking), 0),
        "error_items": [],
        "slot_error": "",
    }
    if problem is None:
        context.update(
            slot_picker(
                session_type=booking.session_type,
                counsellor=booking.counsellor,
                mode=booking.mode,
                day=day,
                chosen=chosen,
            )
        )
    return context


def _render(request: HttpRequest, context: dict[str, object], status: int = 200) -> HttpResponse:
    template = "bookings/reschedule.html#picker" if request.htmx else "bookings/reschedule.html"
    return render(request, template, context, status=status)


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def reschedule(request: HttpRequest, token: str) -> HttpResponse:
    """Choose a new time. Day buttons (POST `day`) show another day's times; "Continue"
    (POST `slot`) emails the link that confirms the move."""
    try:
        booking = selectors.booking_for_page(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.MANAGE, token=token)
    speak_as_booked(request, booking)
    source = request.POST if request.method == "POST" else request.GET
    chosen = source.get("slot", "")[:20]
    day = source.get("day", "")[:10]
    if request.method == "POST" and "day" in request.POST and not request.htmx:
        # A day button only shows that day. Without JavaScript: 303 to the page showing it (the
        # time chosen on another day kept), at the picker, so Back and reload never re-send.
        query = urlencode({name: value for name, value in (("day", day), ("slot", chosen)) if value})
        url = reverse("bookings:reschedule", args=[token])
        return HttpResponseRedirect(f"{url}?{query}#slot-picker" if query else f"{url}#slot-picker", status=303)
    context = _picker_context(booking, token, day=day, chosen=chosen)
    if request.method != "POST" or "day" in request.POST or context["problem"]:
        return _render(request, context, status=409 if request.method == "POST" and context["problem"] else 200)

    chosen_id = id_from(chosen)
    slot = Slot.objects.select_related("counsellor").filter(pk=chosen_id).first() if chosen_id is not None else None
    if slot is None:
        message = (
            _("Choose a new time.") if not chosen else _("That time is no longer available. Please choose another.")
        )
        context["error_items"] = [("slot-picker", message)]
        context["slot_error"] = message  # beside the times too
        return _render(request, context, status=400)
    wait = ratelimit_hit(scope="reschedule_request", key=f"booking:{booking.pk}")
    if wait:
        context["error_items"] = [
            (
                "",
                gettext("We have sent several emails about moving this booking. Please try again in %(wait)s.")
                % {"wait": wait_text(wait)},
            )
        ]
        response = _render(request, context, status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        services.booking_reschedule_request(booking=booking, slot=slot)
    except BookingError as exc:
        context["error_items"] = [("slot-picker", exc.message)]
        context["slot_error"] = exc.message
        return _render(request, context, status=409)
    messages.success(
        request,
        gettext(
            "We have emailed you a link to confirm the new time. It works once, for %(duration)s. "
            "Your booking stays as it is until you confirm."
        )
        % {"duration": link_minutes(settings.RESCHEDULE_LINK_MINUTES)},
    )
    url = reverse("bookings:booking_page", args=[token])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url, status=303)


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def reschedule_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: GET shows the old and new times and one button; its POST moves."""
    clinic = Clinic.load()
    if request.method != "POST":
        try:
            link = token_get(raw=token, purpose=LinkToken.Purpose.RESCHEDULE)
        except TokenInvalid as exc:
            return _link_problem(request, exc, purpose=LinkToken.Purpose.RESCHEDULE, token=token)
        booking = selectors.booking_with_session(link.booking_id)
        speak_as_booked(request, booking)
        new_slot = Slot.objects.select_related("counsellor").get(pk=link.slot_id)
        context = {
            "booking": booking,
            "new_slot": new_slot,
            "token": token,
            "clinic": clinic,
            "problem": services.reschedule_problem_for_client(booking=booking, asked_at=link.created_at),
        }
        return render(request, "bookings/reschedule_confirm.html", context)
    speak_as_link(request, token)
    try:
        booking = services.booking_reschedule_confirm(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.RESCHEDULE, token=token)
    except BookingError as exc:
        # The time was taken meanwhile, or it is too late: nothing changed.
        return render(request, "bookings/reschedule_refused.html", {"clinic": clinic, "error": exc.message}, status=409)
    booking = selectors.booking_with_session(booking.pk)
    speak_as_booked(request, booking)
    context = {"booking": booking, "clinic": clinic, "booking_url": manage_path(booking)}
    return render(request, "bookings/rescheduled.html", context)
