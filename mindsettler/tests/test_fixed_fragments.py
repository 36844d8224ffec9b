"""base.html's fixed chrome ({% fixed %}, bookings/templatetags/mindsettler.py) is rendered
once per language and settings, and never mixes them up."""

from __future__ import annotations

import re

import pytest
from django.template import Context, Template
from django.utils import translation
from django_htmx.jinja import htmx_script

pytestmark = pytest.mark.django_db


def test_the_chrome_follows_the_language(client):
    english = client.get("/status/").content.decode()
    hindi = client.get("/status/", headers={"accept-language": "hi"}).content.decode()
    again = client.get("/status/").content.decode()
    assert 'lang="en"' in english and 'lang="hi"' in hindi
    # The footer's "Not for emergencies." and the language menu's selection, per language.
    with translation.override("hi"):
        assert translation.gettext("Not for emergencies.") in hindi
        assert translation.gettext("Not for emergencies.") not in english
    assert '<option value="hi" lang="hi" selected>' in hindi
    assert '<option value="en" lang="en" selected>' in english
    assert '<option value="en" lang="en" selected>' in again and '<option value="hi" lang="hi" selected>' not in again


def test_the_chrome_follows_the_values_it_varies_on(client, settings):
    settings.CLINIC_NAME = "First Clinic"
    assert "&copy; First Clinic." in client.get("/status/").content.decode()
    settings.CLINIC_NAME = "Second Clinic"
    page = client.get("/status/").content.decode()
    assert "&copy; Second Clinic." in page and "First Clinic" not in page


def test_fixed_renders_its_content_once_per_key():
    calls = []
    template = Template('{% load mindsettler %}{% fixed "test-once" value %}{{ counter }}{% endfixed %}')
    for value in ("a", "a", "b"):
        calls.append(template.render(Context({"value": value, "counter": len(calls)})))
    assert calls == ["0", "0", "2"]


@pytest.mark.parametrize("debug", [False, True])
def test_the_htmx_script_is_django_htmxs(client, settings, debug):
    """base.html writes {% htmx_script %}'s markup itself, its static URL looked up once."""
    settings.DEBUG = debug
    html = client.get("/status/").content.decode()
    nonce = re.search(r'<script src="[^"]*htmx[^"]*" defer nonce="([^"]+)"', html).group(1)
    assert htmx_script(nonce=nonce) + "\n" in html
    assert ("django-htmx.js" in html) is debug


def test_static_urls_follow_the_settings(client, settings):
    assert '<link rel="stylesheet" href="/static/css/app.css">' in client.get("/status/").content.decode()
    settings.STATIC_URL = "/assets/"
    html = client.get("/status/").content.decode()
    assert '<link rel="stylesheet" href="/assets/css/app.css">' in html
    assert 'src="/assets/django_htmx/htmx-2.min.js"' in html and 'src="/assets/js/wizard.js"' in html


def test_a_child_template_still_fills_the_blocks_around_fixed_fragments():
    page = Template(
        '{% extends "base.html" %}{% block header %}<p>own header</p>{% endblock %}'
        "{% block language_switcher %}<p>no menu</p>{% endblock %}"
    ).render(Context({"clinic_name": "C", "crisis_help_text": "Call."}))
    assert "<p>own header</p>" in page and "<p>no menu</p>" in page
    assert "<header" not in page and "language-select" not in page and "Not for emergencies." in page
