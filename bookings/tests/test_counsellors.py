"""The public counsellor profiles: /counsellors/ and /counsellors/<slug>/. Public facts only,
the next free time from the same rules as the wizard, and a small query budget."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from bookings.models import Counsellor, Slot, Status
from bookings.templatetags.mindsettler import when
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db


@pytest.fixture
def profiled(counsellor):
    counsellor.title = "Counselling psychologist"
    counsellor.approach = "Warm, practical conversations about what matters to you."
    counsellor.bio = "Ten years of practice in Pune."
    counsellor.languages = "English, Hindi , Marathi"
    counsellor.offers_in_person = False
    counsellor.save()
    return counsellor


def test_the_list_shows_active_counsellors_with_their_public_facts(client, profiled, other_counsellor):
    Counsellor.objects.create(display_name="Gone Away", slug="gone", is_active=False)
    html = client.get("/counsellors/").content.decode()
    assert "Our counsellors" in html
    assert "Asha Menon" in html and "Rohan Kapoor" in html and "Gone Away" not in html
    assert "Counselling psychologist" in html and "Warm, practical conversations" in html
    assert "English, Hindi, Marathi" in html
    assert "/counsellors/asha/" in html
    assert ">AM<" in html  # initials, in place of a photo


def test_the_next_free_time_skips_taken_past_and_too_soon_slots(client, profiled, make_booking):
    too_soon = timezone.now() + timedelta(hours=2)
    Slot.objects.create(counsellor=profiled, start=too_soon, end=too_soon + timedelta(hours=1))
    taken = Slot.objects.create(
        counsellor=profiled, start=next_weekday_at(9, days_ahead=3), end=next_weekday_at(10, days_ahead=3)
    )
    make_booking(Status.CONFIRMED, slot=taken)
    free = Slot.objects.create(
        counsellor=profiled, start=next_weekday_at(11, days_ahead=3), end=next_weekday_at(12, days_ahead=3)
    )
    Slot.objects.create(
        counsellor=profiled, start=next_weekday_at(9, days_ahead=5), end=next_weekday_at(10, days_ahead=5)
    )
    list_html = client.get("/counsellors/").content.decode()
    profile_html = client.get("/counsellors/asha/").content.decode()
    for html in (list_html, profile_html):
        assert when(free.start, autoescape=True) in html
        assert when(taken.start, autoescape=True) not in html
    assert f"/book/?slot={free.pk}" in profile_html
    assert "/book/?counsellor=asha" in profile_html


def test_a_counsellor_without_free_times_says_so(client, profiled):
    html = client.get("/counsellors/asha/").content.decode()
    assert "No free times published at the moment" in html
    assert "/book/?slot=" not in html and "/book/?counsellor=asha" in html


def test_the_profile_page_and_404s(client, profiled):
    response = client.get("/counsellors/asha/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Asha Menon" in html and "Ten years of practice" in html and "Online" in html
    assert "In person" not in html
    assert client.get("/counsellors/nobody/").status_code == 404
    profiled.is_active = False
    profiled.save()
    assert client.get("/counsellors/asha/").status_code == 404


def test_no_client_data_appears_on_the_public_pages(client, profiled, make_booking, slot):
    make_booking(
        Status.CONFIRMED,
        slot=slot,
        client_name="Kavya Iyer",
        email="kavya@example.com",
        phone="+919876543210",
        concerns="Panic attacks at work",
    )
    for url in ("/counsellors/", "/counsellors/asha/"):
        html = client.get(url).content.decode()
        for private in ("Kavya", "kavya@example.com", "9876543210", "Panic", "MS-"):
            assert private not in html, (url, private)


def test_query_budget_with_many_counsellors_slots_and_bookings(
    client, session_type, make_booking, django_assert_max_num_queries
):
    for i in range(12):
        c = Counsellor.objects.create(
            display_name=f"Counsellor {i}",
            slug=f"c{i}",
            languages="English",
            title="Psychologist",
            approach="Practical.",
            bio="Trained in Pune.",
            title_hi="मनोवैज्ञानिक",
            approach_hi="व्यावहारिक।",
            bio_hi="पुणे में प्रशिक्षित।",
        )
        for day in (3, 4, 5):
            s = Slot.objects.create(
                counsellor=c,
                start=next_weekday_at(9 + i % 6, days_ahead=day),
                end=next_weekday_at(10 + i % 6, days_ahead=day),
            )
            if day == 3:
                make_booking(Status.CONFIRMED, slot=s)
    # In Hindi too: the Hindi title, approach and bio come in the same query as the rest.
    for language, title in (("en", "Psychologist"), ("hi", "मनोवैज्ञानिक")):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        with django_assert_max_num_queries(5):
            response = client.get("/counsellors/")
        assert response.status_code == 200
        assert len(re.findall(r'id="counsellor-c\d+"', response.content.decode())) == 12
        assert response.content.decode().count(title) == 12
        with django_assert_max_num_queries(5):
            response = client.get("/counsellors/c3/")
        assert response.status_code == 200 and title in response.content.decode()


def test_the_header_home_and_wizard_link_to_the_profiles(client, session_type, counsellor):
    assert 'href="/counsellors/"' in client.get("/").content.decode()
    assert 'href="/counsellors/"' in client.get("/policies/").content.decode()  # the header, on every page
    page = client.get(client.get("/book/")["Location"]).content.decode()
    assert "About our counsellors" in page and 'href="/counsellors/"' in page


def test_the_wizard_can_open_with_a_counsellor_chosen(client, session_type, counsellor, other_counsellor):
    response = client.get("/book/?counsellor=rohan")
    page = client.get(response["Location"]).content.decode()
    assert re.search(rf'<option value="{other_counsellor.pk}"[^>]*selected', page)
    # An unknown slug chooses nobody.
    page = client.get(client.get("/book/?counsellor=nobody")["Location"]).content.decode()
    assert not re.search(rf'<option value="{other_counsellor.pk}"[^>]*selected', page)


def test_an_old_link_name_leads_to_the_profile_and_the_wizard_with_its_counsellor(
    client, session_type, profiled, other_counsellor, django_assert_max_num_queries
):
    """Links shared before an administrator gave the profile another link name (staff/tests/
    test_profile.py renames it through the portal)."""
    profiled.previous_slugs.create(slug="asha-rao")
    with django_assert_max_num_queries(5):
        response = client.get("/counsellors/asha-rao/?utm_source=instagram")
    assert response.status_code == 301 and response["Location"] == "/counsellors/asha/?utm_source=instagram"
    assert "max-age=86400" in response["Cache-Control"]  # not kept for ever: it may be given back
    page = client.get(client.get("/book/?counsellor=asha-rao")["Location"]).content.decode()
    assert re.search(rf'<option value="{profiled.pk}"[^>]*selected', page)
    # Hidden from clients, the profile is not found by its old name either.
    profiled.is_active = False
    profiled.save()
    assert client.get("/counsellors/asha-rao/").status_code == 404
    page = client.get(client.get("/book/?counsellor=asha-rao")["Location"]).content.decode()
    assert not re.search(rf'<option value="{profiled.pk}"[^>]*selected', page)


# --- Narrowing the list -----------------------------------------------------------------------


@pytest.fixture
def team(profiled, other_counsellor):
    """Asha: English, Hindi, Marathi, online only. Rohan: english and Tamil, both ways."""
    other_counsellor.languages = "english, Tamil"
    other_counsellor.save()
    Counsellor.objects.create(display_name="Meera Iyer", slug="meera", languages="Tamil", offers_online=False)
    return profiled, other_counsellor


def names_listed(html: str) -> list[str]:
    return re.findall(r'<h2 class="text-xl font-bold"><a href="/counsellors/[\w-]+/">([^<]+)</a>', html)


def test_the_list_narrows_by_language_and_way_of_meeting(client, team):
    html = client.get("/counsellors/").content.decode()
    assert names_listed(html) == ["Asha Menon", "Meera Iyer", "Rohan Kapoor"]
    # Each language once, whatever its spelling, in alphabetical order.
    options = re.findall(r'<option value="([^"]*)"', html[html.index('name="language"') :].split("</select>")[0])
    assert options == ["", "English", "Hindi", "Marathi", "Tamil"]

    html = client.get("/counsellors/", {"language": "Tamil"}).content.decode()
    assert names_listed(html) == ["Meera Iyer", "Rohan Kapoor"]
    assert "2 counsellors fit your choices." in html and 'href="/counsellors/">Show all counsellors' in html
    assert '<option value="Tamil" selected>' in html

    html = client.get("/counsellors/", {"language": "English", "mode": "in_person"}).content.decode()
    assert names_listed(html) == ["Rohan Kapoor"]
    assert "1 counsellor fits your choices." in html

    html = client.get("/counsellors/", {"language": "Marathi", "mode": "in_person"}).content.decode()
    assert names_listed(html) == []
    assert "None of our counsellors fits these choices." in html


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"language": "Klingon"}, "language", "Choose one of the languages listed, or “Any language”."),
        ({"mode": "by-post"}, "mode", "Choose online, in person, or “Online or in person”."),
    ],
)
def test_a_choice_that_is_not_offered_is_explained_next_to_it_and_the_other_applies(
    client, team, query, field, message
):
    response = client.get("/counsellors/", query)
    assert response.status_code == 200
    html = response.content.decode()
    assert names_listed(html) == ["Asha Menon", "Meera Iyer", "Rohan Kapoor"]
    # With a valid choice beside it, that one narrows the list.
    other = {"mode": "in_person"} if field == "language" else {"language": "Hindi"}
    html_both = client.get("/counsellors/", {**query, **other}).content.decode()
    assert names_listed(html_both) == (["Meera Iyer", "Rohan Kapoor"] if field == "language" else ["Asha Menon"])
    assert message in html_both
    block = html[html.index(f'id="field-{field}"') :]
    assert message in block[: block.index("</select>")]
    assert "<title>Error:" in html
    summary = html[html.index("There is a problem") :]
    assert f'href="#id_{field}"' in summary[: summary.index("</ul>")]


def test_no_filter_where_it_would_change_nothing(client, counsellor, other_counsellor):
    # Both speak the same languages and meet both ways: nothing to narrow by.
    for c in (counsellor, other_counsellor):
        c.languages = "English, Hindi"
        c.save()
    html = client.get("/counsellors/", {"utm_source": "newsletter"}).content.decode()
    assert names_listed(html) == ["Asha Menon", "Rohan Kapoor"]
    assert "Find a counsellor" not in html and "There is a problem" not in html
    # A link that asks for a choice still shows what it chose, and the form to change it.
    html = client.get("/counsellors/", {"mode": "in_person"}).content.decode()
    assert "Find a counsellor" in html and "2 counsellors fit your choices." in html


def test_a_language_written_by_hand_is_read_as_listed(client, team):
    html = client.get("/counsellors/", {"language": "tAMIL"}).content.decode()
    assert names_listed(html) == ["Meera Iyer", "Rohan Kapoor"]
    assert '<option value="Tamil" selected>' in html and "There is a problem" not in html


def test_the_demo_counsellors_have_their_profiles_in_hindi_and_a_second_run_keeps_edits(client):
    call_command("seed_demo", days=1, stdout=io.StringIO())
    asha = Counsellor.objects.get(slug="asha-menon")
    asha.approach_hi = "स्टाफ़ का लिखा।"
    asha.save()
    call_command("seed_demo", days=1, stdout=io.StringIO())
    asha.refresh_from_db()
    assert asha.approach_hi == "स्टाफ़ का लिखा।"  # what exists is left as it is
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    hindi = client.get("/counsellors/").content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    english = client.get("/counsellors/").content.decode()
    for counsellor in Counsellor.objects.all():
        assert counsellor.title_hi and counsellor.approach_hi and counsellor.bio_hi
        assert counsellor.title_hi in hindi and counsellor.title not in hindi
        assert counsellor.title in english and counsellor.title_hi not in english


def test_the_next_free_time_is_one_a_kind_of_session_fits(client, counsellor, session_type):
    """A 30-minute free time when every session lasts 50 is no time a client can book."""
    start = next_weekday_at(10)
    short = Slot.objects.create(counsellor=counsellor, start=start, end=start + timedelta(minutes=30))
    later = next_weekday_at(14)
    fits = Slot.objects.create(counsellor=counsellor, start=later, end=later + timedelta(minutes=60))
    page = client.get(f"/counsellors/{counsellor.slug}/").content.decode()
    assert f"?slot={fits.pk}" in page and f"?slot={short.pk}" not in page
