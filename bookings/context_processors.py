from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext


def crisis_help_text() -> str:
    """Where to turn in a crisis (CRISIS_HELP_TEXT), in the active language: on every page and
    at the end of every email."""
    return gettext(settings.CRISIS_HELP_TEXT)


def clinic(request: HttpRequest) -> dict[str, object]:
    """Site-wide values every page may show. No queries: this runs on every page."""
    return {"clinic_name": settings.CLINIC_NAME, "crisis_help_text": crisis_help_text()}
