"""The staff portal: written by the staff-portal work."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def dashboard(request: HttpRequest) -> HttpResponse:  # pragma: no cover - replaced
    raise NotImplementedError
