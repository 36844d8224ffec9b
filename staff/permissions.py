"""Who on the staff may see and do what. Every portal view goes through this module.

Administrators see everything. A counsellor sees only bookings assigned to them (and their own
availability); a booking that belongs to someone else answers 404, as if it did not exist, so
the portal never confirms that another counsellor's client exists. Pages that are for
administrators only answer 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from bookings.models import Booking, Counsellor, Slot
from staff.models import User

View = Callable[..., HttpResponse]


def is_staff_member(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.role)


def is_administrator(user: Any) -> bool:
    return is_staff_member(user) and user.is_administrator


def away_to(request: HttpRequest, url: str) -> HttpResponse:
    """Send the browser to `url`, a page of its own (the sign-in page, say). An htmx request,
    made for an action or a part of the page, would follow a redirect and put that page
    inside the one on screen: it is told with a 401 and HX-Redirect, which htmx opens whole."""
    if request.htmx:
        response = HttpResponse(status=401)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def sign_in_again(request: HttpRequest, **query: Any) -> HttpResponse:
    """To the sign-in page, to come back after it to the page the person was on: for an htmx
    request, the page on screen (not the action's or the fragment's address)."""
    here = (request.htmx.current_url_abs_path if request.htmx else None) or request.get_full_path()
    return away_to(request, f"{reverse('account_login')}?{urlencode({'next': here, **query}, safe='/')}")


def staff_required(view: View | None = None, *, admin: bool = False) -> Any:
    """Sign-in required (redirect to the login page); `admin=True` also requires the
    administrator role (403 otherwise). The second factor is enforced by
    staff.middleware.StaffSessionMiddleware before any /staff/ view runs."""

    def decorate(func: View) -> View:
        @wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not is_staff_member(request.user):
                return sign_in_again(request)
            if admin and not is_administrator(request.user):
                raise PermissionDenied("Only administrators can open this page.")
            response = func(request, *args, **kwargs)
            # Portal pages show clients' names and words: no shared or browser cache keeps them
            # (a clinic's shared computer, Back after signing out).
            add_never_cache_headers(response)
            return response

        wrapper.staff_admin_only = admin  # type: ignore[attr-defined]
        return wrapper

    if view is not None:
        return decorate(view)
    return decorate


def admin_required(view: View) -> View:
    return staff_required(view, admin=True)


# --- Query scoping ----------------------------------------------------------------------


def bookings_for(user: Any, qs: QuerySet[Booking] | None = None) -> QuerySet[Booking]:
    """The bookings `user` may see: all for administrators, their own for counsellors."""
    qs = Booking.objects.all() if qs is None else qs
    if is_administrator(user):
        return qs
    if is_staff_member(user):
        return qs.filter(counsellor__user_id=user.pk)
    return qs.none()


def counsellors_for(user: Any) -> QuerySet[Counsellor]:
    """The counsellors whose availability `user` may manage, each with their account (its
    pages say when it is deactivated)."""
    if is_administrator(user):
        return Counsellor.objects.select_related("user")
    if is_staff_member(user):
        return Counsellor.objects.filter(user_id=user.pk).select_related("user")
    return Counsellor.objects.none()


def slots_for(user: Any, qs: QuerySet[Slot] | None = None) -> QuerySet[Slot]:
    qs = Slot.objects.all() if qs is None else qs
    if is_administrator(user):
        return qs
    if is_staff_member(user):
        return qs.filter(counsellor__user_id=user.pk)
    return qs.none()


def scope_stand_in(role: str, member_id: int = 0) -> User:
    """An active member of staff with `role` and id `member_id`, for building once a query
    that bookings_for or slots_for scope (staff.selectors' compiled queries): those scopes
    depend on nothing else of the member. If they ever do, this is the place to say so."""
    return User(pk=member_id, role=role, is_active=True)


def scope_names_member(role: str) -> bool:
    """Whether the scopes of a member with `role` name the member's id (a counsellor's own
    bookings and slots) rather than letting them see everything (an administrator)."""
    return not is_administrator(scope_stand_in(role))


def booking_or_404(user: Any, pk: int, qs: QuerySet[Booking] | None = None) -> Booking:
    """The booking if `user` may see it; 404 otherwise (never 403: that would confirm it exists)."""
    booking = bookings_for(user, qs).filter(pk=pk).first()
    if booking is None:
        raise Http404("No such booking.")
    return booking


def counsellor_or_404(user: Any, pk: int) -> Counsellor:
    counsellor = counsellors_for(user).filter(pk=pk).first()
    if counsellor is None:
        raise Http404("No such counsellor.")
    return counsellor


def can_read_client_words(user: Any, booking: Booking) -> bool:
    """The client's own words (concerns, preferred times): administrators and the assigned
    counsellor only."""
    if is_administrator(user):
        return True
    return bool(is_staff_member(user) and booking.counsellor_id and booking.counsellor.user_id == user.pk)


def can_edit_amount(user: Any) -> bool:
    return is_administrator(user)
