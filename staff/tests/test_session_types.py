"""Administrators add and change the session types clients book, in Clinic settings."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from bookings.models import Clinic, Mode, SessionType, Status
from bookings.services import booking_approve
from staff.forms import SessionTypeForm
from staff.views import session_type_save

pytestmark = pytest.mark.django_db

NEW = reverse("staff:session_type_new")


@pytest.fixture(autouse=True)
def clinic_address(db) -> None:
    """Clients who book in person are sent it: session types held in person need it."""
    Clinic.objects.update_or_create(pk=Clinic.load().pk, defaults={"address": "12 MG Road, Kochi"})


def edit(session_type: SessionType) -> str:
    return reverse("staff:session_type_edit", args=[session_type.pk])


def seen_on(page: str) -> str:
    """What the edit page showed, as its hidden `seen` field carries it."""
    return html.unescape(re.search(r'name="seen" value="([^"]*)"', page)[1])


def edit_data(admin_client, session_type: SessionType, **changes: object) -> dict[str, object]:
    """The edit form as sent from the page just opened, with `changes`."""
    page = admin_client.get(edit(session_type)).content.decode()
    session_type.refresh_from_db()
    shown = {
        "name": session_type.name,
        "slug": session_type.slug,
        "description": session_type.description,
        "duration_minutes": session_type.duration_minutes,
        "price_rupees": f"{session_type.price / 100:.2f}",
        "offers_online": "on" if session_type.offers_online else None,
        "offers_in_person": "on" if session_type.offers_in_person else None,
        "is_active": "on" if session_type.is_active else None,
        "sort_order": session_type.sort_order,
    }
    return form_data(**{**shown, "seen": seen_on(page), **changes})


def form_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Family session",
        "slug": "",
        "description": "For parents and children together.",
        "duration_minutes": 80,
        "price_rupees": "2400.50",
        "offers_online": "on",
        "offers_in_person": "on",
        "is_active": "on",
        "sort_order": 5,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_an_administrator_adds_a_session_type_that_clients_can_then_book(admin_client, client):
    response = admin_client.post(NEW, form_data())
    assert response.status_code == 302 and response["Location"] == reverse("staff:clinic") + "#session-types"
    added = SessionType.objects.get()
    assert (added.name, added.slug, added.duration_minutes, added.price) == (
        "Family session",
        "family-session",
        80,
        240050,
    )
    assert added.currency == "INR" and added.offers_online and added.offers_in_person and added.is_active
    clinic = admin_client.get(reverse("staff:clinic")).content.decode()
    assert "“Family session” saved. Clients can book it." in clinic
    section = clinic[clinic.index('id="session-types"') :]
    assert edit(added) in section and "80 min" in section and "2,400.50" in section
    # The booking form offers it, by its link name too.
    assert "Family session" in client.get("/").content.decode()
    assert client.get("/book/?type=family-session", follow=True).status_code == 200


def test_a_link_name_made_from_the_name_is_never_one_already_used(admin_client):
    for name in ("Family session", "Family session!", "Family session?"):  # one link name
        assert admin_client.post(NEW, form_data(name=name)).status_code == 302
    assert sorted(SessionType.objects.values_list("slug", flat=True)) == [
        "family-session",
        "family-session-2",
        "family-session-3",
    ]
    response = admin_client.post(NEW, form_data(name="Other", slug="family-session"))
    assert response.status_code == 400
    assert "Another session type has this link name." in response.content.decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Enter a name for the session type, like Individual session."),
        ({"offers_online": None, "offers_in_person": None}, "Tick online, in person, or both"),
        ({"price_rupees": "0"}, "Enter the price of at least 1 rupee."),
        ({"price_rupees": "12.345"}, "Enter the price in rupees and paise, with at most 2 digits after the point."),
        ({"duration_minutes": 5}, "Enter the length from 10 to 480 minutes."),
        ({"duration_minutes": 600}, "Enter the length from 10 to 480 minutes."),
        ({"slug": "not a slug!"}, "Use lowercase letters, digits and hyphens only"),
    ],
)
def test_bad_input_is_explained_next_to_its_field_and_nothing_is_saved(admin_client, changes, message):
    response = admin_client.post(NEW, form_data(**changes))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and "There is a problem" in html and "<title>Error:" in html
    assert 'value="Family session"' in html or changes.get("name") == ""  # what was typed stays
    assert not SessionType.objects.exists()


def test_a_booked_type_keeps_its_length_and_link_name_and_its_bookings_keep_their_amount(
    admin_client, session_type, counsellor, make_booking
):
    booking = make_booking(Status.CONFIRMED)
    page = admin_client.get(edit(session_type)).content.decode()
    assert "Fixed: 1 booking uses this length." in page
    assert "Fixed: links to the booking form and the chatbot use it." in page
    response = admin_client.post(
        edit(session_type),
        edit_data(
            admin_client,
            session_type,
            name="Individual session (50 min)",
            slug="changed",
            duration_minutes=30,
            price_rupees="1800",
        ),
    )
    assert response.status_code == 302
    session_type.refresh_from_db()
    assert session_type.name == "Individual session (50 min)" and session_type.price == 180000
    assert session_type.slug == "individual" and session_type.duration_minutes == 50
    booking.refresh_from_db()
    assert booking.amount == 150000


def test_an_unbooked_type_can_change_its_length(admin_client, session_type):
    assert (
        admin_client.post(edit(session_type), edit_data(admin_client, session_type, duration_minutes=45)).status_code
        == 302
    )
    session_type.refresh_from_db()
    assert session_type.duration_minutes == 45 and session_type.slug == "individual"


def test_a_type_no_longer_offered_leaves_the_booking_form_but_not_its_bookings(
    admin_client, admin_user, client, session_type, counsellor, slot, make_booking
):
    booking = make_booking(Status.PENDING, counsellor=counsellor)
    response = admin_client.post(
        edit(session_type), edit_data(admin_client, session_type, name=session_type.name, is_active=None)
    )
    assert response.status_code == 302
    assert "Clients no longer see it." in admin_client.get(reverse("staff:clinic")).content.decode()
    assert session_type.name not in client.get("/").content.decode()
    # The request already made goes on as before: staff approve it into a time.
    approved = booking_approve(booking_id=booking.pk, slot_id=slot.pk, user=admin_user)
    assert approved.status == Status.APPROVED and approved.amount == 150000


def test_only_administrators_manage_session_types(counsellor_client, session_type):
    for path in (reverse("staff:clinic"), NEW, edit(session_type)):
        assert counsellor_client.get(path).status_code == 403
    assert counsellor_client.post(NEW, form_data()).status_code == 403
    assert SessionType.objects.count() == 1


def test_an_unknown_session_type_is_not_found(admin_client):
    assert admin_client.get(reverse("staff:session_type_edit", args=[999999])).status_code == 404


def test_without_session_types_the_clinic_page_and_the_dashboard_say_clients_cannot_book(
    admin_client, counsellor_client, session_type
):
    warning = "Clients cannot book:</strong> no session type is offered."
    assert warning not in admin_client.get(reverse("staff:dashboard")).content.decode()
    session_type.is_active = False
    session_type.save()
    assert warning in admin_client.get(reverse("staff:dashboard")).content.decode()
    assert warning not in counsellor_client.get(reverse("staff:dashboard")).content.decode()  # not theirs to fix
    session_type.delete()
    html = admin_client.get(reverse("staff:clinic")).content.decode()
    assert "There are no session types yet, so clients cannot book." in html


# --- What is fixed by what uses it, and two administrators at once ----------------------------


def test_a_way_of_meeting_stays_while_open_bookings_are_held_that_way(
    admin_client, session_type, counsellor, make_booking
):
    make_booking(Status.PENDING, mode=Mode.IN_PERSON)
    make_booking(Status.CANCELLED, mode=Mode.ONLINE)  # over: it holds nothing
    page = admin_client.get(edit(session_type)).content.decode()
    assert "Fixed while 1 open booking is held in person." in page
    response = admin_client.post(
        edit(session_type), edit_data(admin_client, session_type, offers_in_person=None, offers_online=None)
    )
    assert response.status_code == 302  # in person stays ticked: the form could not untick it
    session_type.refresh_from_db()
    assert session_type.offers_in_person and not session_type.offers_online


def test_a_save_over_another_administrators_change_is_refused_and_names_it(admin_client, session_type):
    opened = edit_data(admin_client, session_type, name=session_type.name, price_rupees="1700")
    # Meanwhile someone else stops offering it.
    admin_client.post(edit(session_type), edit_data(admin_client, session_type, name=session_type.name, is_active=None))
    response = admin_client.post(edit(session_type), opened)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Someone else saved this session type while you had it open (Clients can book it)." in page
    session_type.refresh_from_db()
    assert not session_type.is_active and session_type.price == 150000
    # Sent again from that page, it is meant: it saves.
    again = {**opened, "seen": seen_on(page)}
    assert admin_client.post(edit(session_type), again).status_code == 302
    session_type.refresh_from_db()
    assert session_type.is_active and session_type.price == 170000


def test_a_booked_length_outside_todays_limits_does_not_stop_a_save(
    admin_client, session_type, counsellor, make_booking
):
    SessionType.objects.filter(pk=session_type.pk).update(duration_minutes=5)
    make_booking(Status.PENDING)
    response = admin_client.post(edit(session_type), edit_data(admin_client, session_type, is_active=None))
    assert response.status_code == 302


def test_a_link_name_taken_a_moment_before_saving_is_explained(session_type):
    form = SessionTypeForm(data=form_data(slug="family"))
    assert form.is_valid()
    SessionType.objects.create(name="Family", slug="family", duration_minutes=50, price=100000)
    assert session_type_save(form) is None
    assert form.errors["slug"] == ["Another session type has just been given this link name. Save again for another."]
    assert SessionType.objects.filter(slug="family").count() == 1


def test_a_price_in_another_currency_is_labelled_with_it(admin_client, session_type):
    SessionType.objects.filter(pk=session_type.pk).update(currency="USD")
    assert "Price (USD)" in admin_client.get(edit(session_type)).content.decode()


@pytest.mark.parametrize("seen", ["[]", "null", "1", '"text"', "NaN", "not json", "[" * 100_000])
def test_a_seen_value_the_page_never_sent_is_refused_calmly(admin_client, session_type, seen):
    data = {**edit_data(admin_client, session_type, price_rupees="1700"), "seen": seen}
    response = admin_client.post(edit(session_type), data)
    assert response.status_code == 400
    assert "Someone else saved this session type while you had it open" in response.content.decode()
    session_type.refresh_from_db()
    assert session_type.price == 150000


def test_a_booking_made_while_the_save_was_checked_fixes_the_length_it_would_have_changed(
    admin_client, session_type, counsellor, make_booking
):
    form = SessionTypeForm(data=edit_data(admin_client, session_type, duration_minutes=45), instance=session_type)
    assert form.is_valid() and not form.fields["duration_minutes"].disabled
    make_booking(Status.PENDING)  # between the form's reading and its save
    assert session_type_save(form) is None
    assert form.errors["duration_minutes"] == [
        "A booking of this session type has just been made, so its length is now fixed."
    ]
    session_type.refresh_from_db()
    assert session_type.duration_minutes == 50


def test_an_open_booking_made_while_the_save_was_checked_keeps_its_way_of_meeting(
    admin_client, session_type, counsellor, make_booking
):
    form = SessionTypeForm(data=edit_data(admin_client, session_type, offers_in_person=None), instance=session_type)
    assert form.is_valid()
    make_booking(Status.PENDING, mode=Mode.IN_PERSON)
    assert session_type_save(form) is None
    assert form.errors["offers_in_person"] == ["An open booking is held in person, so this way of meeting stays."]
    session_type.refresh_from_db()
    assert session_type.offers_in_person


def test_a_session_type_may_be_named_and_described_in_hindi_for_clients(admin_client, client):
    page = admin_client.get(NEW).content.decode()
    assert "Name in Hindi" in page and 'lang="hi"' in page
    text = " ".join(re.sub(r"<[^>]+>", "", page).split())
    assert "Name in Hindi (optional)" in text and "(optional) (optional)" not in text  # the field's own mark, once
    response = admin_client.post(NEW, form_data(name_hi="पारिवारिक सेशन", description_hi="माता-पिता और बच्चे साथ।"))
    assert response.status_code == 302
    added = SessionType.objects.get()
    assert (added.name_hi, added.description_hi) == ("पारिवारिक सेशन", "माता-पिता और बच्चे साथ।")
    clinic = admin_client.get(reverse("staff:clinic")).content.decode()
    assert "Family session" in clinic and "पारिवारिक सेशन" not in clinic  # staff read the name they gave


def test_clinic_details_refuse_a_phone_number_that_is_not_one_and_a_missing_address(admin_client, session_type):
    data = {"address": "12 MG Road, Kochi", "directions": "", "phone": "call us sometime", "email": ""}
    response = admin_client.post(reverse("staff:clinic"), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "<title>Error: Clinic settings" in html and 'href="#id_phone">Phone: ' in html
    good = {**data, "phone": "+91 98450 12345"}
    response = admin_client.post(reverse("staff:clinic"), {**good, "address": " "})
    assert response.status_code == 400 and "Give the clinic&#x27;s address" in response.content.decode()
    assert admin_client.post(reverse("staff:clinic"), good).status_code == 302
    assert Clinic.load().phone == "+91 98450 12345"  # as typed
    # A clinic that meets only online needs no address.
    SessionType.objects.update(offers_in_person=False, offers_online=True)
    assert admin_client.post(reverse("staff:clinic"), {**good, "address": ""}).status_code == 302


def test_the_address_stays_while_sessions_in_person_are_to_come(admin_client, session_type, make_booking, counsellor):
    """Its session type retired, an in-person session still to come is shown the address."""
    make_booking(Status.CONFIRMED, mode=Mode.IN_PERSON, counsellor=counsellor)
    SessionType.objects.update(is_active=False)
    data = {"address": "", "directions": "", "phone": "", "email": ""}
    response = admin_client.post(reverse("staff:clinic"), data)
    assert response.status_code == 400 and "clients with sessions in person still to come" in response.content.decode()
    assert Clinic.load().address == "12 MG Road, Kochi"


def test_a_session_type_held_in_person_needs_the_clinics_address_first(admin_client, session_type):
    Clinic.objects.update(address="")
    response = admin_client.post(NEW, form_data())
    assert response.status_code == 400
    assert "Clients who book in person are sent the clinic&#x27;s address, and there is none yet" in (
        response.content.decode()
    )
    assert admin_client.post(NEW, form_data(offers_in_person=None)).status_code == 302  # online only
    # One already held in person is not refused its other changes.
    assert (
        admin_client.post(edit(session_type), edit_data(admin_client, session_type, price_rupees="1600")).status_code
        == 302
    )


def test_a_name_clients_can_already_book_is_refused_and_a_new_type_comes_last(admin_client, session_type):
    assert 'name="sort_order" value="1"' in admin_client.get(NEW).content.decode()  # after the one there is
    response = admin_client.post(NEW, form_data(name=" individual SESSION "))
    assert response.status_code == 400
    assert "Clients can already book a session type of this name." in response.content.decode()
    # Another length, offered instead of the first: the first stops being offered.
    admin_client.post(edit(session_type), edit_data(admin_client, session_type, is_active=None))
    assert admin_client.post(NEW, form_data(name="Individual session", duration_minutes=60)).status_code == 302
    assert SessionType.objects.filter(name="Individual session").count() == 2


def test_the_length_field_allows_in_the_browser_what_the_form_accepts(admin_client):
    """10 to 480 minutes: the input says so too, so a browser does not offer 0 or 5."""
    html = admin_client.get(NEW).content.decode()
    field = re.search(r'<input type="number" name="duration_minutes"[^>]*>', html).group(0)
    assert 'min="10"' in field and 'max="480"' in field
