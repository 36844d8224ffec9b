"""Public pages for clients. They call services and selectors; they hold no booking rules."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from bookings.models import SessionType


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    session_types = SessionType.objects.filter(is_active=True)
    return render(
        request,
        "bookings/home.html",
        {"session_types": session_types, "cancellation_cutoff_hours": settings.CANCELLATION_CUTOFF_HOURS},
    )


@require_GET
def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "bookings/privacy.html", {"policy_version": settings.POLICY_VERSION})


@require_GET
def policies(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "bookings/policies.html",
        {
            "policy_version": settings.POLICY_VERSION,
            "cancellation_cutoff_hours": settings.CANCELLATION_CUTOFF_HOURS,
            "payment_window_hours": settings.PAYMENT_WINDOW_HOURS,
        },
    )


# verify, status, booking_page and cancel_confirm: written by the client-journey work.
def verify(request: HttpRequest, token: str) -> HttpResponse:  # pragma: no cover - replaced
    raise NotImplementedError


def status(request: HttpRequest) -> HttpResponse:  # pragma: no cover - replaced
    raise NotImplementedError


def booking_page(request: HttpRequest, token: str) -> HttpResponse:  # pragma: no cover - replaced
    raise NotImplementedError


def cancel_confirm(request: HttpRequest, token: str) -> HttpResponse:  # pragma: no cover - replaced
    raise NotImplementedError
