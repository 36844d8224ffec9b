"""Every staff URL for every role: anonymous, administrator, counsellor, another counsellor.

Expected: 302 (to sign in), 200 (allowed), 403 (administrators only), 404 (someone else's
booking or availability: the portal does not confirm that it exists), 400/409 (allowed, but
the empty form posted here is refused: the permission check passed).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import URLPattern, reverse
from django.utils import timezone

from bookings.models import Booking, Payment, Slot, Status
from staff import urls as staff_urls
from staff.permissions import bookings_for, scope_names_member, scope_stand_in, slots_for
from staff.tests.conftest import HX

ROLES = ("anonymous", "admin", "counsellor", "other")


@pytest.fixture
def world(admin_user, counsellor, other_counsellor, make_booking, slot):
    booking = make_booking(Status.PENDING, counsellor=counsellor, concerns="Private words")
    payment = Payment.objects.create(
        booking=booking, provider="sandbox", amount=booking.amount, currency="INR", needs_attention="Look at it."
    )
    return {"booking": booking, "counsellor": counsellor, "slot": slot, "payment": payment}


def feed_url(w) -> str:
    start = timezone.now() - timedelta(days=3)
    end = timezone.now() + timedelta(days=20)
    return reverse("staff:calendar_feed") + f"?start={start:%Y-%m-%dT%H:%M:%S}&end={end:%Y-%m-%dT%H:%M:%S}"


def b(w) -> int:
    return w["booking"].pk


def c(w) -> int:
    return w["counsellor"].pk


def t(w) -> int:
    return w["booking"].session_type_id


def u(w) -> int:
    return w["counsellor"].user_id


# (name, method, url builder, expected for anonymous, admin, counsellor, other counsellor)
MATRIX = [
    ("dashboard", "get", lambda w: reverse("staff:dashboard"), (302, 200, 200, 200)),
    # The emails the outbox gave up on, on the administrators' dashboard: an unknown one is 404.
    ("email_send_again", "post", lambda w: reverse("staff:email_send_again", args=[999999]), (302, 404, 403, 403)),
    ("emails_send_again", "post", lambda w: reverse("staff:emails_send_again"), (302, 302, 403, 403)),
    ("calendar", "get", lambda w: reverse("staff:calendar"), (302, 200, 200, 200)),
    ("calendar_feed", "get", feed_url, (302, 200, 200, 200)),
    ("calendar_publish", "post", lambda w: reverse("staff:calendar_publish"), (302, 400, 400, 400)),
    # A counsellor's own calendar address: administrators without a counsellor profile have none.
    ("calendar_app_new", "post", lambda w: reverse("staff:calendar_app_new"), (302, 404, 200, 200)),
    ("calendar_app_stop", "post", lambda w: reverse("staff:calendar_app_stop"), (302, 404, 302, 302)),
    # Outside sign-in, the token its credential: an unknown one is 404 for everyone, never a redirect.
    (
        "calendar_app_feed",
        "get",
        lambda w: reverse("staff:calendar_app_feed", kwargs={"token": "x" * 43}),
        (404, 404, 404, 404),
    ),
    ("booking_list", "get", lambda w: reverse("staff:booking_list"), (302, 200, 200, 200)),
    ("booking_export", "get", lambda w: reverse("staff:booking_export"), (302, 200, 403, 403)),
    ("booking_new", "get", lambda w: reverse("staff:booking_new"), (302, 200, 200, 200)),
    ("booking_new", "post", lambda w: reverse("staff:booking_new"), (302, 400, 400, 400)),
    ("booking_detail", "get", lambda w: reverse("staff:booking_detail", args=[b(w)]), (302, 200, 200, 404)),
    ("booking_approve", "post", lambda w: reverse("staff:booking_approve", args=[b(w)]), (302, 400, 400, 404)),
    ("booking_reject", "post", lambda w: reverse("staff:booking_reject", args=[b(w)]), (302, 400, 400, 404)),
    ("booking_complete", "post", lambda w: reverse("staff:booking_complete", args=[b(w)]), (302, 400, 400, 404)),
    ("booking_no_show", "post", lambda w: reverse("staff:booking_no_show", args=[b(w)]), (302, 400, 400, 404)),
    ("booking_cancel", "post", lambda w: reverse("staff:booking_cancel", args=[b(w)]), (302, 400, 400, 404)),
    ("booking_resend", "post", lambda w: reverse("staff:booking_resend", args=[b(w)]), (302, 409, 409, 404)),
    # Posted empty: the form's error, 400, for whoever may see the booking.
    ("booking_email", "post", lambda w: reverse("staff:booking_email", args=[b(w)]), (302, 400, 400, 404)),
    ("booking_move", "post", lambda w: reverse("staff:booking_move", args=[b(w)]), (302, 400, 400, 404)),
    ("booking_drop", "post", lambda w: reverse("staff:booking_drop", args=[b(w)]), (302, 400, 400, 404)),
    (
        "booking_meeting_url",
        "post",
        lambda w: reverse("staff:booking_meeting_url", args=[b(w)]),
        (302, 302, 302, 404),
    ),
    (
        "booking_payment_settle",
        "post",
        lambda w: reverse("staff:booking_payment_settle", args=[b(w), w["payment"].pk]),
        (302, 400, 403, 403),
    ),
    # Money taken at the desk: recorded by administrators only.
    (
        "booking_paid_at_clinic",
        "post",
        lambda w: reverse("staff:booking_paid_at_clinic", args=[b(w)]),
        (302, 400, 403, 403),
    ),
    ("availability_index", "get", lambda w: reverse("staff:availability_index"), (302, 200, 302, 302)),
    ("availability", "get", lambda w: reverse("staff:availability", args=[c(w)]), (302, 200, 200, 404)),
    (
        "availability_hours_add",
        "post",
        lambda w: reverse("staff:availability_hours_add", args=[c(w)]),
        (302, 400, 400, 404),
    ),
    (
        "availability_hours_delete",
        "post",
        lambda w: reverse("staff:availability_hours_delete", args=[c(w), 999999]),
        (302, 302, 302, 404),
    ),
    (
        "availability_generate",
        "post",
        lambda w: reverse("staff:availability_generate", args=[c(w)]),
        (302, 400, 400, 404),
    ),
    (
        "availability_slot_add",
        "post",
        lambda w: reverse("staff:availability_slot_add", args=[c(w)]),
        (302, 400, 400, 404),
    ),
    (
        "availability_slot_delete",
        "post",
        lambda w: reverse("staff:availability_slot_delete", args=[c(w), w["slot"].pk]),
        (302, 302, 302, 404),
    ),
    (
        "availability_blocked_add",
        "post",
        lambda w: reverse("staff:availability_blocked_add", args=[c(w)]),
        (302, 400, 400, 404),
    ),
    (
        "availability_blocked_delete",
        "post",
        lambda w: reverse("staff:availability_blocked_delete", args=[c(w), 999999]),
        (302, 302, 302, 404),
    ),
    ("availability_room", "post", lambda w: reverse("staff:availability_room", args=[c(w)]), (302, 400, 400, 404)),
    ("profile", "get", lambda w: reverse("staff:profile"), (302, 200, 302, 302)),
    ("profile_edit", "get", lambda w: reverse("staff:profile_edit", args=[c(w)]), (302, 200, 200, 404)),
    ("profile_edit", "post", lambda w: reverse("staff:profile_edit", args=[c(w)]), (302, 400, 400, 404)),
    ("team", "get", lambda w: reverse("staff:team"), (302, 200, 403, 403)),
    ("team_invite", "post", lambda w: reverse("staff:team_invite"), (302, 400, 403, 403)),
    ("team_reinvite", "post", lambda w: reverse("staff:team_reinvite", args=[999999]), (302, 404, 403, 403)),
    # Without the confirmation tick: 400 for administrators, 403 for counsellors.
    ("team_deactivate", "post", lambda w: reverse("staff:team_deactivate", args=[u(w)]), (302, 400, 403, 403)),
    ("team_calendar_stop", "post", lambda w: reverse("staff:team_calendar_stop", args=[u(w)]), (302, 302, 403, 403)),
    ("team_reactivate", "post", lambda w: reverse("staff:team_reactivate", args=[999999]), (302, 404, 403, 403)),
    # The counsellor's account has its profile already: 409 for administrators.
    (
        "team_counsellor_profile",
        "post",
        lambda w: reverse("staff:team_counsellor_profile", args=[u(w)]),
        (302, 409, 403, 403),
    ),
    (
        "team_second_factor_reset",
        "post",
        lambda w: reverse("staff:team_second_factor_reset", args=[u(w)]),
        (302, 400, 403, 403),
    ),
    ("report", "get", lambda w: reverse("staff:report"), (302, 200, 403, 403)),
    ("report_export", "get", lambda w: reverse("staff:report_export"), (302, 200, 403, 403)),
    ("clinic", "get", lambda w: reverse("staff:clinic"), (302, 200, 403, 403)),
    ("clinic", "post", lambda w: reverse("staff:clinic"), (302, 400, 403, 403)),
    ("session_type_new", "get", lambda w: reverse("staff:session_type_new"), (302, 200, 403, 403)),
    ("session_type_new", "post", lambda w: reverse("staff:session_type_new"), (302, 400, 403, 403)),
    ("session_type_edit", "get", lambda w: reverse("staff:session_type_edit", args=[t(w)]), (302, 200, 403, 403)),
    ("session_type_edit", "post", lambda w: reverse("staff:session_type_edit", args=[t(w)]), (302, 400, 403, 403)),
]


def _user(role, admin_user, counsellor, other_counsellor):
    return {
        "anonymous": None,
        "admin": admin_user,
        "counsellor": counsellor.user,
        "other": other_counsellor.user,
    }[role]


def test_the_matrix_covers_every_staff_url():
    names = {p.name for p in staff_urls.urlpatterns if isinstance(p, URLPattern)}
    assert names == {row[0] for row in MATRIX}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "url", "expected"), MATRIX, ids=[f"{r[1]}-{r[0]}" for r in MATRIX])
def test_permission_matrix(login, world, admin_user, counsellor, other_counsellor, role, name, method, url, expected):
    client = login(_user(role, admin_user, counsellor, other_counsellor))
    response = getattr(client, method)(url(world), {})
    want = expected[ROLES.index(role)]
    assert response.status_code == want, f"{role} {method.upper()} {name}: {response.status_code}, expected {want}"
    if want == 302 and role == "anonymous":
        assert response["Location"].startswith(reverse("account_login"))


def test_htmx_request_from_a_signed_out_browser_is_sent_to_sign_in(client, world):
    response = client.get(reverse("staff:booking_detail", args=[world["booking"].pk]), **HX)
    assert response.status_code == 401
    assert response["HX-Redirect"].startswith(reverse("account_login"))


def test_staff_without_a_second_factor_are_sent_to_set_one_up(client, counsellor_user, counsellor):
    client.force_login(counsellor_user)
    response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")


def test_a_counsellor_never_sees_another_counsellors_clients(login, counsellor, other_counsellor, make_booking):
    mine = make_booking(Status.CONFIRMED, counsellor=counsellor, client_name="Mina Mine", email="mine@example.com")
    theirs = make_booking(
        Status.CONFIRMED, counsellor=other_counsellor, client_name="Tara Theirs", email="theirs@example.com"
    )
    client = login(counsellor.user)
    listing = client.get(reverse("staff:booking_list")).content.decode()
    assert mine.ack_id in listing and theirs.ack_id not in listing
    search = client.get(reverse("staff:booking_list"), {"q": "theirs@example.com"}).content.decode()
    assert theirs.ack_id not in search and "Tara" not in search
    start = theirs.slot.start - timedelta(days=1)
    feed = client.get(
        reverse("staff:calendar_feed"),
        {"start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat()},
    ).json()
    assert any(mine.ack_id in e.get("title", "") for e in feed)
    assert not any(theirs.ack_id in e.get("title", "") for e in feed)
    # The other counsellor's filter parameter is ignored: the scope still applies.
    feed = client.get(
        reverse("staff:calendar_feed"),
        {"start": start.isoformat(), "end": (start + timedelta(days=7)).isoformat(), "counsellor": other_counsellor.pk},
    ).json()
    assert feed == []
    assert client.get(reverse("staff:booking_detail", args=[theirs.pk])).status_code == 404
    dashboard = client.get(reverse("staff:dashboard")).content.decode()
    assert theirs.ack_id not in dashboard


def test_the_menu_follows_the_role_and_the_page(admin_client, counsellor_client):
    """The menu is rendered once per role and page ({% fixed %} in staff/base.html): each
    role and page still gets its own, whichever was shown before."""
    team, bookings, dashboard = reverse("staff:team"), reverse("staff:booking_list"), reverse("staff:dashboard")
    admin_list = admin_client.get(bookings).content.decode()
    counsellor_list = counsellor_client.get(bookings).content.decode()
    counsellor_home = counsellor_client.get(dashboard).content.decode()
    assert f'href="{team}"' in admin_list and ">Profiles<" in admin_list
    assert f'href="{team}"' not in counsellor_list and ">My profile<" in counsellor_list
    current = '<li><a href="{}" class="inline-flex min-h-11 items-center aria-[current=page]:font-bold" aria-current="page">{}</a></li>'
    assert current.format(bookings, "Bookings") in counsellor_list
    assert current.format(dashboard, "Dashboard") in counsellor_home
    assert 'aria-current="page">Bookings<' not in counsellor_home


def test_a_stand_in_is_scoped_as_the_member_it_stands_for(
    admin_user, counsellor_user, counsellor, other_counsellor, make_booking, slot, other_slot
):
    """The compiled list and calendar queries are built for a stand-in (role and id): it must
    see exactly what the member sees."""
    make_booking(Status.PENDING, counsellor=counsellor)
    make_booking(Status.CONFIRMED, counsellor=other_counsellor)
    for member in (admin_user, counsellor_user):
        stand_in = scope_stand_in(member.role, member.pk)
        assert set(bookings_for(stand_in)) == set(bookings_for(member))
        assert set(slots_for(stand_in)) == set(slots_for(member))
    assert set(bookings_for(scope_stand_in(counsellor_user.role, counsellor_user.pk))) < set(Booking.objects.all())
    assert set(slots_for(scope_stand_in(counsellor_user.role, counsellor_user.pk))) < set(Slot.objects.all())
    assert scope_names_member(counsellor_user.role) and not scope_names_member(admin_user.role)


def test_an_administrators_page_refuses_a_counsellor_in_the_portals_layout(counsellor_client, client):
    response = counsellor_client.get(reverse("staff:team"))
    html = response.content.decode()
    assert response.status_code == 403
    assert "You cannot open this page" in html and "Only administrators can open this page." in html
    # The portal's menu and a way back, not a bare "403 Forbidden".
    assert 'aria-label="Staff"' in html and f'href="{reverse("staff:dashboard")}"' in html


def test_staff_are_told_in_the_portal_what_they_cannot_find(client, counsellor_client, make_booking, other_counsellor):
    """Another counsellor's booking (handed over since the page was opened, say): the portal's
    layout, the way back, and nothing about the booking. Elsewhere, the public page."""
    theirs = make_booking(Status.CONFIRMED, counsellor=other_counsellor, client_name="Kavya Iyer")
    for response in (
        counsellor_client.get(f"/staff/bookings/{theirs.pk}/"),
        counsellor_client.post(f"/staff/bookings/{theirs.pk}/cancel/", {"cancel-reason": "x"}),
    ):
        html = response.content.decode()
        assert response.status_code == 404 and "This is not here for you" in html and "data-page-gone" in html
        assert "Go to your bookings" in html and theirs.ack_id not in html and "Kavya" not in html
    assert "We could not find that page" in counsellor_client.get("/no-such-page/").content.decode()
    assert client.get(f"/staff/bookings/{theirs.pk}/").status_code == 302  # signed out: to sign in


# The calendar subscription's feed is no page: a calendar app keeps its events anyway, and
# it may keep the answer a few minutes (test_calendar_subscription).
@pytest.mark.parametrize(
    ("name", "url"), [(r[0], r[2]) for r in MATRIX if r[1] == "get" and r[0] != "calendar_app_feed"]
)
def test_no_staff_page_is_kept_by_a_cache(admin_client, world, name, url):
    """Portal pages show clients' names and words: neither a shared cache nor the browser's
    (a clinic's shared computer, Back after signing out) may keep a copy."""
    response = admin_client.get(url(world))
    assert response.status_code == 200
    cache_control = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    assert {"no-store", "private"} <= cache_control, f"{name}: {response.get('Cache-Control')}"
