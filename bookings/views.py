"""Public pages for clients. They call services and selectors; they hold no booking rules.

Pages reached from emailed links carry a secret in their URL: they are never cached and
send no Referer to other sites, so the token stays out of their logs and shared caches. Only a
POST changes anything, so mail scanners that open links verify or cancel nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.i18n import set_language

from bookings import selectors, services
from bookings.errors import ActiveBookingExists, BookingError, RequestHeld, TokenInvalid, TooLate
from bookings.forms import AckLookupForm, CounsellorFilterForm, EmailLookupForm
from bookings.lifecycle import CLIENT_LABELS, NEXT_REQUEST_HELD, NEXT_STEPS, next_step
from bookings.models import ACTIVE_STATUSES, Booking, Clinic, LinkToken, Mode, Status, WaitlistEntry, WaitlistToken
from bookings.notifications import manage_path
from bookings.ratelimit import client_ip, ratelimit_hit
from bookings.templatetags.mindsettler import link_minutes
from bookings.tokens import token_get, token_hash, token_lookup_hash


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "bookings/home.html",
        {
            "session_types": selectors.session_types_active(),
            "cancellation_cutoff_hours": settings.CANCELLATION_CUTOFF_HOURS,
        },
    )


@require_safe
def privacy(request: HttpRequest) -> HttpResponse:
    context = {
        "policy_version": settings.POLICY_VERSION,
        # What retention does (bookings.services.privacy), not a number written in the text.
        "draft_retention_hours": settings.DRAFT_RETENTION_HOURS,
        "retention_months": settings.RETENTION_MONTHS,
    }
    return render(request, "bookings/privacy.html", context)


@require_safe
def policies(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "bookings/policies.html",
        {
            "policy_version": settings.POLICY_VERSION,
            "cancellation_cutoff_hours": settings.CANCELLATION_CUTOFF_HOURS,
            "payment_window_hours": settings.PAYMENT_WINDOW_HOURS,
            "payment_before_hours": settings.PAYMENT_DEADLINE_BEFORE_SESSION_HOURS,
            "reschedule_limit": settings.RESCHEDULE_LIMIT,
        },
    )


# --- Helpers ------------------------------------------------------------------------------


def wait_text(seconds: int) -> str:
    """'about 3 minutes': how long until a rate limit lets the client try again."""
    if seconds < 60:
        return gettext("a minute")
    minutes = math.ceil(seconds / 60)
    return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}


# Token pages send no Referer to any other site. Not "no-referrer": under that policy
# browsers send `Origin: null` with the page's own form posts ("Confirm my email", cancel,
# pay), and Django's CSRF check rightly refuses them.
PRIVATE_REFERRER_POLICY = "same-origin"


def private_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """For pages whose URL holds a secret: no Referer leaves the site, no cache keeps them."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = PRIVATE_REFERRER_POLICY
        add_never_cache_headers(response)
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapped


LANGUAGE_CODES = frozenset(code for code, _name in settings.LANGUAGES)


def speak_as_booked(request: HttpRequest, booking: Booking | WaitlistEntry) -> None:
    """A page reached through a booking's (or a waitlist place's) emailed link is in its
    language, the one its emails are in, unless the visitor chose a language on this site
    (the switcher's cookie): a client who booked in Hindi and opens the link on their phone
    reads Hindi."""
    speak(request, booking.language)


def speak_as_link(request: HttpRequest, token: str, *, waitlist: bool = False) -> None:
    """speak_as_booked for the booking (or waitlist place) of an emailed link, whether or not
    the link still works, before acting on it: what its POST answers (a refusal, a link
    already used or expired) is in the language of the emails it came from."""
    if settings.LANGUAGE_COOKIE_NAME in request.COOKIES:
        return
    try:
        hashed = token_lookup_hash(token)
    except TokenInvalid:
        return
    links = (
        WaitlistToken.objects.values_list("entry__language")
        if waitlist
        else LinkToken.objects.values_list("booking__language")
    )
    language = links.filter(token_hash=hashed).first()
    if language is not None:
        speak(request, language[0])


def speak(request: HttpRequest, language: str) -> None:
    """Speak `language` (if it is one of the site's) unless the visitor chose one here."""
    if (
        settings.LANGUAGE_COOKIE_NAME not in request.COOKIES
        and language != request.LANGUAGE_CODE  # type: ignore[attr-defined]
        and language in LANGUAGE_CODES
    ):
        translation.activate(language)
        request.LANGUAGE_CODE = language  # type: ignore[attr-defined]


def _too_many(request: HttpRequest, template: str, context: dict[str, object], wait: int, what: str) -> HttpResponse:
    context = {
        **context,
        "rate_limited": gettext("%(what)s Please try again in %(wait)s.") % {"what": what, "wait": wait_text(wait)},
    }
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(wait)
    return response


LINK_PROBLEM_TITLES = {
    "unknown": _("This link does not work"),
    "used": _("This link has already been used"),
    "expired": _("This link has expired"),
    "revoked": _("This link is no longer valid"),
}


def _link_already_done(exc: TokenInvalid, *, purpose: str, booking: Booking | None) -> str:
    """ "received", "held", "cancelled" or "moved" when a used confirmation, cancellation or move
    link is why its booking is a request (or beyond) or held for the last session, cancelled or
    at the link's new time; else ""."""
    if purpose == LinkToken.Purpose.VERIFY and booking is not None and booking.status == Status.DRAFT:
        # Held for the client's last session to be recorded (services.booking_verify): confirmed,
        # whichever of its links this is (used, or an older one replaced or expired).
        return "held" if booking.verified_at is not None and booking.anonymised_at is None else ""
    # Once the booking's page has closed, an old email opens no record of the counselling.
    if exc.reason != "used" or booking is None or selectors.booking_page_closed(booking):
        return ""
    if purpose == LinkToken.Purpose.VERIFY and booking.status != Status.DRAFT:
        return "received"
    if purpose == LinkToken.Purpose.CANCEL and booking.status == Status.CANCELLED:
        return "cancelled"
    if (
        purpose == LinkToken.Purpose.RESCHEDULE
        and booking.status in ACTIVE_STATUSES  # not cancelled, or held, since it moved
        and booking.slot_id is not None
        and booking.slot_id == exc.link.slot_id
    ):
        return "moved"
    return ""


def _link_problem(request: HttpRequest, exc: TokenInvalid, *, purpose: str, token: str) -> HttpResponse:
    """A calm page for an emailed link that cannot be used, saying what to do instead."""
    booking = exc.link.booking if exc.link is not None else None
    if booking is not None:
        speak_as_booked(request, booking)
    can_resend = (
        purpose == LinkToken.Purpose.VERIFY
        and booking is not None
        and booking.status == Status.DRAFT
        and booking.verified_at is None  # held: confirmed already
    )
    if booking is not None and booking.anonymised_at is not None:
        return render(request, "bookings/link_erased.html", status=410)
    context = {
        "reason": exc.reason,
        "title": LINK_PROBLEM_TITLES.get(exc.reason, LINK_PROBLEM_TITLES["unknown"]),
        "message": exc.message,
        "purpose": purpose,
        "token": token,
        "can_resend": can_resend,
        "link_hours": settings.VERIFICATION_LINK_HOURS,
        "cancel_link_minutes": settings.CANCELLATION_LINK_MINUTES,
        "reschedule_link_minutes": settings.RESCHEDULE_LINK_MINUTES,
        # A booking page that has closed opens by no link: the page says so, rather than
        # offering a fresh link that would lead back here.
        "page_closed": purpose == LinkToken.Purpose.MANAGE
        and booking is not None
        and exc.reason == "expired"
        and selectors.booking_page_closed(booking),
        "page_days": settings.BOOKING_LINK_DAYS_AFTER_SESSION,
        "clinic": SimpleLazyObject(Clinic.load),
        # A link pressed twice (a double click, a second tab): the first press did what it
        # asked, and the page says so rather than leaving the client to wonder.
        "done": _link_already_done(exc, purpose=purpose, booking=booking),
        "held_message": RequestHeld.default_message,
        "booking": booking,
    }
    return render(request, "bookings/link_problem.html", context, status=404 if exc.reason == "unknown" else 410)


# --- Email verification -------------------------------------------------------------------


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def verify(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows one button; only its POST verifies (link scanners only GET)."""
    if request.method != "POST":
        try:
            link = token_get(raw=token, purpose=LinkToken.Purpose.VERIFY, related=("booking",))
        except TokenInvalid as exc:
            return _link_problem(request, exc, purpose=LinkToken.Purpose.VERIFY, token=token)
        speak_as_booked(request, link.booking)
        return render(request, "bookings/verify.html", {"token": token})
    speak_as_link(request, token)
    try:
        booking = services.booking_verify(token=token)
    except RequestHeld:
        # As the email the address's owner reads: their last session is not named here.
        return render(request, "bookings/verify_held.html", {"held_days": settings.HELD_REQUEST_DAYS})
    except ActiveBookingExists:
        # Say no more than the email address's owner will read in their inbox.
        return render(request, "bookings/verify_active.html", status=409)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.VERIFY, token=token)
    except BookingError as exc:
        return render(request, "bookings/verify.html", {"token": token, "error": exc.message}, status=409)
    speak_as_booked(request, booking)
    context = {
        "booking": booking,
        "label": CLIENT_LABELS[booking.status],
        "next_step": NEXT_STEPS[booking.status],
        # booking_verify read the time the client chose, and whether it can still be had.
        "time_lost": selectors.preferred_time_lost(booking, notice=True),
    }
    return render(request, "bookings/verified.html", context)


@private_page
@require_POST
def verify_resend(request: HttpRequest, token: str) -> HttpResponse:
    """A new verification email for an expired or replaced link. The answer is the same
    whether or not one was sent, and it only ever goes to the draft's own address."""
    wait = ratelimit_hit(scope="verify_resend", key=f"ip:{client_ip(request)}") or ratelimit_hit(
        scope="verify_resend", key=f"link:{token_hash(token)}"
    )
    speak_as_link(request, token)
    if wait:
        return _too_many(request, "bookings/verify_resent.html", {}, wait, _("We have sent this email several times."))
    services.booking_resend_verification_for_token(token=token)
    return render(request, "bookings/verify_resent.html", {"link_hours": settings.VERIFICATION_LINK_HOURS})


# --- Status lookup ------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def status(request: HttpRequest) -> HttpResponse:
    """Look up by acknowledgement ID (status and next step only) or by email (the same
    answer whatever we hold; the links go to the inbox). Both POST, so IDs and addresses
    stay out of URLs and logs. An email lookup then goes on to status_sent, so that a reload
    or a change of language does not ask for the links again."""
    lookup = request.POST.get("lookup", "") if request.method == "POST" else ""
    ack_form = AckLookupForm(request.POST) if lookup == "ack" else None
    email_form = EmailLookupForm(request.POST) if lookup == "email" else None
    context: dict[str, object] = {
        "ack_form": ack_form,
        "email_form": email_form,
        # A blank field is the same for everyone: the page renders it once per language,
        # from a form made only then.
        "blank_ack_form": SimpleLazyObject(AckLookupForm),
        "blank_email_form": SimpleLazyObject(EmailLookupForm),
        "lookup": lookup,
        # Each value the page may show, set: the template engine pays for an unknown name
        # with an exception.
        **dict.fromkeys(("error_items", "rate_limited", "ack_id", "result", "emailed")),
    }
    if lookup not in ("ack", "email"):
        return render(request, "bookings/status.html", context)

    wait = ratelimit_hit(scope="status_lookup", key=f"ip:{client_ip(request)}")
    if wait:
        return _too_many(request, "bookings/status.html", context, wait, _("You have made several lookups in a row."))
    form = ack_form if lookup == "ack" else email_form
    if not form.is_valid():
        context["error_items"] = form.error_summary()
        return render(request, "bookings/status.html", context)

    if lookup == "ack":
        found = selectors.booking_status_by_ack_id(form.cleaned_data["ack_id"])
        context["ack_id"] = form.cleaned_data["ack_id"]
        if found is not None:
            context["result"] = {
                "label": CLIENT_LABELS[found.status],
                "next_step": next_step(found.status, session_over=found.session_over),
                "erased": found.erased,
            }
        return render(request, "bookings/status.html", context)

    email = services.email_normalise(form.cleaned_data["email"])
    # A per-address limit keeps anyone from filling an inbox; it changes nothing the
    # visitor sees, so it reveals nothing either. A worker finds the bookings, so that this
    # request takes as long for an address that has booked as for one that has not.
    if ratelimit_hit(scope="links_email", key=f"email:{email}") is None:
        services.booking_links_request(email=email, language=translation.get_language())
    request.session[LINKS_SENT_TO] = email
    return HttpResponseRedirect(reverse("bookings:status_sent"), status=303)


def language_set(request: HttpRequest) -> HttpResponse:
    """The language switcher: Django's set_language, which sets the language and redirects to
    the page it was on. The answer to a lookup by acknowledgement ID is the answer to a POST
    (the ID stays out of URLs, and so out of logs, and out of the session), and a redirect's GET
    would show the empty form: the status page's switcher sends the lookup along
    (bookings/status.html), and is redirected with a 307, for which the browser posts the same
    form to the page again, now read in the new language. No JavaScript needed. The lookup
    counts again towards the visitor's limit; a lookup by email, which sends an email, is never
    sent along."""
    response = set_language(request)
    if (
        request.method == "POST"
        and request.POST.get("lookup") == "ack"
        and response.status_code == 302
        and response["Location"] == reverse("bookings:status")
    ):
        response.status_code = 307
    return response


# The address the links were last sent to, in the visitor's session, for the page saying so.
LINKS_SENT_TO = "links_sent_to"


@never_cache
@require_safe
def status_sent(request: HttpRequest) -> HttpResponse:
    """The status page saying where the links went (after status's email lookup)."""
    email = request.session.get(LINKS_SENT_TO)
    if not email:
        return HttpResponseRedirect(reverse("bookings:status"))
    context: dict[str, object] = {
        "blank_ack_form": SimpleLazyObject(AckLookupForm),
        "blank_email_form": SimpleLazyObject(EmailLookupForm),
        **dict.fromkeys(("ack_form", "email_form", "lookup", "error_items", "rate_limited", "ack_id", "result")),
        "emailed": email,
    }
    return render(request, "bookings/status.html", context)


# --- The private booking page -------------------------------------------------------------


def _booking_page_context(booking: Booking, token: str) -> dict[str, object]:
    can_cancel = services.cancellation_open_for_client(booking=booking)
    # A confirmed session that has ended, not yet recorded: nothing to join, move or cancel,
    # nor to add to a calendar; the next session is what comes next.
    over = booking.status == Status.CONFIRMED and booking.session_over
    meeting_url = ""
    # The room is shared with the client only once the session is paid for.
    if booking.status == Status.CONFIRMED and booking.mode == Mode.ONLINE and not over:
        meeting_url = booking.join_url
    # Their request for the next one may be held for this one already (one query, then only).
    next_held = over and selectors.request_held_for(booking)
    return {
        "booking": booking,
        "token": token,
        "over": over,
        "label": CLIENT_LABELS[booking.status],
        "next_step": NEXT_REQUEST_HELD
        if next_held
        else next_step(booking.status, session_over=booking.session_over, on_booking_page=True),
        "timeline": selectors.booking_timeline(booking),
        # booking_for_page read the time asked for, and whether it can still be had.
        "time_lost": selectors.preferred_time_lost(booking) if booking.status == Status.PENDING else "",
        "can_cancel": can_cancel,
        "cancel_closed": booking.is_active and not can_cancel and not over,
        # Read only if the page shows the address or the clinic's phone (an in-person
        # session, a closed cancellation window): most pages need no query for it.
        "clinic": SimpleLazyObject(Clinic.load),
        "cutoff_hours": settings.CANCELLATION_CUTOFF_HOURS,
        "cancel_link_minutes": settings.CANCELLATION_LINK_MINUTES,
        "meeting_url": meeting_url,
        "reschedule": {"show": False} if over else services.reschedule_state_for_client(booking=booking),
        "book_again": None if next_held else selectors.book_again(booking),
        "rate_limited": None,  # _too_many's message; set, as an unknown name costs an exception
    }


@private_page
@require_safe
def booking_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        booking = selectors.booking_for_page(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.MANAGE, token=token)
    speak_as_booked(request, booking)
    return render(request, "bookings/booking_page.html", _booking_page_context(booking, token))


@private_page
@require_POST
def booking_cancel_request(request: HttpRequest, token: str) -> HttpResponse:
    """ "Cancel this booking": email a single-use confirmation link. Cancelling itself needs
    that link, so someone who only saw this page cannot cancel."""
    try:
        booking = selectors.booking_for_page(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.MANAGE, token=token)
    speak_as_booked(request, booking)  # its messages, on the page it goes back to
    wait = ratelimit_hit(scope="cancel_request", key=f"booking:{booking.pk}")
    if wait:
        context = _booking_page_context(booking, token)
        return _too_many(
            request, "bookings/booking_page.html", context, wait, _("We have sent several cancellation emails already.")
        )
    try:
        services.booking_cancel_request(booking=booking)
    except TooLate as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            gettext(
                "We have emailed you a link to confirm the cancellation. It works once, for "
                "%(duration)s. Your booking stays as it is until you confirm."
            )
            % {"duration": link_minutes(settings.CANCELLATION_LINK_MINUTES)},
        )
    return HttpResponseRedirect(reverse("bookings:booking_page", args=[token]), status=303)


# --- Confirming a cancellation ------------------------------------------------------------


@private_page
@require_http_methods(["GET", "HEAD", "POST"])
def cancel_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed cancellation link: GET shows one button, its POST cancels."""
    clinic = Clinic.load()
    if request.method != "POST":
        try:
            link = token_get(raw=token, purpose=LinkToken.Purpose.CANCEL)
        except TokenInvalid as exc:
            return _link_problem(request, exc, purpose=LinkToken.Purpose.CANCEL, token=token)
        # Paid at the clinic's desk, its money goes back from there, not online: the page says so.
        booking = selectors.booking_with_session(link.booking_id, paid_at_clinic=True)
        speak_as_booked(request, booking)
        context = {
            "booking": booking,
            "token": token,
            "clinic": clinic,
            "open": services.cancellation_open_for_client(booking=booking, asked_at=link.created_at),
            "cutoff_hours": settings.CANCELLATION_CUTOFF_HOURS,
        }
        return render(request, "bookings/cancel_confirm.html", context)
    speak_as_link(request, token)
    try:
        booking = services.booking_cancel_confirm(token=token)
    except TokenInvalid as exc:
        return _link_problem(request, exc, purpose=LinkToken.Purpose.CANCEL, token=token)
    except BookingError as exc:
        # Too close to the session, or no longer active: nothing changed, the link still stands.
        context = {"clinic": clinic, "error": exc.message, "too_late": isinstance(exc, TooLate)}
        return render(request, "bookings/cancel_refused.html", context, status=409)
    booking = selectors.booking_with_session(booking.pk)
    speak_as_booked(request, booking)
    context = {"booking": booking, "clinic": clinic, "booking_url": manage_path(booking)}
    return render(request, "bookings/cancelled.html", context)


# --- Counsellor profiles ----------------------------------------------------------------


@require_safe
def counsellors(request: HttpRequest) -> HttpResponse:
    """'Our counsellors': public profiles only, never anything about clients; narrowed by
    language and way of meeting when the clinic's counsellors differ in them."""
    everyone = list(selectors.counsellors_public())
    asked = "language" in request.GET or "mode" in request.GET  # not any other parameter (?utm_source=)
    form = CounsellorFilterForm(request.GET if asked else None, counsellors=everyone)
    return render(
        request,
        "bookings/counsellors.html",
        {
            "counsellors": form.matching(everyone),
            "form": form if form.narrows_anything or asked else None,
            "filtered": form.narrows(),
            "error_items": form.error_summary() if asked else [],
        },
    )


@require_safe
def counsellor_profile(request: HttpRequest, slug: str) -> HttpResponse:
    counsellor = selectors.counsellors_public().filter(slug=slug).first()
    if counsellor is None:
        # A link shared before an administrator gave the profile another link name.
        renamed = selectors.counsellor_by_previous_slug(slug)
        if renamed is None:
            raise Http404("No such counsellor.")
        url = reverse("bookings:counsellor", args=[renamed.slug])
        query = request.META.get("QUERY_STRING", "")
        response = HttpResponsePermanentRedirect(f"{url}?{query}" if query else url)
        # Browsers keep a permanent redirect for as long as they like: given back its old name
        # later, the profile would loop for anyone who had followed this one. A day bounds it.
        patch_cache_control(response, max_age=24 * 60 * 60)
        return response
    return render(request, "bookings/counsellor.html", {"counsellor": counsellor})
