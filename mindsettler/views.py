from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from bookings.api import problems
from bookings.context_processors import crisis_help_text

logger = logging.getLogger(__name__)


@require_safe
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database check for load balancers: 200 or 503."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.error("healthz: database unavailable (%s)", type(exc).__name__)
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Staff in the portal get its layout and the way back to their work (a booking handed to
    another counsellor is gone from theirs); anyone else the public page."""
    from staff.permissions import is_staff_member

    staff = request.path_info.startswith("/staff/") and is_staff_member(getattr(request, "user", None))
    return render(request, "staff/404.html" if staff else "404.html", status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Refused: staff in the portal's layout (an administrators' page opened by a counsellor),
    anyone else in the public one."""
    from staff.permissions import is_staff_member

    template = "staff/403.html" if is_staff_member(getattr(request, "user", None)) else "403.html"
    return render(request, template, {"exception": str(exception or "")}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith(problems.API_PREFIX):
        return problems.server_error().response()
    # Passed in, not left to the context processors: this page must render whatever failed.
    return render(request, "500.html", {"crisis_help_text": crisis_help_text()}, status=500)


def too_many_requests(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    response = render(request, "429.html", status=429)
    response["Retry-After"] = "60"
    return response
