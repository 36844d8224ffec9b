"""A clinic's first day, from an empty database: the first administrator signs in to a portal
with no counsellors, no session types and no free times. Each empty page says what to do next,
and the dashboard says what still stops clients booking until they can."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from bookings.models import Counsellor, SessionType, Slot
from conftest import next_weekday_at
from staff.models import User

pytestmark = pytest.mark.django_db

NO_COUNSELLORS = "Clients cannot book:</strong> there are no counsellors yet."
NO_FREE_TIMES = "Clients can only ask for a time:</strong> no free time is published"


@pytest.mark.parametrize("page", ["staff:availability_index", "staff:profile", "staff:calendar"])
def test_pages_about_counsellors_tell_the_first_administrator_to_invite_one(admin_client, page):
    html = admin_client.get(reverse(page)).content.decode()
    assert "There are no counsellors yet." in html
    assert f'href="{reverse("staff:team")}"' in html
    assert "Ask an administrator" not in html  # they are the administrator


@pytest.mark.parametrize("page", ["staff:availability_index", "staff:profile"])
def test_a_counsellor_without_a_profile_is_still_sent_to_an_administrator(login, counsellor_user, page):
    html = login(counsellor_user).get(reverse(page)).content.decode()
    assert "There is no counsellor profile linked to your account. Ask an administrator." in html
    assert "There are no counsellors yet." not in html


def test_once_a_counsellor_is_invited_the_pages_list_them(admin_client, counsellor):
    for page in ("staff:availability_index", "staff:profile", "staff:calendar"):
        html = admin_client.get(reverse(page)).content.decode()
        assert "There are no counsellors yet." not in html and "Asha Menon" in html, page


def test_the_dashboard_says_clients_cannot_book_until_a_counsellor_joins(admin_client, session_type):
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert NO_COUNSELLORS in html and f'href="{reverse("staff:team")}"' in html
    assert NO_FREE_TIMES not in html


def test_a_counsellor_still_hidden_from_clients_is_named_instead(admin_client, session_type, counsellor):
    Counsellor.objects.filter(pk=counsellor.pk).update(is_active=False)
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert "Counsellors clients cannot see yet:" in html
    assert NO_COUNSELLORS not in html and NO_FREE_TIMES not in html


def test_the_dashboard_says_clients_can_only_ask_for_a_time_until_free_times_are_published(
    admin_client, session_type, counsellor
):
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert NO_FREE_TIMES in html
    assert f'href="{reverse("staff:availability_index")}"' in html
    assert NO_COUNSELLORS not in html
    # Times inside the minimum notice cannot be chosen by clients: still none to choose.
    soon = timezone.now() + timedelta(hours=2)
    Slot.objects.create(counsellor=counsellor, start=soon, end=soon + timedelta(minutes=60))
    assert NO_FREE_TIMES in admin_client.get(reverse("staff:dashboard")).content.decode()
    start = next_weekday_at(10)
    Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert NO_FREE_TIMES not in html and NO_COUNSELLORS not in html


def test_a_session_type_longer_than_every_free_time_is_named(admin_client, session_type, counsellor):
    """An 80-minute type with hours of 50-minute sessions: clients see it, and no time for it."""
    couples = SessionType.objects.create(name="Couples session", slug="couples", duration_minutes=80, price=250000)
    start = next_weekday_at(10)
    Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=60))
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert "Session types no client can book:</strong> Couples session (80 min). It is longer" in html
    assert session_type.name not in html.split("no client can book:")[1].split("</p>")[0]
    # Long enough, but only in person: its counsellor offers online only.
    later = start + timedelta(days=1)
    Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(minutes=90))
    Counsellor.objects.filter(pk=counsellor.pk).update(offers_in_person=False)
    SessionType.objects.filter(pk=couples.pk).update(offers_online=False, offers_in_person=True)
    assert (
        "no client can book:</strong> Couples session" in admin_client.get(reverse("staff:dashboard")).content.decode()
    )
    SessionType.objects.filter(pk=couples.pk).update(offers_online=True)
    assert "no client can book" not in admin_client.get(reverse("staff:dashboard")).content.decode()


def test_counsellors_are_not_told_what_only_an_administrator_can_do(login, session_type):
    user = User.objects.create_user(email="nila@example.com", password="x" * 12, role=User.Role.COUNSELLOR)
    html = login(user).get(reverse("staff:dashboard")).content.decode()
    assert NO_COUNSELLORS not in html and NO_FREE_TIMES not in html


def test_clinic_settings_say_where_the_name_and_time_zone_are_set_and_who_reads_the_contacts(admin_client):
    html = admin_client.get(reverse("staff:clinic")).content.decode()
    assert "<code>CLINIC_NAME</code>" in html and "<code>TIME_ZONE</code>" in html
    assert "India Standard Time" in html
    assert "the phone and email when something cannot be done online" in html


NO_ROOM = "Online sessions without a room to join:</strong>"


def test_counsellors_offering_online_sessions_without_a_room_are_named(
    admin_client, login, counsellor, other_counsellor, other_counsellor_user
):
    html = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert NO_ROOM in html
    notice = html[html.index(NO_ROOM) :].split("</div>")[0]
    assert f'href="{reverse("staff:availability", args=[other_counsellor.pk])}#room-h"' in notice
    assert "Rohan Kapoor" in notice and "Asha Menon" not in notice  # she has a room
    assert NO_ROOM in login(other_counsellor_user).get(reverse("staff:dashboard")).content.decode()
    Counsellor.objects.filter(pk=other_counsellor.pk).update(offers_online=False)
    assert NO_ROOM not in admin_client.get(reverse("staff:dashboard")).content.decode()
    assert NO_ROOM not in login(other_counsellor_user).get(reverse("staff:dashboard")).content.decode()


def test_an_administrator_reads_of_the_counsellors_room_not_their_own(admin_client, login, counsellor_user, counsellor):
    page = reverse("staff:profile_edit", args=[counsellor.pk])
    assert "The online room is set under" in admin_client.get(page).content.decode()
    assert "Your online room is set under" in login(counsellor_user).get(page).content.decode()
