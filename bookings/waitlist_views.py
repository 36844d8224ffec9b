"""The waitlist, for clients: join (when no time fits), confirm the address from the emailed
link, and leave from any waitlist email. Links carry secrets: only their POST acts, and the
pages are private (no cache, no Referer). Rules are in services (waitlist_*)."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from bookings import selectors, services
from bookings.errors import BookingError, TokenInvalid
from bookings.forms import WaitlistForm
from bookings.models import Clinic, WaitlistEntry, WaitlistToken
from bookings.ratelimit import client_ip, ratelimit_hit
from bookings.tokens import waitlist_token_get
from bookings.views import LINK_PROBLEM_TITLES, private_page, speak_as_booked, speak_as_link, wait_text
from bookings.wizard import back_to_run_url


def _initial(request: HttpRequest) -> dict[str, object]:
    """The wizard's choices so far, carried in the "join the waitlist" link."""
    initial: dict[str, object] = {
        "date_from": timezone.localdate(),
        "date_to": timezone.localdate() + timedelta(days=14),
    }
    for name in ("session_type", "mode", "counsellor"):
        value = request.GET.get(name, "")[:20]
        if value:
            initial[name] = value
    return initial


# What a refused form held, in the visitor's session: the page shown again after a change of
# language (a GET) has it, refused again in the new language. Kept a little while only.
WAITLIST_TYPED = "waitlist_typed"
WAITLIST_TYPED_SECONDS = 30 * 60


def _typed_kept(request: HttpRequest, form: WaitlistForm) -> None:
    request.session[WAITLIST_TYPED] = {
        "at": int(time.time()),
        "data": {name: request.POST.get(name, "") for name in form.fields},
    }


def _typed_back(request: HttpRequest) -> dict[str, str] | None:
    kept = request.session.pop(WAITLIST_TYPED, None)
    if isinstance(kept, dict) and time.time() - kept.get("at", 0) < WAITLIST_TYPED_SECONDS:
        return kept.get("data")
    return None


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def waitlist_join(request: HttpRequest) -> HttpResponse:
    typed = request.POST if request.method == "POST" else _typed_back(request)
    form = WaitlistForm(typed, initial=_initial(request))
    context: dict[str, object] = {
        "form": form,
        "horizon_days": settings.BOOKING_HORIZON_DAYS,
        # Read only when no kind of session can be booked, to say whom to contact instead.
        "clinic": SimpleLazyObject(Clinic.load),
        # "Back" to the booking the client came from, as they left it (kept by the form's address).
        "back_url": back_to_run_url(request.GET.get("run", "")),
        "form_action": reverse("bookings:waitlist_join")
        + (f"?{urlencode({'run': request.GET['run'][:64]})}" if request.GET.get("run") else ""),
    }
    if request.method != "POST":
        if typed is not None and not form.is_valid():
            context["error_items"] = form.error_summary()
        return render(request, "bookings/waitlist_join.html", context)
    if not form.is_valid():
        _typed_kept(request, form)
        context["error_items"] = form.error_summary()
        return render(request, "bookings/waitlist_join.html", context, status=400)
    data = form.cleaned_data
    wait = ratelimit_hit(scope="waitlist_join", key=f"ip:{client_ip(request)}") or ratelimit_hit(
        scope="waitlist_join", key=f"email:{data['email']}"
    )
    if wait:
        context["error_items"] = [
            (
                "",
                gettext("You have asked several times already. Please try again in %(wait)s.")
                % {"wait": wait_text(wait)},
            )
        ]
        response = render(request, "bookings/waitlist_join.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        services.waitlist_join(
            client_name=data["client_name"],
            email=data["email"],
            session_type=data["session_type"],
            mode=data["mode"],
            counsellor=data["counsellor"],
            date_from=data["date_from"],
            date_to=data["date_to"],
            language=translation.get_language(),
        )
    except BookingError as exc:
        if exc.field in form.fields:  # beside its field, and in the summary
            form.add_error(exc.field, exc.message)
            context["error_items"] = form.error_summary()
        else:
            context["error_items"] = [("", exc.message)]
        _typed_kept(request, form)
        return render(request, "bookings/waitlist_join.html", context, status=409)
    # On to a page of its own, so that a reload or a change of language does not join again.
    request.session[WAITLIST_LINK_SENT_TO] = data["email"]
    return HttpResponseRedirect(reverse("bookings:waitlist_sent"), status=303)


# The address a waitlist confirmation link was last sent to, in the visitor's session.
WAITLIST_LINK_SENT_TO = "waitlist_link_sent_to"


@never_cache
@require_safe
def waitlist_sent(request: HttpRequest) -> HttpResponse:
    email = request.session.get(WAITLIST_LINK_SENT_TO)
    if not email:
        return HttpResponseRedirect(reverse("bookings:waitlist_join"))
    return render(
        request, "bookings/waitlist_sent.html", {"email": email, "link_hours": settings.VERIFICATION_LINK_HOURS}
    )


def _link_problem(request: HttpRequest, exc: TokenInvalid) -> HttpResponse:
    link = exc.link
    if link is not None:
        speak_as_booked(request, link.entry)
    if exc.reason == "used" and link is not None:
        # Pressed already (Back, a second tab): the page says what the press did, as it did then.
        entry = link.entry
        if link.purpose == WaitlistToken.Purpose.VERIFY and entry.verified_at and entry.status in _PLACE_KEPT:
            return render(request, "bookings/waitlist_done.html", {"entry": entry, "joined": True})
        if link.purpose == WaitlistToken.Purpose.LEAVE and entry.status == WaitlistEntry.State.LEFT:
            return render(request, "bookings/waitlist_done.html", {"entry": entry, "left": True})
    context = {
        "title": LINK_PROBLEM_TITLES.get(exc.reason, LINK_PROBLEM_TITLES["unknown"]),
        "message": exc.message,
        "reason": exc.reason,
        "purpose": "waitlist",
    }
    return render(request, "bookings/link_problem.html", context, status=404 if exc.reason == "unknown" else 410)


# A confirmed place that is still on the waitlist.
_PLACE_KEPT = (WaitlistEntry.State.WAITING, WaitlistEntry.State.OFFERED)


def _link_page(request: HttpRequest, token: str, purpose: str) -> HttpResponse:
    """GET of an emailed waitlist link: what pressing its button will do."""
    try:
        link = waitlist_token_get(raw=token, purpose=purpose)
    except TokenInvalid as exc:
        return _link_problem(request, exc)
    speak_as_booked(request, link.entry)
    return render(request, "bookings/waitlist_link.html", {"entry": link.entry, "purpose": purpose, "token": token})


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def waitlist_verify(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return _link_page(request, token, WaitlistToken.Purpose.VERIFY)
    speak_as_link(request, token, waitlist=True)
    try:
        entry = services.waitlist_verify(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc)
    except BookingError as exc:
        return render(request, "bookings/waitlist_done.html", {"error": exc.message}, status=409)
    speak_as_booked(request, entry)
    context: dict[str, object] = {"entry": entry, "joined": True, "book_now_url": ""}
    if selectors.waitlist_free_times_exist(entry):
        query = {"type": entry.session_type.slug, "mode": entry.mode, "lang": entry.language}
        if entry.counsellor is not None:
            query["counsellor"] = entry.counsellor.slug
        context["book_now_url"] = f"{reverse('bookings:wizard')}?{urlencode(query)}"
    return render(request, "bookings/waitlist_done.html", context)


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def waitlist_leave(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        return _link_page(request, token, WaitlistToken.Purpose.LEAVE)
    speak_as_link(request, token, waitlist=True)
    try:
        entry = services.waitlist_leave(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc)
    speak_as_booked(request, entry)
    return render(request, "bookings/waitlist_done.html", {"entry": entry, "left": True})
