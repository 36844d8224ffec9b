"""'My profile' in the portal: a counsellor edits their own public profile; administrators any."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.urls import reverse

from bookings.models import Counsellor, CounsellorPreviousSlug

pytestmark = pytest.mark.django_db

VALID = {
    "display_name": "Dr Asha Menon",
    "title": "Clinical psychologist",
    "approach": "Unhurried, practical sessions.",
    "bio": "Trained in Bengaluru.",
    "languages": "English, Malayalam",
    "offers_online": "on",
    "daily_summary": "on",
}


def test_a_counsellor_is_taken_to_their_own_profile_and_saves_it(counsellor_client, counsellor, client):
    response = counsellor_client.get(reverse("staff:profile"))
    assert response.status_code == 302 and response["Location"] == reverse("staff:profile_edit", args=[counsellor.pk])
    page = counsellor_client.get(response["Location"]).content.decode()
    assert "My profile" in page and "How you work" in page
    response = counsellor_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), VALID)
    assert response.status_code == 302
    counsellor.refresh_from_db()
    assert (counsellor.display_name, counsellor.languages, counsellor.daily_summary) == (
        "Dr Asha Menon",
        "English, Malayalam",
        True,
    )
    assert counsellor.offers_in_person is False and counsellor.slug == "asha"
    public = client.get("/counsellors/asha/").content.decode()
    assert "Unhurried, practical sessions." in public and "English, Malayalam" in public


def test_a_counsellor_cannot_edit_someone_elses_profile(counsellor_client, other_counsellor):
    url = reverse("staff:profile_edit", args=[other_counsellor.pk])
    assert counsellor_client.get(url).status_code == 404
    assert counsellor_client.post(url, VALID).status_code == 404
    assert Counsellor.objects.get(pk=other_counsellor.pk).display_name == "Rohan Kapoor"


def test_administrators_choose_and_edit_any_profile(admin_client, counsellor, other_counsellor):
    page = admin_client.get(reverse("staff:profile")).content.decode()
    assert "Asha Menon" in page and "Rohan Kapoor" in page
    typed = {**VALID, "slug": other_counsellor.slug, "is_active": "on"}
    response = admin_client.post(reverse("staff:profile_edit", args=[other_counsellor.pk]), typed)
    assert response.status_code == 302
    assert Counsellor.objects.get(pk=other_counsellor.pk).title == "Clinical psychologist"


def test_administrators_give_a_profile_another_link_name(admin_client, client, counsellor, other_counsellor):
    """After a change of name, say: the old address leads to the new one, for good."""
    old = f"/counsellors/{counsellor.slug}/"
    typed = {**VALID, "display_name": "Dr Asha Rao", "is_active": "on"}
    taken = admin_client.post(
        reverse("staff:profile_edit", args=[counsellor.pk]), {**typed, "slug": other_counsellor.slug}
    )
    assert taken.status_code == 400 and "Another counsellor has this link name" in taken.content.decode()
    bad = admin_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), {**typed, "slug": "asha rao!"})
    assert bad.status_code == 400 and "Use only letters, numbers and hyphens" in bad.content.decode()
    saved = admin_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), {**typed, "slug": "Asha-Rao"})
    assert saved.status_code == 302
    assert client.get("/counsellors/asha-rao/").status_code == 200
    moved = client.get(old)
    assert moved.status_code == 301 and moved["Location"] == "/counsellors/asha-rao/"


def test_a_link_name_changed_twice_and_back_leads_to_the_current_one(admin_client, client, counsellor):
    url = reverse("staff:profile_edit", args=[counsellor.pk])
    typed = {**VALID, "is_active": "on"}
    for slug in ("asha-rao", "dr-asha-rao"):
        assert admin_client.post(url, {**typed, "slug": slug}).status_code == 302
    for old in ("asha", "asha-rao"):
        assert client.get(f"/counsellors/{old}/")["Location"] == "/counsellors/dr-asha-rao/"
    # Back to the first: it opens the profile again, and the others lead to it.
    assert admin_client.post(url, {**typed, "slug": "asha"}).status_code == 302
    assert client.get("/counsellors/asha/").status_code == 200
    for old in ("asha-rao", "dr-asha-rao"):
        assert client.get(f"/counsellors/{old}/")["Location"] == "/counsellors/asha/"
    assert sorted(CounsellorPreviousSlug.objects.values_list("slug", flat=True)) == ["asha-rao", "dr-asha-rao"]


def test_another_counsellor_cannot_take_a_link_name_a_profile_had(admin_client, client, counsellor, other_counsellor):
    """A client following a link someone recommended them would meet someone else, unwarned."""
    typed = {**VALID, "is_active": "on"}
    assert (
        admin_client.post(
            reverse("staff:profile_edit", args=[counsellor.pk]), {**typed, "slug": "asha-rao"}
        ).status_code
        == 302
    )
    response = admin_client.post(
        reverse("staff:profile_edit", args=[other_counsellor.pk]), {**typed, "display_name": "Rohan", "slug": "asha"}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Dr Asha Menon&#x27;s profile had this link name before, and old links with it lead there." in html
    assert 'aria-invalid="true"' in re.search(r'<input[^>]*name="slug"[^>]*>', html).group(0)
    other_counsellor.refresh_from_db()
    assert (other_counsellor.slug, other_counsellor.display_name) == ("rohan", "Rohan Kapoor")
    assert client.get("/counsellors/asha/")["Location"] == "/counsellors/asha-rao/"


def test_a_profile_must_offer_a_way_of_meeting(counsellor_client, counsellor):
    data = {k: v for k, v in VALID.items() if k != "offers_online"}
    response = counsellor_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), data)
    assert response.status_code == 400
    assert "Offer at least one way of meeting" in response.content.decode()
    counsellor.refresh_from_db()
    assert counsellor.offers_online is True and counsellor.title == ""


def test_a_counsellor_gives_their_profile_in_hindi_for_clients_reading_hindi(counsellor_client, counsellor, client):
    url = reverse("staff:profile_edit", args=[counsellor.pk])
    page = counsellor_client.get(url).content.decode()
    # Each Hindi field, marked as Hindi, comes right after its English one, with its hint.
    names = re.findall(r'<(?:input|textarea)[^>]*name="(\w+)"', page)
    for field in ("title", "approach", "bio"):
        assert names[names.index(field) + 1] == f"{field}_hi"
        tag = re.search(rf'<(?:input|textarea)[^>]*name="{field}_hi"[^>]*>', page).group(0)
        assert 'lang="hi"' in tag and f'aria-describedby="id_{field}_hi-hint"' in tag
    assert 'for="id_title_hi">Title in Hindi' in page and "left empty, they see the title in English" in page
    hindi = {
        "title_hi": "क्लिनिकल साइकोलॉजिस्ट",
        "approach_hi": "बिना जल्दबाज़ी के, व्यावहारिक सेशन।",
        "bio_hi": "बेंगलुरु में प्रशिक्षित।",
    }
    response = counsellor_client.post(url, {**VALID, **hindi})
    assert response.status_code == 302
    counsellor.refresh_from_db()
    assert {field: getattr(counsellor, field) for field in hindi} == hindi
    page = counsellor_client.get(url).content.decode()
    assert all(text in page for text in hindi.values())  # shown again to edit
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    public = client.get("/counsellors/asha/").content.decode()
    assert all(text in public for text in hindi.values()) and "Unhurried, practical sessions." not in public
    # Emptied, the Hindi page falls back to the English again.
    assert counsellor_client.post(url, {**VALID, **dict.fromkeys(hindi, "")}).status_code == 302
    public = client.get("/counsellors/asha/").content.decode()
    assert "Unhurried, practical sessions." in public and hindi["approach_hi"] not in public


def test_a_counsellor_turns_the_emails_about_changes_to_their_sessions_off_and_on(counsellor_client, counsellor):
    url = reverse("staff:profile_edit", args=[counsellor.pk])
    html = counsellor_client.get(url).content.decode()
    assert 'name="change_emails"' in html and "Email me when a session of mine is cancelled" in html
    assert counsellor.change_emails is True  # on unless turned off
    assert counsellor_client.post(url, VALID).status_code == 302  # the box left unticked
    counsellor.refresh_from_db()
    assert counsellor.change_emails is False
    counsellor_client.post(url, {**VALID, "change_emails": "on"})
    counsellor.refresh_from_db()
    assert counsellor.change_emails is True


def test_a_refused_save_leaves_the_page_saying_what_is_stored(admin_client, counsellor, make_booking):
    """Unticking online is refused while an online session is to come: the heading keeps the
    stored name, and the page does not call a profile clients see hidden."""
    make_booking("confirmed", counsellor=counsellor)
    typed = {
        "display_name": "Renamed Person",
        "slug": counsellor.slug,
        "languages": "English",
        "offers_in_person": "on",
        "change_emails": "on",
        "is_active": "",
    }
    response = admin_client.post(reverse("staff:profile_edit", args=[counsellor.pk]), typed)
    assert response.status_code == 400
    html = response.content.decode()
    assert "this way of meeting stays" in html  # refused for that reason, not another
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1)
    assert "Asha Menon" in heading and "Renamed Person" not in heading
    assert "(hidden: the profile is not shown to clients yet)" not in html
    assert 'value="Renamed Person"' in html  # what was typed stays in the form
    counsellor.refresh_from_db()
    assert counsellor.display_name == "Asha Menon" and counsellor.is_active
