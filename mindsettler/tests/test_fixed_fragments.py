"""base.html's fixed chrome ({% fixed %}, bookings/templatetags/mindsettler.py) is rendered
once per language and settings, and never mixes them up."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.utils import translation

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
