"""The dashboard's "Sessions to record": confirmed sessions that have ended and that nobody has
marked completed or a no-show, each with its two buttons, which go back to the dashboard."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bookings.models import Booking, BookingEvent, Slot, Status
from bookings.templatetags.mindsettler import span
from staff.tests.conftest import seen_just_now

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("staff:dashboard")
CARD_HEADING = "Sessions to record"


def ended(counsellor, *, hours_ago: float) -> Slot:
    """A slot of `counsellor` that started `hours_ago` hours ago and lasted 50 minutes."""
    start = (timezone.now() - timedelta(hours=hours_ago)).replace(second=0, microsecond=0)
    return Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=50))


def card(html: str) -> str:
    """The card's markup ("" if the dashboard does not show it)."""
    match = re.search(r'<section[^>]*id="record".*?</section>', html, re.S)
    return match.group(0) if match else ""


def row(html: str, booking: Booking) -> str:
    """The card's row of `booking`."""
    return re.search(rf'<li[^>]*id="record-{booking.pk}".*?</li>', card(html), re.S).group(0)


@pytest.fixture
def sessions(make_booking, counsellor, other_counsellor):
    """Asha's two sessions to record (the older second), and what must not be listed: Rohan's
    (for Asha), a session still running, one ahead, and one already marked."""
    return {
        "recent": make_booking(
            Status.CONFIRMED,
            slot=ended(counsellor, hours_ago=2),
            client_name="Kavya Iyer",
            concerns="I cannot sleep since my father died.",
            preferred_times="Evenings after my shift",
        ),
        "older": make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=26), client_name="Meera Rao"),
        "rohans": make_booking(Status.CONFIRMED, slot=ended(other_counsellor, hours_ago=3), client_name="Dev Shah"),
        "running": make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=0.5), client_name="Ira Sen"),
        "ahead": make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=-5), client_name="Anil Das"),
        "marked": make_booking(Status.COMPLETED, slot=ended(counsellor, hours_ago=5), client_name="Tara Bose"),
    }


def test_a_counsellor_sees_their_own_ended_sessions_oldest_first_without_the_clients_words(counsellor_client, sessions):
    shown = card(counsellor_client.get(DASHBOARD).content.decode())
    recent, older = sessions["recent"], sessions["older"]
    assert CARD_HEADING in shown
    assert shown.index(older.ack_id) < shown.index(recent.ack_id)  # oldest first
    for booking in (recent, older):
        assert booking.client_name in shown
        # The session in the clinic's zone, named, start to end ("Tue 3 Nov, 10:00 to 10:50 IST").
        assert f'datetime="{timezone.localtime(booking.slot.start).isoformat()}"' in shown
        assert f">{span(booking.slot.start, booking.session_end, autoescape=True)}</time>" in shown
    for name in ("rohans", "running", "ahead", "marked"):
        assert sessions[name].ack_id not in shown, name
    assert "Dev Shah" not in shown
    # The client's own words are for the booking's page, never the dashboard.
    assert "cannot sleep" not in shown and "Evenings after my shift" not in shown
    assert "Asha Menon" not in shown  # a counsellor's own list does not name them


def test_an_administrator_sees_every_counsellors_with_their_names(admin_client, sessions):
    shown = card(admin_client.get(DASHBOARD).content.decode())
    rohans, recent = sessions["rohans"], sessions["recent"]
    assert rohans.ack_id in shown and recent.ack_id in shown and sessions["older"].ack_id in shown
    assert "Dev Shah" in row(shown, rohans) and "Rohan Kapoor" in row(shown, rohans)
    assert "Asha Menon" in row(shown, recent)
    assert "cannot sleep" not in admin_client.get(DASHBOARD).content.decode()


def test_each_button_posts_to_the_existing_action_and_says_which_session(counsellor_client, sessions):
    booking = sessions["recent"]
    html = row(counsellor_client.get(DASHBOARD).content.decode(), booking)
    complete, no_show = re.findall(r"<form .*?</form>", html, re.S)
    assert f'method="post" action="{reverse("staff:booking_complete", args=[booking.pk])}"' in complete
    assert f'name="complete-version" value="{booking.version}"' in complete
    assert f'name="next" value="{DASHBOARD}"' in complete
    # Each says what it does, as on the booking's page ("Completed" read as a state).
    assert f'>Mark completed<span class="sr-only">: {booking.ack_id}</span></button>' in complete
    assert f'method="post" action="{reverse("staff:booking_no_show", args=[booking.pk])}"' in no_show
    assert f'name="no_show-version" value="{booking.version}"' in no_show
    assert 'name="no_show-confirm"' in no_show and "required" in no_show
    assert f'Mark no-show<span class="sr-only">: {booking.ack_id}</span></button>' in no_show
    # The no-show form opens from a summary that names the session too.
    assert (
        f'>Mark no-show…<span class="sr-only"> {booking.ack_id}</span></summary>' in html
    )  # the ellipsis beside the words, not after a gap
    # hx-post would answer with the booking page's fragment: these are plain forms.
    assert "hx-post" not in html


def test_marking_completed_from_the_dashboard_goes_back_there_with_a_message(counsellor_client, sessions):
    booking = sessions["recent"]
    response = counsellor_client.post(
        reverse("staff:booking_complete", args=[booking.pk]),
        {"complete-version": booking.version, "next": DASHBOARD},
    )
    assert response.status_code == 302 and response["Location"] == DASHBOARD
    booking.refresh_from_db()
    assert booking.status == Status.COMPLETED
    assert BookingEvent.objects.filter(booking=booking, to_status=Status.COMPLETED).exists()
    html = counsellor_client.get(DASHBOARD).content.decode()
    # With the way to book the client's next session, as the booking's own page offers.
    new = reverse("staff:booking_new")
    assert (
        f'<span class="whitespace-nowrap">{booking.ack_id}</span>: Marked as completed. '
        f'<a href="{new}?after={booking.pk}">Book their next session</a></p>'
    ) in html
    shown = card(html)
    assert booking.ack_id not in shown and sessions["older"].ack_id in shown


def test_marking_a_no_show_from_the_dashboard_takes_the_tick(counsellor_client, sessions):
    booking = sessions["older"]
    url = reverse("staff:booking_no_show", args=[booking.pk])
    # Without the tick (a browser that skipped `required`): refused next to the tick, on the booking's page.
    unticked = counsellor_client.post(url, {"no_show-version": booking.version, "next": DASHBOARD})
    assert unticked.status_code == 400
    assert "Tick this to confirm the client did not come" in unticked.content.decode()
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED

    response = counsellor_client.post(
        url, {"no_show-version": booking.version, "no_show-confirm": "on", "next": DASHBOARD}, follow=True
    )
    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert Booking.objects.get(pk=booking.pk).status == Status.NO_SHOW
    html = response.content.decode()
    assert f'<span class="whitespace-nowrap">{booking.ack_id}</span>: Marked as a no-show.</p>' in html
    assert booking.ack_id not in card(html)


def test_a_stale_version_is_refused_and_nothing_changes(counsellor_client, sessions):
    booking = sessions["recent"]
    # Someone else acted meanwhile (the version moved on): the dashboard's row is out of date.
    Booking.objects.filter(pk=booking.pk).update(version=booking.version + 1)
    response = counsellor_client.post(
        reverse("staff:booking_complete", args=[booking.pk]),
        {"complete-version": booking.version, "next": DASHBOARD},
    )
    assert response.status_code == 409
    assert "changed by someone else" in response.content.decode()  # with the booking as it is now
    assert Booking.objects.get(pk=booking.pk).status == Status.CONFIRMED
    assert not BookingEvent.objects.filter(booking=booking, to_status=Status.COMPLETED).exists()


def test_next_must_be_an_address_of_this_site(counsellor_client, sessions):
    booking = sessions["recent"]
    response = counsellor_client.post(
        reverse("staff:booking_complete", args=[booking.pk]),
        {"complete-version": booking.version, "next": "https://evil.example/staff/"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:booking_detail", args=[booking.pk])


def test_another_counsellors_session_cannot_be_marked_from_the_dashboard(counsellor_client, sessions):
    rohans = sessions["rohans"]
    response = counsellor_client.post(
        reverse("staff:booking_complete", args=[rohans.pk]), {"complete-version": rohans.version, "next": DASHBOARD}
    )
    assert response.status_code == 404
    assert Booking.objects.get(pk=rohans.pk).status == Status.CONFIRMED


def test_the_card_is_hidden_when_there_is_nothing_to_record(counsellor_client, make_booking, counsellor):
    make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=-24))  # ahead
    make_booking(Status.NO_SHOW, slot=ended(counsellor, hours_ago=24))  # marked
    html = counsellor_client.get(DASHBOARD).content.decode()
    assert CARD_HEADING not in html and card(html) == ""


def test_the_list_stops_at_twenty_with_a_link_to_all_of_them(counsellor_client, make_booking, counsellor):
    booked = [
        make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=2 + hour), client_name=f"Client {hour}")
        for hour in range(21)
    ]
    later_today = make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=-1), client_name="Not yet")
    shown = card(counsellor_client.get(DASHBOARD).content.decode())
    assert shown.count('<li class="') == 20
    assert booked[0].ack_id not in shown  # the most recent is the one left out
    link = re.search(r'<a href="([^"]+)">All the sessions to record', shown).group(1).replace("&amp;", "&")
    assert link == f"{reverse('staff:booking_list')}?status=to_record&sort=session"
    listed = counsellor_client.get(link).content.decode()
    # Every one ended and unrecorded, and only those: not a session still to come today.
    assert all(b.ack_id in listed for b in booked) and later_today.ack_id not in listed


def test_exactly_twenty_need_no_link(counsellor_client, make_booking, counsellor):
    for hour in range(20):
        make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=2 + hour))
    shown = card(counsellor_client.get(DASHBOARD).content.decode())
    assert shown.count('<li class="') == 20 and "All the sessions to record" not in shown


def test_the_dashboards_queries_do_not_grow_with_the_sessions_to_record(
    counsellor_client, make_booking, counsellor, django_assert_max_num_queries
):
    def queries() -> int:
        seen_just_now(counsellor_client)
        with CaptureQueriesContext(connection) as captured:
            assert counsellor_client.get(DASHBOARD).status_code == 200
        return len(captured)

    make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=2))
    counsellor_client.get(DASHBOARD)  # the session's first request does its one-off work
    one = queries()
    for hour in range(25):
        make_booking(Status.CONFIRMED, slot=ended(counsellor, hours_ago=3 + hour))
    with django_assert_max_num_queries(15):
        assert "Sessions to record" in counsellor_client.get(DASHBOARD).content.decode()
    assert queries() == one
