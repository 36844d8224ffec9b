"""Hindi: every public page and every client email, rendered in Hindi, shows no English
sentence from the catalog; the switcher; emails in the language the client booked in; the
committed .mo matches the .po.

How "no untranslated string" is checked, twice: every msgid in the compiled catalog is cut at
its placeholders and markup into pieces; a piece longer than three words that appears verbatim
on a Hindi page was left in English. The same pages in English must contain such pieces,
so the check is known to see them. And no word in Latin letters may be read on a Hindi page
(its text, and what a screen reader says: aria-label, title, alt, placeholder, a button's
value), except inside an element marked lang="en" and the words that are the same in both
languages: names of people, the clinic and brands, acknowledgement IDs, addresses, references.
That catches what the first cannot: short messages, Django's own, text nobody marked.
"""

from __future__ import annotations

import ast
import gettext
import html
import re
import shutil
import unicodedata
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.messages import SUCCESS
from django.contrib.messages.storage.base import Message
from django.core import mail
from django.core.management import call_command
from django.utils import timezone, translation

from bookings import notifications
from bookings.models import (
    Actor,
    Booking,
    LinkToken,
    Mode,
    OutboundEmail,
    Payment,
    SessionType,
    Slot,
    Status,
    WaitlistEntry,
    WaitlistToken,
)
from bookings.templatetags.mindsettler import link_minutes, minutes, money, when, whole_ids
from bookings.tests.journey import ABOUT, consent, link_in_last_email, session_data, start, url
from bookings.tokens import waitlist_token_create
from conftest import next_weekday_at

pytestmark = pytest.mark.django_db

LOCALE = Path(settings.BASE_DIR) / "locale"
PO = LOCALE / "hi" / "LC_MESSAGES" / "django.po"
MO = LOCALE / "hi" / "LC_MESSAGES" / "django.mo"
DEVANAGARI = re.compile(r"[\u0900-\u097F]")
# Emails only staff receive; they stay in English like the staff portal.
STAFF_EMAILS = {
    "staff_invite",
    "staff_setup_link",
    "staff_account",
    "payment_attention",
    "daily_summary",
    "new_request",
    "record_to_rebook",
    "session_changed",
    "api_token_expiring",
}


def _po_entries(path: Path) -> dict[str, list[str]]:
    """{msgid (with context and plural joined in): [msgstr, ...]} of a .po file."""
    entries: dict[str, list[str]] = {}
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        fuzzy = False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            if line.startswith("#"):
                continue
            match = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d\])?) (\".*\")$", line)
            if match:
                key = match.group(1)
                fields[key] = ast.literal_eval(match.group(2))
            elif line.startswith('"'):
                fields[key] += ast.literal_eval(line)
        if not fields.get("msgid"):
            continue
        msgid = fields["msgid"]
        if "msgctxt" in fields:
            msgid = f"{fields['msgctxt']}\x04{msgid}"
        if "msgid_plural" in fields:
            msgid = f"{msgid}\x00{fields['msgid_plural']}"
        entries[msgid] = ["" if fuzzy else v for k, v in sorted(fields.items()) if k.startswith("msgstr")]
    return entries


def _mo_catalog() -> dict[str, list[str]]:
    with MO.open("rb") as f:
        raw = gettext.GNUTranslations(f)._catalog  # type: ignore[attr-defined]
    catalog: dict[str, list[str]] = {}
    for key, value in raw.items():
        if key == "":
            continue
        if isinstance(key, tuple):  # a plural form: (msgid, n), whose msgid is just the singular
            continue
        catalog[key] = [value]
    return catalog


def _english_pieces() -> set[str]:
    """The catalog's English, cut at placeholders and markup, keeping pieces of 4+ words."""
    pieces = set()
    for msgid in _po_entries(PO):
        text = msgid.split("\x04")[-1]
        for part in text.split("\x00"):
            for piece in re.split(r"%\(\w+\)[sd]|<[^>]*>", part):
                piece = " ".join(piece.split()).strip(" .,:;()“”\"'·—-")
                if len(piece.split()) > 3:
                    pieces.add(piece)
    return pieces


PIECES = _english_pieces()


def _visible(markup: str) -> str:
    """Text and attribute values (aria-label, title, ...), entities decoded, spaces collapsed."""
    text = re.sub(r"<[^>]+>", " ", markup) + " " + markup
    return " ".join(html.unescape(text).split())


def english_left_in(markup: str) -> list[str]:
    text = _visible(markup)
    return sorted(piece for piece in PIECES if piece in text)


# Read out on Hindi pages as they are: the clinic, brands and formats, the time zone's letters.
SAME_IN_HINDI = {settings.CLINIC_NAME, "IST", "UPI", "Razorpay", "JSON", "JavaScript"}
# Not words: acknowledgement IDs, addresses, links, the providers' references, a file's type.
NOT_WORDS = re.compile(r"\bMS-[A-Z0-9]{6}\b|\S+@\S+|https?://\S+|\b\w+_\w+\b|\.ics\b")
LATIN_WORD = re.compile(r"[A-Za-z]+")
SPOKEN_ATTRIBUTES = {"aria-label", "aria-description", "title", "alt", "placeholder"}
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _ReadText(HTMLParser):
    """What a reader sees or hears in the page's own language: text and spoken attributes,
    outside scripts, styles, text areas and elements marked as being in another language."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, bool]] = []  # (tag, whether it or an ancestor is not Hindi)
        self.read: list[str] = []

    def _elsewhere(self) -> bool:
        return bool(self.open) and self.open[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        elsewhere = (
            self._elsewhere()
            or tag in ("script", "style", "svg", "textarea")  # a text area's is what the client typed
            or (tag != "html" and attributes.get("lang") not in (None, "hi"))
        )
        if tag not in VOID_ELEMENTS:
            self.open.append((tag, elsewhere))
        if elsewhere:
            return
        for key, value in attributes.items():
            button = tag == "input" and attributes.get("type") in ("submit", "button")
            if value and (key in SPOKEN_ATTRIBUTES or (key == "value" and button)):
                self.read.append(value)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] == tag:
                del self.open[i:]
                break

    def handle_data(self, data: str) -> None:
        if not self._elsewhere():
            self.read.append(data)


def latin_words_in(markup: str, *, names: set[str] = frozenset()) -> list[str]:
    """Words in Latin letters a Hindi reader meets, but for `names` (people's, session types')
    and the words that are the same in Hindi."""
    parser = _ReadText()
    parser.feed(markup)
    text = NOT_WORDS.sub(" ", " ".join(parser.read))
    allowed = {word for phrase in SAME_IN_HINDI | set(names) for word in LATIN_WORD.findall(phrase)}
    allowed |= {"".join(word[0] for word in LATIN_WORD.findall(name)[:2]).upper() for name in names}  # avatars
    # A letter alone is no English left (the ID's look-alikes: "0, 1, I, L, O").
    return sorted({word for word in LATIN_WORD.findall(text) if word not in allowed and len(word) > 1})


def names_in_the_database() -> set[str]:
    """What people and staff typed, shown as typed: names, and session types' and counsellors'
    English where no Hindi was given (their own test checks those are marked lang="en")."""
    from bookings.models import Counsellor

    names = set(Counsellor.objects.values_list("display_name", flat=True))
    names |= set(Booking.objects.values_list("client_name", flat=True))
    names |= set(WaitlistEntry.objects.values_list("client_name", flat=True))
    names |= set(SessionType.objects.values_list("name", flat=True))
    return names


def assert_hindi(name: str, hindi: str, english: str | None = None, *, names: set[str] = frozenset()) -> None:
    """`names`: what else the client typed that the page shows, not yet in the database."""
    assert DEVANAGARI.search(hindi), f"{name}: no Hindi at all"
    left = english_left_in(hindi)
    assert left == [], f"{name}: English left on the Hindi version: {left}"
    latin = latin_words_in(hindi, names=names_in_the_database() | set(names))
    assert latin == [], f"{name}: words in Latin letters on the Hindi version: {latin}"
    if english is not None:
        assert english_left_in(english), f"{name}: the English version shows no catalog text, so the check saw nothing"


def get(client, path: str, language: str, **kwargs) -> str:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get(path, **kwargs)
    assert response.status_code in (200, 404), (path, response.status_code)
    return response.content.decode()


def both(client, path: str) -> tuple[str, str]:
    return get(client, path, "hi"), get(client, path, "en")


# --- The catalog ------------------------------------------------------------------------------


def test_every_msgid_has_a_hindi_translation_that_keeps_its_placeholders():
    entries = _po_entries(PO)
    assert len(entries) > 500
    for msgid, msgstrs in entries.items():
        assert all(msgstrs), f"untranslated or fuzzy: {msgid!r}"
        for msgstr in msgstrs:
            wanted = set(re.findall(r"%\(\w+\)[sd]", msgid.split("\x00")[-1]))
            assert set(re.findall(r"%\(\w+\)[sd]", msgstr)) <= wanted, msgid
            assert DEVANAGARI.search(msgstr), f"not Hindi: {msgid!r} -> {msgstr!r}"


# One Hindi word, spelt one way, for each thing a client reads about: an anxious reader should
# not wonder whether a "सत्र" is their "सेशन". The words not to use, and the one used instead.
NOT_OUR_WORDS = {
    "सत्र": "सेशन",
    "परामर्शदाता": "काउंसलर",
    "आरक्षण": "बुकिंग",  # the booking; a time is "आरक्षित" (reserved)
    "वेटलिस्ट": "प्रतीक्षा सूची",
    "रिफंड": "रिफ़ंड",
    "पेमेंट": "भुगतान",
    "कैंसल": "रद्द",
    "शामिल": "जुड़ें (joining the waitlist)",
    "गलत": "ग़लत",
    "तरीका": "तरीक़ा",
    "तरीके": "तरीक़े",
    "ख़ाली": "खाली",
    "बाकी": "बाक़ी",
    # A time "released" is opened to others: "छोड़ दिया" can read as "we dropped your time".
    "समय छोड़": "समय दूसरों के लिए खोल दिया",
    "खुल जाएगा": "दूसरों के लिए खोल दिया जाएगा",
    "किसी ऐसे से": "किसी ऐसे व्यक्ति से",
    "हिन्दी": "हिंदी (as the language switcher, Django's own name for it, spells it)",
    "कोई पसंद नहीं": "कोई ख़ास पसंद नहीं (“No preference”, not “I like none”)",
    "क्यों आ रहे": "किस बारे में बात करना चाहेंगे (“What brings you”, not “why are you coming”)",
}


def test_the_english_names_each_thing_one_way():
    """The MS-XXXXXX code is the acknowledgement ID wherever a client reads it: a "reference"
    is a payment's or a refund's. A waitlist is a waitlist, not a "waiting list"."""
    for msgid in _po_entries(PO):
        for found in re.finditer(r"(\S+ )?\(?\breferences?\b", msgid, re.I):
            before = (found.group(1) or "").strip(" (").lower()
            assert before in ("payment", "refund", "received"), f"{msgid!r}: a reference that is not a payment's"
        assert "waiting list" not in msgid.lower(), msgid


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def test_the_hindi_uses_one_word_and_one_spelling_for_each_thing():
    for msgid, msgstrs in _po_entries(PO).items():
        for msgstr in msgstrs:
            for wrong, right in NOT_OUR_WORDS.items():
                # Compared decomposed, so that "ग़" typed as one character or two is the same.
                found = re.search(rf"(?<![\u0900-\u097F]){_nfd(wrong)}(?![\u093C])", _nfd(msgstr))
                assert not found, f"{msgid!r}: {wrong!r} where the catalogue says {right!r}"


def test_the_committed_mo_is_compiled_from_the_committed_po():
    """A new user without GNU gettext gets Hindi from the committed .mo; it must say what
    the .po says. Fix with `make messages` (or `manage.py compilemessages -l hi`)."""
    po = {k: v for k, v in _po_entries(PO).items() if "\x00" not in k}
    mo = _mo_catalog()
    assert po == mo


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext (apt-get install gettext)")
def test_the_catalog_holds_every_string_marked_in_the_code(tmp_path, settings, monkeypatch):
    """makemessages, run afresh, finds no msgid the committed catalog lacks (or no longer needs)."""
    # makemessages writes into any locale/ folder of the directory it runs in, so it runs in a
    # copy: the catalog copied, the sources linked. The committed catalog is only read.
    shutil.copytree(LOCALE, tmp_path / "locale")
    for entry in Path(settings.BASE_DIR).iterdir():
        if entry.name not in ("locale", ".git", ".venv", "node_modules"):
            (tmp_path / entry.name).symlink_to(entry)
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    monkeypatch.chdir(tmp_path)
    call_command(
        "makemessages",
        locale=["hi"],
        no_location=True,
        symlinks=True,
        verbosity=0,
        ignore_patterns=[
            ".venv/*",
            "node_modules/*",
            "e2e/*",
            "benchmarks/*",
            "staff/*",
            "templates/staff/*",
            "templates/account/*",
            "templates/allauth/*",
            "templates/mfa/*",
            "bookings/tests/*",
            "bookings/management/*",
            "bookings/api/*",
            "mindsettler/tests/*",
            "docs/*",
            "deploy/*",
            "static/*",
            "staticfiles/*",
        ],
    )
    fresh = set(_po_entries(tmp_path / "locale" / "hi" / "LC_MESSAGES" / "django.po"))
    assert fresh == set(_po_entries(PO))


# --- Choosing the language ----------------------------------------------------------------------


def test_the_switcher_is_a_labelled_form_that_sets_the_language_without_javascript(client):
    page = client.get("/").content.decode()
    assert '<html lang="en"' in page
    form = re.search(r'<form action="/i18n/setlang/" method="post".*?</form>', page, re.S).group(0)
    assert 'name="csrfmiddlewaretoken"' in form
    assert '<label for="language-select">' in form and '<select id="language-select" name="language"' in form
    assert 'value="hi"' in form and ">हिंदी</option>" in form and 'type="submit"' in form  # by its own name

    response = client.post("/i18n/setlang/", {"language": "hi", "next": "/status/"})
    assert response.status_code == 302 and response["Location"] == "/status/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "hi"
    page = client.get("/status/").content.decode()
    assert '<html lang="hi"' in page and "बुकिंग देखें" in page
    assert '<option value="hi" lang="hi" selected>' in page
    assert '<option value="en" lang="en">English</option>' in page  # found by those who read English

    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert '<html lang="en"' in client.get("/").content.decode()


def test_the_browser_language_is_used_until_the_client_chooses(client):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="hi-IN,hi;q=0.9,en;q=0.5").content.decode()
    assert '<html lang="hi"' in page
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="hi").content.decode()
    assert '<html lang="en"' in page


def test_the_staff_portal_and_the_api_stay_in_english(client, admin_user):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    assert '<html lang="en"' in client.get("/accounts/login/").content.decode()
    response = client.get("/api/v1/bookings/MS-AAAAAA/")
    assert response.get("Content-Language", "en") == "en"


# --- Public pages ------------------------------------------------------------------------------


@pytest.fixture
def counsellor_with_profile(counsellor):
    counsellor.bio = "Asha works with adults and students."
    counsellor.languages = "English, Hindi"
    counsellor.save()
    return counsellor


def test_the_fixed_pages_are_in_hindi(client, counsellor_with_profile, other_counsellor, slot, session_type):
    other_counsellor.languages = "Tamil"
    other_counsellor.offers_in_person = False
    other_counsellor.save()
    for path in (
        "/",
        "/privacy/",
        "/policies/",
        "/counsellors/",
        "/counsellors/?language=Hindi",  # one fits
        "/counsellors/?language=Tamil&mode=in_person",  # none fits
        "/counsellors/?language=Klingon&mode=by-post",  # not offered
        f"/counsellors/{counsellor_with_profile.slug}/",
        "/status/",
        "/waitlist/",
        f"/waitlist/?session_type={session_type.pk}&mode=online",
        "/no-such-page/",
        "/bookings/not-a-real-token/",
        "/verify/not-a-real-token/",
        "/cancel/not-a-real-token/",
        "/reschedule/not-a-real-token/",
        "/waitlist/verify/not-a-real-token/",
    ):
        assert_hindi(path, *both(client, path))


def test_the_languages_counsellors_speak_are_named_in_hindi_on_hindi_pages(client, counsellor, other_counsellor):
    counsellor.languages = "english, Hindi, Malayalam, Klingon"  # as staff typed them
    counsellor.save()
    other_counsellor.languages = "Tamil"
    other_counsellor.save()
    hindi, english = both(client, "/counsellors/")
    assert "अंग्रेज़ी, हिंदी, मलयालम, Klingon" in hindi  # one nobody has translated, as written
    assert "English, Hindi, Malayalam, Klingon" in english  # the usual names spelt as usual
    # The filter's choices are labelled in Hindi; their values stay the names, so links work.
    assert '<option value="Malayalam">मलयालम</option>' in hindi and '<option value="Tamil">तमिल</option>' in hindi
    assert '<option value="Tamil">Tamil</option>' in english
    narrowed = get(client, "/counsellors/?language=Tamil", "hi")
    assert other_counsellor.display_name in narrowed and counsellor.display_name not in narrowed


def test_the_wizard_and_the_pages_after_it_are_in_hindi_and_the_booking_keeps_the_language(
    client, slot, session_type, counsellor
):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    run = start(client)
    assert_hindi("wizard session", get(client, url(run, "session"), "hi"))
    # A step with errors: the summary, the field errors, the rules' messages.
    response = client.post(url(run, "session"), {"session_type": "", "mode": ""})
    assert "field-error" in response.content.decode()
    assert_hindi("wizard session errors", response.content.decode())
    for step, data in (
        ("session", session_data(session_type=session_type, slot=slot)),
        ("about", ABOUT),
        ("concerns", {"concerns": "नींद नहीं आती"}),
    ):
        assert_hindi(f"wizard {step}", get(client, url(run, step), "hi"))
        assert client.post(url(run, step), data).status_code == 303
    typed = {ABOUT["client_name"]}
    assert_hindi("wizard review", get(client, url(run, "review"), "hi"), names=typed)
    response = client.post(url(run, "review"), {})
    assert_hindi("wizard review errors", response.content.decode(), names=typed)
    response = client.post(url(run, "review"), consent(client, run), follow=True)
    assert_hindi("wizard done", response.content.decode())

    booking = Booking.objects.get()
    assert booking.language == "hi"
    verify_email = mail.outbox[-1]
    assert_hindi("verify email", verify_email.subject + verify_email.body)

    verify_path = link_in_last_email("/verify/")
    assert_hindi("verify page", get(client, verify_path, "hi"))
    response = client.post(verify_path, follow=True)
    assert_hindi("verified page", response.content.decode())
    # The client switches the site to English later: their emails stay in Hindi.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    received = mail.outbox[-1]
    assert received.subject.startswith("हमें आपका बुकिंग अनुरोध")
    assert_hindi("request received email", received.subject + received.body)

    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    response = client.post("/status/", {"lookup": "ack", "ack_id": booking.ack_id})
    assert_hindi("status result", response.content.decode())
    response = client.post("/status/", {"lookup": "email", "email": booking.email}, follow=True)
    assert_hindi("status email result", response.content.decode())
    assert_hindi("booking links email", mail.outbox[-1].subject + mail.outbox[-1].body)


def test_the_wizards_length_limits_are_in_hindi_in_the_page_and_its_htmx_fragments(client, slot, session_type):
    """The limits were translated once, when the forms were defined, so they read 'Use 120
    characters or fewer.' on Hindi pages whatever the language then."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    run = start(client)
    too_long = session_data(session_type=session_type, preferred_times="x" * 501)
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        page = client.post(url(run, "session"), too_long, **headers).content.decode()
        assert "500 अक्षर या उससे कम लिखें।" in page
        assert_hindi("wizard session, too long", page)
        checked = client.post(url(run, "session"), {**too_long, "_validate": "preferred_times"}, **headers)
        assert "500 अक्षर या उससे कम लिखें।" in checked.content.decode()
    client.post(url(run, "session"), session_data(session_type=session_type, slot=slot))
    page = client.post(url(run, "about"), {**ABOUT, "client_name": "x" * 121}).content.decode()
    assert "120 अक्षर या उससे कम लिखें।" in page
    client.post(url(run, "about"), ABOUT)
    page = client.post(url(run, "concerns"), {"concerns": "x" * 2001}).content.decode()
    assert "2000 अक्षर या उससे कम लिखें।" in page
    assert_hindi("wizard concerns, too long", page)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert (
        "Use 2000 characters or fewer." in client.post(url(run, "concerns"), {"concerns": "x" * 2001}).content.decode()
    )


def test_a_session_type_named_in_hindi_is_shown_so_to_clients_reading_hindi(
    client, slot, session_type, make_booking, manage_token
):
    name, about = "व्यक्तिगत सेशन", "पचास मिनट की बातचीत, अकेले।"
    session_type.name_hi, session_type.description_hi = name, about
    session_type.save()
    booking = make_booking(Status.APPROVED, language="hi")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    wizard = url(start(client), "session")
    for path in ("/", wizard, "/waitlist/", f"/bookings/{manage_token(booking)}/"):
        hindi, english = both(client, path)
        assert name in hindi and session_type.name not in hindi, path
        assert session_type.name in english and name not in english, path
    hindi, english = both(client, "/")
    assert about in hindi and session_type.description in english and about not in english
    # Where staff gave no Hindi name, Hindi pages show the name they gave.
    session_type.name_hi = ""
    session_type.save()
    assert session_type.name in get(client, "/", "hi")


def test_a_session_type_given_no_hindi_is_marked_as_english_on_hindi_pages(
    client, slot, session_type, make_booking, manage_token
):
    """A screen reader reads the English name and description with English pronunciation,
    not as Hindi; the Hindi ones, and every name on an English page, in the page's language."""
    session_type.description = "Fifty minutes, one to one."
    session_type.name_hi = session_type.description_hi = ""
    session_type.save()
    booking = make_booking(Status.APPROVED, language="hi")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    wizard = url(start(client), "session")
    booking_page = f"/bookings/{manage_token(booking)}/"
    for path in ("/", wizard, booking_page, "/waitlist/"):
        hindi, english = both(client, path)
        assert f'lang="en">{session_type.name}<' in hindi, path
        assert 'lang="en"' not in english.split("<body", 1)[1].replace('<option value="en" lang="en"', ""), path
    hindi, _ = both(client, "/")
    assert f'lang="en">{session_type.description}</p>' in hindi
    session_type.name_hi = "व्यक्तिगत सेशन"
    session_type.save()
    for path in ("/", wizard, booking_page, "/waitlist/"):
        assert f'lang="en">{session_type.name_hi}' not in get(client, path, "hi"), path
        assert session_type.name_hi in get(client, path, "hi"), path


def test_a_counsellor_profile_given_in_hindi_is_shown_so_to_clients_reading_hindi(client, counsellor):
    english = {
        "title": "Counselling psychologist",
        "approach": "Warm, practical conversations about what matters to you.",
        "bio": "Asha works with adults and students in Pune.",
    }
    hindi = {
        "title_hi": "काउंसलिंग साइकोलॉजिस्ट",
        "approach_hi": "आपके लिए जो मायने रखता है, उस पर आत्मीय और व्यावहारिक बातचीत।",
        "bio_hi": "आशा पुणे में वयस्कों और विद्यार्थियों के साथ काम करती हैं।",
    }
    for field, text in {**english, **hindi}.items():
        setattr(counsellor, field, text)
    counsellor.save()
    profile = f"/counsellors/{counsellor.slug}/"
    # The list shows the title and approach; the profile the bio too.
    for path, fields in (("/counsellors/", ("title", "approach")), (profile, ("title", "approach", "bio"))):
        hindi_page, english_page = both(client, path)
        for field in fields:
            assert english[field] in english_page and english[field] not in hindi_page, (path, field)
            assert hindi[f"{field}_hi"] in hindi_page and hindi[f"{field}_hi"] not in english_page, (path, field)
    # What the counsellor gave no Hindi for, Hindi pages show in English; the rest stays Hindi.
    counsellor.title_hi = counsellor.bio_hi = ""
    counsellor.save()
    for path in ("/counsellors/", profile):
        page = get(client, path, "hi")
        assert english["title"] in page and hindi["title_hi"] not in page, path
        assert hindi["approach_hi"] in page and english["approach"] not in page, path
    page = get(client, profile, "hi")
    assert english["bio"] in page and hindi["bio_hi"] not in page
    # Read out as English, what is in English; the Hindi as the page's language.
    assert f'<p class="text-muted" lang="en">{english["title"]}</p>' in page
    assert f'<p class="whitespace-pre-line" lang="en">{english["bio"]}</p>' in page
    assert f'<p class="whitespace-pre-line">{hindi["approach_hi"]}</p>' in page
    english_page = get(client, profile, "en")
    assert f'<p class="whitespace-pre-line">{english["bio"]}</p>' in english_page  # the page's own language


def test_a_kind_of_session_not_held_the_way_asked_is_explained_in_hindi(client, session_type):
    session_type.offers_online = False
    session_type.name_hi = "व्यक्तिगत सेशन"
    session_type.save()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    today = timezone.localdate()
    response = client.post(
        "/waitlist/",
        {
            "client_name": "मीरा",
            "email": "meera@example.com",
            "session_type": session_type.pk,
            "mode": "online",
            "date_from": today.isoformat(),
            "date_to": (today + timedelta(days=7)).isoformat(),
        },
    )
    assert "“व्यक्तिगत सेशन” ऑनलाइन नहीं होता। आमने-सामने चुनें, या कोई दूसरा सेशन।" in response.content.decode()


@pytest.mark.parametrize(
    "status", [Status.PENDING, Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED, Status.CANCELLED]
)
def test_the_booking_page_in_each_status_is_in_hindi(client, make_booking, counsellor, manage_token, status):
    booking = make_booking(status, language="hi")
    if status == Status.CONFIRMED:
        Payment.objects.create(
            booking=booking,
            provider="sandbox",
            provider_payment_id="pay_123",
            amount=booking.amount,
            currency=booking.currency,
            status=Payment.State.CONFIRMED,
            confirmed_at=timezone.now(),
        )
    path = f"/bookings/{manage_token(booking)}/"
    hindi, english = both(client, path)
    assert_hindi(f"booking page ({status})", hindi, english)
    assert str(booking.ack_id) in hindi


def test_a_bookings_links_open_in_its_language_until_the_client_chooses_another(
    client, make_booking, counsellor, manage_token
):
    """Booked in Hindi, opened on another device whose browser asks for English: the pages of
    the emailed links are in Hindi, as the emails were. The switcher's choice wins."""
    booking = make_booking(Status.APPROVED, language="hi")
    token = manage_token(booking)
    english_browser = {"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}
    page = client.get(f"/bookings/{token}/", **english_browser).content.decode()
    assert '<html lang="hi"' in page
    assert_hindi("booking page, English browser", page)
    checkout = client.post(f"/bookings/{token}/pay/", follow=True, **english_browser).content.decode()
    assert '<html lang="hi"' in checkout
    cancel = make_booking(Status.CONFIRMED, language="hi")
    client.post(f"/bookings/{manage_token(cancel)}/cancel/", **english_browser)
    assert '<html lang="hi"' in client.get(link_in_last_email("/cancel/"), **english_browser).content.decode()

    moving = make_booking(Status.CONFIRMED, language="hi")
    page = client.get(f"/bookings/{manage_token(moving)}/reschedule/", **english_browser).content.decode()
    assert '<html lang="hi"' in page

    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    assert '<html lang="en"' in client.get(f"/bookings/{token}/", **english_browser).content.decode()
    # Booked in English, opened in a Hindi browser: English, as its emails.
    del client.cookies[settings.LANGUAGE_COOKIE_NAME]
    english = make_booking(Status.APPROVED, language="en")
    page = client.get(f"/bookings/{manage_token(english)}/", HTTP_ACCEPT_LANGUAGE="hi").content.decode()
    assert '<html lang="en"' in page


def test_cancelling_moving_and_paying_pages_are_in_hindi(client, make_booking, counsellor, manage_token):
    booking = make_booking(Status.CONFIRMED, language="hi", slot=None)
    token = manage_token(booking)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    response = client.post(f"/bookings/{token}/cancel/", follow=True)
    assert_hindi("cancel requested", response.content.decode())
    cancel_path = link_in_last_email("/cancel/")
    assert_hindi("cancel confirmation email", mail.outbox[-1].subject + mail.outbox[-1].body)
    assert_hindi("cancel confirm page", *both(client, cancel_path))

    start_at = booking.slot.start + timedelta(hours=3)
    Slot.objects.create(counsellor=counsellor, start=start_at, end=start_at + timedelta(minutes=60))
    assert_hindi("reschedule page", *both(client, f"/bookings/{token}/reschedule/"))

    approved = make_booking(Status.APPROVED, language="hi")
    approved_token = manage_token(approved)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    response = client.post(f"/bookings/{approved_token}/pay/", follow=True)
    assert response.status_code == 200
    assert_hindi("sandbox checkout", response.content.decode())


@pytest.mark.parametrize("language", ["en", "hi"])
def test_a_links_life_is_told_one_way_on_the_pages_in_the_message_and_in_the_email(
    client, make_booking, counsellor, manage_token, language
):
    """The booking page and the email said the cancel link works for '1 hour' (1 घंटे) while the
    message after asking for it said '60 minutes' (60 मिनट). (The move-time page's: in
    test_reschedule.py.)"""
    booking = make_booking(Status.CONFIRMED, language=language, slot=None)
    token = manage_token(booking)
    with translation.override(language):
        life, other = link_minutes(settings.CANCELLATION_LINK_MINUTES), minutes(settings.CANCELLATION_LINK_MINUTES)
    assert life != other
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language

    booking_page = client.get(f"/bookings/{token}/").content.decode()
    message = client.post(f"/bookings/{token}/cancel/", follow=True).content.decode()
    email = mail.outbox[-1].body
    for name, text in [
        ("booking page", booking_page),
        ("message after asking to cancel", message),
        ("cancel email", email),
    ]:
        assert life in text and other not in text, f"{name}: {other!r} or no {life!r}"


def test_the_pages_after_a_move_or_a_cancellation_are_in_hindi(
    client, make_booking, counsellor, manage_token, oncommit
):
    from bookings.services import booking_cancel_request, booking_reschedule_request

    old_at, new_at = next_weekday_at(10, days_ahead=5), next_weekday_at(14, days_ahead=5)
    old_slot = Slot.objects.create(counsellor=counsellor, start=old_at, end=old_at + timedelta(minutes=60))
    new_slot = Slot.objects.create(counsellor=counsellor, start=new_at, end=new_at + timedelta(minutes=60))
    booking = make_booking(Status.CONFIRMED, language="hi", slot=old_slot)
    with oncommit():
        booking_reschedule_request(booking=booking, slot=new_slot)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    moved = client.post(link_in_last_email("/reschedule/")).content.decode()
    assert_hindi("moved page", moved)
    # The timeline's move, in the page's words and dates.
    assert_hindi("booking page after a move", *both(client, f"/bookings/{manage_token(booking)}/"))
    with oncommit():
        booking_cancel_request(booking=booking)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    assert_hindi("cancelled page", client.post(link_in_last_email("/cancel/")).content.decode())


@pytest.mark.parametrize("language", ["en", "hi"])
def test_the_example_acknowledgement_id_in_a_hint_is_kept_on_one_line(client, language):
    """At 360px the status page's hint broke its example 'MS-7K3QXP' after the hyphen."""
    page = get(client, "/status/", language)
    assert '<span class="whitespace-nowrap">MS-7K3QXP</span>' in page
    assert (
        "MS-7K3QXP"
        not in page.replace('<span class="whitespace-nowrap">MS-7K3QXP</span>', "")
        .split('id="id_ack_id_helptext"', 1)[1]
        .split("</p>", 1)[0]
    )


def test_the_wizards_notes_and_the_status_lookups_errors_are_in_hindi(client, session_type, slot, make_booking):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    response = client.post("/status/", {"lookup": "ack", "ack_id": "MS-O0O0O0"})
    assert_hindi("status look-alike error", response.content.decode())
    couples = SessionType.objects.create(name="युगल सत्र", slug="couples", duration_minutes=80, price=250000)
    run = start(client, f"?slot={slot.pk}")
    data = {**session_data(session_type=couples, slot=slot, counsellor=slot.counsellor_id), "_refresh": "1"}
    html = client.post(url(run, "session"), data, follow=True).content.decode()  # the note survives the redirect
    assert 'class="notice"' in html
    assert_hindi("time ruled out", html)


def test_the_privacy_pages_are_in_hindi(client, make_booking, manage_token):
    booking = make_booking(Status.CANCELLED, language="hi")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    response = client.post(f"/bookings/{manage_token(booking)}/privacy/erase/", follow=True)
    assert_hindi("erase requested", response.content.decode())
    erase_path = link_in_last_email("/privacy/erase/")
    assert_hindi("erase confirm page", *both(client, erase_path))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "hi"
    assert_hindi("erased page", client.post(erase_path).content.decode())


# --- Emails ------------------------------------------------------------------------------------


def _client_email_kinds() -> set[str]:
    folder = Path(settings.BASE_DIR) / "templates" / "emails"
    return {p.name.removesuffix("-subject.txt") for p in folder.glob("*-subject.txt")} - STAFF_EMAILS


def _send_every_client_email(make_booking, counsellor, session_type, language: str) -> None:
    """Every email a client can get, for bookings and waitlist entries made in `language`,
    while the active language is the other one (as in a background task or another request)."""
    other = "en" if language == "hi" else "hi"
    with translation.override(other):
        confirmed = make_booking(Status.CONFIRMED, language=language, mode=Mode.IN_PERSON)
        payment = Payment.objects.create(
            booking=confirmed,
            provider="sandbox",
            provider_payment_id="pay_123",
            amount=confirmed.amount,
            currency=confirmed.currency,
            status=Payment.State.CONFIRMED,
        )
        notifications.verification(booking=confirmed, raw_token="x")
        notifications.already_active(booking=confirmed)
        notifications.cancel_confirmation(booking=confirmed, raw_token="x")
        for to, from_status, actor in (
            (Status.PENDING, Status.DRAFT, Actor.CLIENT),
            (Status.APPROVED, Status.PENDING, Actor.STAFF),
            (Status.REJECTED, Status.PENDING, Actor.STAFF),
            (Status.CONFIRMED, Status.PAYMENT_PENDING, Actor.PROVIDER),
            (Status.CANCELLED, Status.CONFIRMED, Actor.CLIENT),
            (Status.CANCELLED, Status.APPROVED, Actor.SYSTEM),
        ):
            confirmed.status = to
            confirmed.payment_due_at = timezone.now() + timedelta(hours=24)
            notifications.on_transition(booking=confirmed, from_status=from_status, actor=actor)
        confirmed.status = Status.CONFIRMED
        notifications.payment_refunding(booking=confirmed, payment=payment)
        confirmed.status = Status.APPROVED  # a wrong amount going back; the right one still to pay
        notifications.payment_returned(booking=confirmed, payment=payment, refunded=False)
        notifications.payment_returned(booking=confirmed, payment=payment, refunded=True)
        confirmed.status = Status.CONFIRMED
        for purpose in (LinkToken.Purpose.ERASE, LinkToken.Purpose.EXPORT):
            notifications.privacy_link(booking=confirmed, purpose=purpose, raw_token="x")
        notifications.reminder(booking=confirmed)
        online = make_booking(Status.CONFIRMED, language=language)
        notifications.reminder(booking=online)
        held = make_booking(Status.DRAFT, language=language)
        notifications.request_held(draft=held, last=confirmed)
        for why in ("not_recorded", "not_offered"):
            notifications.request_not_made(draft=held, why=why)
        new_start = confirmed.slot.start + timedelta(days=1)
        new_slot = Slot.objects.create(counsellor=counsellor, start=new_start, end=new_start + timedelta(hours=1))
        notifications.reschedule_confirmation(booking=confirmed, slot=new_slot, raw_token="x")
        old_slot = confirmed.slot
        confirmed.slot = new_slot
        notifications.rescheduled(booking=confirmed, old_slot=old_slot, actor=Actor.STAFF)
        entry = WaitlistEntry.objects.create(
            client_name="Meera",
            email="meera@example.com",
            session_type=session_type,
            mode=Mode.ONLINE,
            counsellor=counsellor,
            date_from=timezone.localdate(),
            date_to=timezone.localdate() + timedelta(days=14),
            language=language,
        )
        raw = waitlist_token_create(entry=entry, purpose=WaitlistToken.Purpose.VERIFY, lifetime=timedelta(hours=1))
        notifications.waitlist_verify(entry=entry, raw_token=raw)
        notifications.waitlist_joined(entry=entry, leave_url="https://x/leave")
        notifications.waitlist_offer(entry=entry, slot=new_slot, book_url="https://x/book", leave_url="https://x/leave")
        for reason in (
            "type",
            "type_online",
            "type_in_person",
            "counsellor",
            "counsellor_online",
            "counsellor_in_person",
        ):
            notifications.waitlist_ended(entry=entry, reason=reason, book_url="https://x/book")
    # Asked for from /status/, so in the language active then.
    with translation.override(language):
        notifications.booking_links(email=confirmed.email, bookings=[confirmed])


def test_every_client_email_is_in_the_language_the_client_booked_in(make_booking, counsellor, session_type):
    _send_every_client_email(make_booking, counsellor, session_type, "hi")
    emails = list(OutboundEmail.objects.exclude(kind__in=STAFF_EMAILS).order_by("pk"))
    assert {e.kind for e in emails} == _client_email_kinds()
    for email in emails:
        assert_hindi(f"{email.kind} subject", email.subject)
        assert_hindi(f"{email.kind} text", email.body_text)
        assert_hindi(f"{email.kind} html", email.body_html)
        assert '<html lang="hi">' in email.body_html
    # A session type given no Hindi name is named in English, marked so in the HTML part.
    ended = [e for e in emails if e.kind == "waitlist_ended" and session_type.name in e.body_text]
    assert len(ended) == 3  # no longer offered; not online; not in person
    for email in ended:
        assert f'“<span lang="en">{session_type.name}</span>”' in email.body_html
        assert f"“{session_type.name}”" in email.body_text and "<span" not in email.body_text


def test_a_client_who_booked_in_english_gets_english_emails_whatever_is_active(make_booking, counsellor, session_type):
    _send_every_client_email(make_booking, counsellor, session_type, "en")
    for email in OutboundEmail.objects.exclude(kind__in=STAFF_EMAILS):
        assert not DEVANAGARI.search(email.subject + email.body_text + email.body_html), email.kind
        assert english_left_in(email.body_text), email.kind


def test_dates_prices_and_lengths_follow_the_language_and_keep_the_time_zone():
    moment = next_weekday_at(10).replace(month=12, day=1, year=2026)
    with translation.override("en"):
        assert when(moment) == "Tuesday 1 December 2026, 10:00 IST"
        assert money(12345600) == "₹123,456"
        assert (minutes(50), minutes(1)) == ("50 minutes", "1 minute")
    with translation.override("hi"):
        assert when(moment) == "मंगलवार 1 दिसंबर 2026, 10:00 IST"
        assert money(12345600) == "₹1,23,456"
        assert money(150050) == "₹1,500.50"
        assert (minutes(50), minutes(1)) == ("50 मिनट", "1 मिनट")
    with translation.override("en"):
        assert minutes(50) == "50 minutes"  # remembered per language


def test_the_reminder_sweep_writes_in_the_clients_language(make_booking, counsellor, oncommit):
    from bookings.services import reminders_send

    start_at = timezone.now() + timedelta(hours=20)
    slot = Slot.objects.create(counsellor=counsellor, start=start_at, end=start_at + timedelta(hours=1))
    make_booking(Status.CONFIRMED, slot=slot, language="hi")
    with oncommit():
        reminders_send()
    reminder = OutboundEmail.objects.get(kind="reminder")
    assert reminder.subject.startswith("याद रहे:")
    assert_hindi("reminder", reminder.body_text)


@pytest.mark.parametrize("template", ["403_csrf.html", "429.html", "500.html", "503.html"])
def test_the_error_pages_are_in_hindi(template, rf):
    from django.template.loader import render_to_string

    request = rf.get("/")
    context = {"clinic_name": "MindSettler"}
    with translation.override("hi"):
        hindi = render_to_string(template, context, request=request)
    with translation.override("en"):
        english = render_to_string(template, context, request=request)
    assert_hindi(template, hindi, english)
    assert '<html lang="hi"' in hindi


def test_the_calendar_file_speaks_the_bookings_language(make_booking, counsellor):
    from icalendar import Calendar

    from bookings.calendar import booking_ics

    booking = make_booking(Status.CONFIRMED, counsellor=counsellor, language="hi")
    [event] = Calendar.from_ical(booking_ics(booking=booking)).walk("VEVENT")
    assert str(event["summary"]) == f"Asha Menon के साथ अपॉइंटमेंट ({booking.ack_id})"
    assert str(event["location"]) == "ऑनलाइन" and "पावती आईडी" in str(event["description"])
    assert {event[name].params["LANGUAGE"] for name in ("summary", "location", "description")} == {"hi"}
    booking.language = "en"
    [event] = Calendar.from_ical(booking_ics(booking=booking)).walk("VEVENT")
    assert str(event["summary"]) == f"Appointment with Asha Menon ({booking.ack_id})"
    assert event["summary"].params["LANGUAGE"] == "en"


def test_a_message_naming_a_booking_keeps_its_id_on_one_line_and_its_text_escaped():
    """Messages are shown through whole_ids (base.html, staff/_section_notice.html)."""
    shown = whole_ids(Message(SUCCESS, "MS-7K3QXP: approved <for> Asha & Co."))
    assert shown == '<span class="whitespace-nowrap">MS-7K3QXP</span>: approved &lt;for&gt; Asha &amp; Co.'
