"""The booking wizard at /book/: written by the client-journey work."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def wizard(request: HttpRequest) -> HttpResponse:  # pragma: no cover - replaced
    raise NotImplementedError
