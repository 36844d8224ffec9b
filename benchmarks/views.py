"""The ceiling: what Django itself manages on this machine, through the full middleware stack.

`ceiling_trivial` returns a short response. `ceiling_query` runs one indexed query (the unique
acknowledgement-ID index) and renders a small template; endpoints are compared with it.
`ceiling_page` is that query shown in the site's layout with a form, as a first visit sees it:
what every public page pays before it shows anything of its own (for reading the table; no
endpoint is judged against it).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import get_template
from django.views.decorators.http import require_safe

from bookings.models import Booking


@require_safe
def ceiling_trivial(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def _booking(ack_id: str) -> dict[str, object] | None:
    """The ceilings' one query, by the unique acknowledgement-ID index."""
    return Booking.objects.filter(ack_id=ack_id).values("ack_id", "status", "updated_at").first()


@require_safe
def ceiling_query(request: HttpRequest, ack_id: str) -> HttpResponse:
    booking = _booking(ack_id)
    # Rendered without a request: no context processors, so exactly one query.
    html = get_template("benchmarks/ceiling.html").render({"booking": booking})
    return HttpResponse(html, status=200 if booking else 404)


@require_safe
def ceiling_page(request: HttpRequest, ack_id: str) -> HttpResponse:
    booking = _booking(ack_id)
    return render(request, "benchmarks/ceiling_page.html", {"booking": booking}, status=200 if booking else 404)
