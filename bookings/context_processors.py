from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext


def clinic(request: HttpRequest) -> dict[str, object]:
    """Site-wide values every page may show. No queries: this runs on every page."""
    return {
        "clinic_name": settings.CLINIC_NAME,
        "crisis_help_text": gettext(settings.CRISIS_HELP_TEXT),
    }
