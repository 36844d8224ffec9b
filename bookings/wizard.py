"""The booking wizard at /book/: four steps, each a real form.

What the client types is kept in their session under a per-run key (the `run` query
parameter, also the submission key of the draft), so Back, reload and "change" links never
lose it, and two tabs never mix. With htmx each step is swapped in place and the URL pushed;
without JavaScript the same forms post and redirect (post/redirect/get). The rules (what
may be chosen, what makes a draft) are in services; this module only moves between steps.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_htmx.http import retarget

from bookings import selectors, services
from bookings.errors import BookingError, RequestHeld, SlotUnavailable
from bookings.forms import (
    AboutStepForm,
    ConcernsStepForm,
    ConsentForm,
    CorrectEmailForm,
    CounsellorChoice,
    JourneyForm,
    SessionStepForm,
    id_from,
)
from bookings.models import Booking, Clinic, Counsellor, Mode, Slot, Status
from bookings.ratelimit import client_ip, ratelimit_hit
from bookings.slot_picker import slot_picker
from bookings.templatetags.mindsettler import minutes, money, when
from bookings.views import LANGUAGE_CODES, speak, wait_text
from mindsettler.compiled import CompiledQuery, columns, instance

STEPS = ("session", "about", "concerns", "review")
HEADINGS = {
    "session": _("Choose your session"),
    "about": _("About you"),
    "concerns": _("What brings you"),
    "review": _("Check your answers and send"),
    "done": _("Check your email"),
}
# Which earlier steps must be complete before a step can be shown.
NEEDS = {"session": (), "about": ("session",), "concerns": ("session", "about"), "review": ("session", "about")}
FIELDS = {
    "session": ("session_type", "mode", "counsellor", "slot", "preferred_times", "day"),
    "about": ("client_name", "email", "phone", "age"),
    "concerns": ("concerns",),
}
INLINE = {"session": ("preferred_times",), "about": ("client_name", "email", "phone"), "concerns": ("concerns",)}
SESSION_KEY = "booking_wizard"
# A client may have a few runs open (tabs, restarts); older ones are forgotten.
MAX_RUNS = 5
SLUG = re.compile(r"[-a-zA-Z0-9_]{1,50}")  # a SlugField's value


# --- Run state in the session -------------------------------------------------------------


def _runs(request: HttpRequest) -> dict[str, dict[str, Any]]:
    return request.session.get(SESSION_KEY, {})


def _run_save(request: HttpRequest, key: str, run: dict[str, Any]) -> None:
    runs = dict(_runs(request))
    run["touched"] = time.time()
    runs[key] = run
    newest = sorted(runs.items(), key=lambda item: item[1].get("touched", 0), reverse=True)[:MAX_RUNS]
    request.session[SESSION_KEY] = dict(newest)


def _run_start(request: HttpRequest) -> str:
    key = secrets.token_urlsafe(24)
    run = {"data": {"session": _preselection(request)}, "valid": [], "booking_id": None}
    # `?lang=`: a link from one of our emails (a waitlist offer, "book again") opens the run in
    # the language of the emails it came from, whatever the browser's; the switcher wins.
    if (language := request.GET.get("lang", "")) in LANGUAGE_CODES:
        run["language"] = language
    _run_save(request, key, run)
    return key


def _preselection(request: HttpRequest) -> dict[str, str]:
    """Choices carried in the link that opened the wizard: `?slot=<id>` (the chatbot's links),
    `?type=<session type slug>`, `?mode=<way of meeting>` (a waitlist offer's) and
    `?counsellor=<slug>`. Anything unusable is ignored; the step says why."""
    initial: dict[str, str] = {}
    types = selectors.session_types_active()
    wanted = request.GET.get("type", "")
    chosen = next((st for st in types if st.slug == wanted), None) or (types[0] if len(types) == 1 else None)
    if chosen is not None:
        initial["session_type"] = str(chosen.pk)
        if len(chosen.modes) == 1:
            initial["mode"] = chosen.modes[0]
    raw_slot = request.GET.get("slot", "")
    slot = None
    if (slot_id := id_from(raw_slot)) is not None:
        slot = Slot.objects.filter(pk=slot_id).select_related("counsellor").first()
        initial["slot"] = raw_slot
        if slot is not None:
            initial["counsellor"] = str(slot.counsellor_id)
            initial["day"] = timezone.localtime(slot.start).date().isoformat()
    # A way of meeting the session type is held in and the slot's counsellor offers; else the
    # client chooses, as without it.
    wanted_mode = request.GET.get("mode", "")
    if (
        "mode" not in initial
        and wanted_mode in Mode.values
        and (chosen is None or wanted_mode in chosen.modes)
        and (slot is None or wanted_mode in slot.counsellor.modes)
    ):
        initial["mode"] = wanted_mode
    # `?counsellor=<slug>`: "Book with ..." on a counsellor's public profile.
    wanted_counsellor = request.GET.get("counsellor", "")
    # Only a slug is looked up (PostgreSQL refuses text with a NUL in it: a hand-made link).
    if SLUG.fullmatch(wanted_counsellor) and "counsellor" not in initial:
        found = Counsellor.objects.filter(slug=wanted_counsellor, is_active=True).values_list("pk", flat=True)
        # Or a "Book with ..." link shared before the profile was given another link name.
        renamed = None if found else selectors.counsellor_by_previous_slug(wanted_counsellor)
        if found or renamed:
            initial["counsellor"] = str(found[0] if found else renamed.pk)
    return initial


def _step_url(key: str, step: str, *, back_to_review: bool = False) -> str:
    query = {"run": key, "step": step}
    if back_to_review:
        query["return"] = "review"
    return f"{reverse('bookings:wizard')}?{urlencode(query)}"


def _pick(post: Any, step: str, stored: dict[str, str]) -> dict[str, str]:
    data = {name: post.get(name, "") for name in FIELDS[step]}
    if step == "session" and "slot" not in post:
        # Radios of other days are not on the page: keep the time chosen there.
        data["slot"] = stored.get("slot", "")
    return data


# --- The view -----------------------------------------------------------------------------


@dataclass
class Step:
    request: HttpRequest
    key: str
    run: dict[str, Any]
    name: str

    @property
    def url(self) -> str:
        return _step_url(self.key, self.name, back_to_review=self.back_to_review)

    @property
    def back_to_review(self) -> bool:
        return self.request.GET.get("return") == "review" and self.name != "review"

    def stored(self, step: str | None = None) -> dict[str, str]:
        return dict(self.run["data"].get(step or self.name, {}))

    def save(self, data: dict[str, str], *, valid: bool | None = None) -> None:
        self.run["data"][self.name] = data
        if valid is not None:
            done = set(self.run["valid"]) - {self.name}
            self.run["valid"] = sorted(done | {self.name} if valid else done)
        _run_save(self.request, self.key, self.run)


@never_cache  # Pages hold what the client typed: no shared or back-forward caches.
@require_http_methods(["GET", "HEAD", "POST"])
def wizard(request: HttpRequest) -> HttpResponse:
    key = request.GET.get("run", "")
    run = _runs(request).get(key) if key else None
    if run is None:
        if key and request.GET.get("new") == "1" and settings.SESSION_COOKIE_NAME not in request.COOKIES:
            # The redirect below just started this run, and the browser did not send the
            # session's cookie back (cookies off), or the link was opened again after the
            # session ended: another fresh start would redirect for ever.
            return render(request, "bookings/wizard_lost.html", status=400)
        sent = request.GET.get("step", "")
        if request.method == "POST" and sent in FIELDS and "_validate" not in request.POST:
            # A step sent after the session ended with the page open (12 hours on, say): what
            # was just typed is kept, in a fresh run checked again from the first step, and
            # the client is told why the rest is gone.
            key = _run_start(request)
            run = _runs(request)[key]
            run["data"][sent] = {**run["data"].get(sent, {}), **_pick(request.POST, sent, {})}
            run["notice"] = gettext(
                "This page was open a long time, so your earlier answers were cleared. What you had just "
                "entered is kept: please go through each step again."
            )
            _run_save(request, key, run)
            return _go(Step(request, key, run, "session"), "session")
        # A fresh start, or a run this browser no longer has (the session ended).
        return redirect(f"{_step_url(_run_start(request), 'session')}&new=1")
    if run.get("language"):
        speak(request, run["language"])
    if run.get("booking_id"):
        return _done(Step(request, key, run, "done"))
    name = request.GET.get("step", "session")
    if name not in STEPS:
        name = "session"
    missing = next((s for s in NEEDS[name] if s not in run["valid"]), None)
    if missing is not None:
        return redirect(_step_url(key, missing))
    step = Step(request, key, run, name)
    if name == "review":
        return _review(step)
    return _form_step(step)


def _form_for(step: Step, data: dict[str, str] | None, lists: dict[str, Any]) -> JourneyForm:
    if step.name == "session":
        form: JourneyForm = SessionStepForm(
            data, initial=step.stored(), session_types=lists["session_types"], counsellors=lists["counsellors"]
        )
    elif step.name == "about":
        form = AboutStepForm(data, initial=step.stored())
    else:
        form = ConcernsStepForm(data, initial=step.stored())
    form.inline_validate(url=step.url, names=INLINE[step.name])
    return form


def _lists(step_name: str, *, to_show: bool = False) -> dict[str, Any]:
    """The session step's choices. `to_show`: only shown (a GET, a refresh), so of each
    counsellor only the name is read, as a CounsellorChoice (50 models cost 0.2 ms); answers
    are checked against whole rows (services read their modes)."""
    if step_name != "session":
        return {}
    if to_show:
        counsellors: list[Any] = [CounsellorChoice(*row) for row in _COUNSELLOR_NAMES.rows()]
    else:
        counsellors = [instance(Counsellor, row) for row in _COUNSELLORS()]
    return {"session_types": selectors.session_types_active(), "counsellors": counsellors}


# Read on every view of the session step: compiled once (mindsettler/compiled.py).
_COUNSELLORS = CompiledQuery(lambda: Counsellor.objects.filter(is_active=True).values(*columns(Counsellor)))
_COUNSELLOR_NAMES = CompiledQuery(  # in CounsellorChoice's order
    lambda: Counsellor.objects.filter(is_active=True).values("id", "display_name")
)


def _form_step(step: Step) -> HttpResponse:
    request = step.request
    if request.method != "POST":
        lists = _lists(step.name, to_show=True)
        return _render_step(step, _form_for(step, None, lists), lists=lists)

    stored = step.stored()
    data = _pick(request.POST, step.name, stored)
    field = request.POST.get("_validate", "")
    if field:
        return _validate_field(step, data, field, _lists(step.name))
    if step.name == "session" and ("_refresh" in request.POST or "day" in request.POST):
        # Looking at other days or other counsellors is not an answer yet: no errors, and the
        # choices are only shown.
        lists = _lists(step.name, to_show=True)
        slot_id = id_from(data["slot"])
        if slot_id is not None and not _free_slots(data, lists).filter(pk=slot_id).exists():
            # The new choices rule the chosen time out (a Couples session does not fit the
            # hour chosen from a counsellor's profile, say): choose again, and say why the
            # time is no longer chosen.
            data["slot"] = ""
            step.run["notice"] = _ruled_out_notice(slot_id)
        step.save(data, valid=False)
        if not request.htmx:
            # 303 to the step, which shows what was saved (and the notice, once): Back and
            # reload never re-send the form. A day button's answer opens at the picker. These
            # choices have no errors to carry: they are checked on "Continue".
            fragment = "" if "_refresh" in request.POST else "#slot-picker"
            return HttpResponseRedirect(step.url + fragment, status=303)
        # A day button (not "_refresh") with the same kind of session changes nothing but the
        # picker: with htmx, only the picker is sent (the modes offered follow the kind).
        picker_only = "_refresh" not in request.POST and data["session_type"] == stored.get("session_type", "")
        return _render_step(step, _form_for(step, None, lists), lists=lists, picker_only=picker_only)

    lists = _lists(step.name)
    form = _form_for(step, data, lists)
    valid = form.is_valid()
    step.save(data, valid=valid)
    if "_back" in request.POST and step.name in STEPS[1:]:
        # What was typed is kept, checked quietly: its errors wait for "Continue".
        return _go(step, STEPS[STEPS.index(step.name) - 1])
    if not valid:
        return _render_step(step, form, lists=lists)
    following = "review" if step.back_to_review else STEPS[STEPS.index(step.name) + 1]
    return _go(step, following)


def _ruled_out_notice(slot_id: int) -> str:
    start = Slot.objects.filter(pk=slot_id).values_list("start", flat=True).first()
    if start is None:
        return gettext("The time you chose is no longer available. Please choose another time.")
    # Shown on the wizard's page, so written as HTML writes it: the zone kept with its time.
    return gettext("The time you had chosen, %(start)s, is not free for these choices. Please choose another time.") % {
        "start": when(start, autoescape=True)
    }


def _validate_field(step: Step, data: dict[str, str], field: str, lists: dict[str, Any]) -> HttpResponse:
    """htmx asks about one field as it loses focus: answer with that field alone."""
    if field not in INLINE[step.name]:
        return HttpResponse(status=400)
    step.save({**step.stored(), field: data[field]})
    form = _form_for(step, data, lists)
    form.is_valid()
    if not data[field].strip():
        # Passing through an empty field is not a mistake yet; Continue will say so.
        form.errors.pop(field, None)
    return render(step.request, "bookings/_field.html", {"field": form[field]})


def _go(step: Step, name: str, *, back_to_review: bool = False) -> HttpResponse:
    """Move to another step: a redirect without JavaScript; with htmx, the step itself and
    its URL pushed to the history, so Back and reload land on it. `back_to_review`: that
    step's Continue returns to the review."""
    url = _step_url(step.key, name, back_to_review=back_to_review)
    if not step.request.htmx:
        # 303: the browser follows with a GET, so a reload never re-sends the form.
        return HttpResponseRedirect(url, status=303)
    target = Step(step.request, step.key, step.run, name)
    target.request = _as_get(step.request, name, back_to_review=back_to_review)
    response = _review(target) if name == "review" else _done(target) if name == "done" else _form_step(target)
    response["HX-Push-Url"] = url
    return response


def _as_get(request: HttpRequest, name: str, *, back_to_review: bool = False) -> HttpRequest:
    """The same request, seen as the GET of step `name` (to render the next step in place)."""
    clone = request.__class__.__new__(request.__class__)
    clone.__dict__ = {**request.__dict__}
    clone.method = "GET"
    clone.GET = request.GET.copy()
    clone.GET["step"] = name
    clone.GET.pop("return", None)
    if back_to_review:
        clone.GET["return"] = "review"
    return clone


# --- Rendering ----------------------------------------------------------------------------


def _render_step(
    step: Step,
    form: JourneyForm | None,
    *,
    lists: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    status: int = 200,
    errors: list[tuple[str, str]] | None = None,
    picker_only: bool = False,
) -> HttpResponse:
    """The step, as a page or (htmx) as the fragment that replaces the step. `picker_only`: the
    session step's picker alone, swapped in place of the picker (htmx's target for the form is
    the step, so the response names the picker instead: HX-Retarget)."""
    ctx: dict[str, Any] = {
        "step": step.name,
        "step_template": f"bookings/wizard/_{step.name}.html",
        "steps": [(s, HEADINGS[s]) for s in STEPS],
        "step_number": STEPS.index(step.name) + 1 if step.name in STEPS else None,
        "heading": HEADINGS[step.name],
        # A run in the language of the email that opened it keeps it in what its forms send:
        # if the session has ended meanwhile, the fresh run starts in it again (_run_start).
        "action": step.url + (f"&lang={language}" if (language := step.run.get("language")) else ""),
        "form": form,
        "run": step.key,
        "error_items": errors if errors is not None else (form.error_summary() if form is not None else []),
        # The form steps have their own Back button, which keeps what was typed.
        "back_url": _step_url(step.key, STEPS[STEPS.index(step.name) - 1]) if step.name == "review" else "",
        **(extra or {}),
    }
    if step.name == "session":
        ctx.update(_picker(step, lists or {}))
        refused = step.run.pop("errors", None)
        ctx["slot_error"] = ""
        if refused:
            # Why the review sent the client back here: an error, in the summary and by the times.
            ctx["error_items"] = [*ctx["error_items"], *(tuple(item) for item in refused)]
            ctx["slot_error"] = " ".join(message for anchor, message in refused if anchor == "slot-picker")
        if step.run.pop("notice", None) or refused:
            _run_save(step.request, step.key, step.run)  # said once
    if picker_only:
        return retarget(
            render(step.request, "bookings/wizard/_session.html#picker", ctx, status=status), "#slot-picker"
        )
    partial = step.request.htmx and not step.request.htmx.history_restore_request
    template = "bookings/wizard.html#step" if partial else "bookings/wizard.html"
    return render(step.request, template, ctx, status=status)


def _picker(step: Step, lists: dict[str, Any]) -> dict[str, Any]:
    """The session step's picker: the shared day-by-day picker, filtered by the choices so far."""
    values = step.stored()
    filters = _filters(values, lists)
    session_type = filters["session_type"]
    picker = slot_picker(
        **filters, day=values.get("day", ""), chosen=values.get("slot", ""), offered=lists["session_types"]
    )
    picker["picker_notice"] = step.run.get("notice", "") or picker["picker_notice"]
    return {
        **picker,
        "values": values,
        "session_types": lists["session_types"],
        "modes": [(m, Mode(m).label) for m in (session_type.modes if session_type else Mode.values)],
        "waitlist_url": _waitlist_url(values, run=step.key),
        # Read only when no session type is offered: the step then gives the clinic's phone and email.
        "clinic": SimpleLazyObject(Clinic.load),
    }


def _waitlist_url(values: dict[str, str], *, run: str) -> str:
    """ "Join the waitlist", carrying the choices made so far (the form checks them) and the
    run, for its "Back" to return to."""
    query = {k: values[k] for k in ("session_type", "mode", "counsellor") if values.get(k)} | {"run": run}
    return f"{reverse('bookings:waitlist_join')}?{urlencode(query)}"


def back_to_run_url(run: str) -> str:
    """The wizard's first step of the run `run` (from a link back to it), or a new run's."""
    if not run or len(run) > 64 or not run.replace("-", "").replace("_", "").isalnum():
        return reverse("bookings:wizard")
    return _step_url(run, "session")


def _filters(values: dict[str, str], lists: dict[str, Any]) -> dict[str, Any]:
    """The picker's filters from what the client chose so far (unusable values: no filter)."""
    types = {str(st.pk): st for st in lists["session_types"]}
    counsellor = next((c for c in lists["counsellors"] if str(c.pk) == values.get("counsellor", "")), None)
    if isinstance(counsellor, CounsellorChoice):  # the queries filter by the model
        counsellor = instance(Counsellor, {"id": counsellor.pk, "display_name": counsellor.display_name})
    return {
        "session_type": types.get(values.get("session_type", "")),
        "counsellor": counsellor,
        "mode": values.get("mode") if values.get("mode") in Mode.values else None,
    }


def _free_slots(values: dict[str, str], lists: dict[str, Any]) -> QuerySet[Slot]:
    return selectors.slots_free_for_client(**_filters(values, lists))


# --- Review and submit --------------------------------------------------------------------


def _answers(step: Step) -> tuple[SessionStepForm, AboutStepForm, ConcernsStepForm]:
    lists = _lists("session")
    session = SessionStepForm(step.stored("session"), **lists)
    about = AboutStepForm(step.stored("about"))
    concerns = ConcernsStepForm(step.stored("concerns"))
    return session, about, concerns


def _back_to_picker(step: Step, errors: list[tuple[str, str]]) -> HttpResponse:
    """The chosen time went while the client was filling in the form: back to the first
    step, with the reason as an error (summary at the top, next to the times), the chosen
    time's day shown and everything else kept. Once a new time is chosen, Continue returns
    to the review (which sends the client on to any later step no longer complete)."""
    data = step.stored("session")
    slot_id = id_from(data.get("slot", ""))
    start = Slot.objects.filter(pk=slot_id).values_list("start", flat=True).first() if slot_id is not None else None
    if start is not None:
        data["day"] = timezone.localdate(start).isoformat()
    data["slot"] = ""
    step.run["data"]["session"] = data
    step.run["valid"] = [s for s in step.run["valid"] if s != "session"]
    step.run["errors"] = errors
    _run_save(step.request, step.key, step.run)
    return _go(step, "session", back_to_review=True)


def _review(step: Step) -> HttpResponse:
    request = step.request
    session, about, concerns = _answers(step)
    if not session.is_valid():
        return _back_to_picker(step, session.error_summary())
    if not about.is_valid():
        return _go(step, "about")
    concerns.is_valid()
    consent = ConsentForm(request.POST if request.method == "POST" else None)
    ctx = {
        "session": session.cleaned_data,
        "about": about.cleaned_data,
        "concerns": concerns.cleaned_data.get("concerns", ""),
        "age_label": dict(Booking.AgeConfirmation.choices).get(about.cleaned_data["age"], ""),
        "mode_label": Mode(session.cleaned_data["mode"]).label,
        "change_urls": {s: _step_url(step.key, s, back_to_review=True) for s in ("session", "about", "concerns")},
        "policy_version": settings.POLICY_VERSION,
        "cutoff_hours": settings.CANCELLATION_CUTOFF_HOURS,
    }
    if request.method != "POST" or not consent.is_valid():
        return _render_step(step, consent, extra=ctx)
    if request.POST.get("policy_shown") != settings.POLICY_VERSION:
        # A new privacy notice or cancellation policy was published while this page was open:
        # the boxes were ticked for the old one. The booking records the version agreed to,
        # so the client reads and agrees to the new one first.
        message = gettext(
            "Our privacy notice and cancellation policy have changed since this page was shown. Please "
            "read them (version %(version)s) and agree again to send your request."
        ) % {"version": settings.POLICY_VERSION}
        return _render_step(step, ConsentForm(), extra=ctx, status=409, errors=[("", message)])
    session_type = session.cleaned_data["session_type"]
    if request.POST.get("price_shown") != str(session_type.price):
        # The clinic changed the price while this page was open: the client sees the new one
        # above and sends again, rather than asking for an amount they were never shown.
        message = gettext(
            "The price of this session has changed to %(price)s since this page was shown. Please "
            "check it above and send your request again."
        ) % {"price": money(session_type.price, session_type.currency)}
        return _render_step(step, consent, extra=ctx, status=409, errors=[("", message)])
    if request.POST.get("length_shown") != str(session_type.duration_minutes):
        # Its length too (fixed only once a booking uses the type): the invitation says it.
        message = gettext(
            "The length of this session has changed to %(length)s since this page was shown. Please "
            "check it above and send your request again."
        ) % {"length": minutes(session_type.duration_minutes)}
        return _render_step(step, consent, extra=ctx, status=409, errors=[("", message)])

    email = about.cleaned_data["email"]
    wait = ratelimit_hit(scope="wizard_submit_ip", key=client_ip(request)) or ratelimit_hit(
        scope="wizard_submit_email", key=services.email_normalise(email)
    )
    if wait:
        message = gettext("You have sent several booking requests in a short time. Please try again in %(wait)s.") % {
            "wait": wait_text(wait)
        }
        response = _render_step(step, consent, extra=ctx, status=429, errors=[("", message)])
        response["Retry-After"] = str(wait)
        return response
    choice = session.cleaned_data
    try:
        booking, _created = services.booking_submit(
            submission_key=step.key,
            session_type=choice["session_type"],
            mode=choice["mode"],
            counsellor=choice["counsellor"],
            preferred_slot=choice["slot"],
            preferred_times=choice["preferred_times"],
            client_name=about.cleaned_data["client_name"],
            email=email,
            phone=about.cleaned_data["phone"],
            age_confirmation=about.cleaned_data["age"],
            concerns=concerns.cleaned_data.get("concerns", ""),
            # The client's emails follow the language they booked in.
            language=translation.get_language(),
        )
    except SlotUnavailable as exc:
        return _back_to_picker(step, [("slot-picker", str(exc.message))])
    except BookingError as exc:
        return _render_step(step, consent, extra=ctx, status=409, errors=[("", exc.message)])
    # From here on the session keeps only which draft this run made, not what it says.
    step.run.clear()
    step.run.update({"data": {}, "valid": [], "booking_id": booking.pk})
    _run_save(request, step.key, step.run)
    return _go(step, "done")


def _done(step: Step) -> HttpResponse:
    """After sending: "check your email", with a rate-limited "send it again", to the same
    address or to a corrected one. Without JavaScript a sent email is answered with a redirect
    to this page (post/redirect/get), so a reload never sends it again."""
    request = step.request
    booking = Booking.objects.filter(pk=step.run["booking_id"]).only("pk", "email", "status", "verified_at").first()
    if booking is None:  # purged after DRAFT_RETENTION_HOURS: start again
        return redirect("bookings:wizard")
    # Confirmed, and held for the client's last session to be recorded (services.booking_verify):
    # its address is confirmed, and can no longer be corrected here.
    held = booking.status == Status.DRAFT and booking.verified_at is not None
    is_draft = booking.status == Status.DRAFT and not held
    posted = request.method == "POST" and is_draft
    correcting = posted and "_email" in request.POST
    resending = posted and "_resend" in request.POST and not correcting
    # "Sent again", said once on the page the redirect leads to.
    resent = request.method != "POST" and bool(step.run.pop("resent", False))
    if resent:
        _run_save(request, step.key, step.run)
    # The address as typed, to correct in place (a typo is the usual mistake).
    email_form = CorrectEmailForm(request.POST if correcting else None, initial={"email": booking.email})
    extra: dict[str, Any] = {
        "booking": booking,
        "is_draft": is_draft,
        "held": held,
        "held_message": RequestHeld.default_message,
        "resent": resent,
        "email_form": email_form,
        "link_hours": settings.VERIFICATION_LINK_HOURS,
    }
    if not (correcting or resending):
        return _render_step(step, None, extra=extra)
    if correcting and not email_form.is_valid():
        return _render_step(step, None, extra=extra, errors=email_form.error_summary())
    email = email_form.cleaned_data["email"] if correcting else booking.email
    wait, message = _resend_wait(request, booking=booking, email=email)
    if wait:
        if correcting:
            # Next to the address, in the open panel: the client sees why nothing was sent.
            email_form.add_error("email", message)
            errors = email_form.error_summary()
        else:
            errors = [("", message)]
        response = _render_step(step, None, extra=extra, status=429, errors=errors)
        response["Retry-After"] = str(wait)
        return response
    booking = services.booking_resend_verification(booking=booking, email=email if correcting else None)
    if not request.htmx:
        # 303: the browser follows with a GET, so a reload never sends the email again.
        step.run["resent"] = True
        _run_save(request, step.key, step.run)
        return HttpResponseRedirect(_step_url(step.key, "done"), status=303)
    extra.update(booking=booking, resent=True, email_form=CorrectEmailForm(initial={"email": booking.email}))
    return _render_step(step, None, extra=extra)


def _resend_wait(request: HttpRequest, *, booking: Booking, email: str) -> tuple[int | None, str]:
    """Whether the verification email may go to `email` now: (None, "") if so, else the seconds
    to wait and why, in words for the client.

    The same address again is a resend, limited per booking and address. A corrected address is
    limited as a new request would be (per IP and per address), so that one draft cannot email
    address after address; it is not held back by the resends to the mistyped one (the client
    most likely to have pressed "Send the email again" is the one with a typo), and it gets a
    fresh allowance of resends of its own."""
    if email != booking.email:
        wait = ratelimit_hit(scope="wizard_submit_ip", key=client_ip(request)) or ratelimit_hit(
            scope="wizard_submit_email", key=email
        )
        message = gettext("We have sent several emails in a short time. Please try again in %(wait)s.")
    else:
        wait = ratelimit_hit(scope="verify_resend", key=f"booking:{booking.pk}:{email}")
        message = gettext("We have sent this email several times already. Please try again in %(wait)s.")
    return wait, (message % {"wait": wait_text(wait)} if wait else "")
