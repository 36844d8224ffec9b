"""The form renderer writes selects exactly as Django's templates do (mindsettler/forms.py)."""

from __future__ import annotations

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from mindsettler.forms import FormRenderer, select_html


class Choices(forms.Form):
    plain = forms.ChoiceField(
        choices=[
            ("", "Any"),
            ("a", "A & B"),
            (1, "One"),
            ("<x>", mark_safe("<b>bold</b>")),
            (mark_safe("&amp;"), gettext_lazy("Lazy <label>")),
            (True, 'Say "yes"'),
            (2.5, "Two and a half"),
        ]
    )
    grouped = forms.ChoiceField(
        choices=[("Fruit", [("apple", "Apple"), ("pear", "Pear")]), ("none", "None"), ("Veg", [("leek", "Leek")])]
    )
    many = forms.MultipleChoiceField(choices=[("x", "X"), ("y", "Y"), ("z", "Z")])
    typed = forms.TypedChoiceField(
        choices=[(1, "One"), (2, "Two")],
        coerce=int,
        help_text="Pick one.",
        widget=forms.Select(attrs={"class": "input", "hx-vals": '{"a": "b"}', "disabled": False, "autofocus": True}),
    )
    nullable = forms.NullBooleanField()
    maybe = forms.BooleanField(required=False)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"plain": "a", "grouped": "pear", "many": ["x", "z"], "typed": "2", "nullable": "true"},
        {"plain": "<x>", "grouped": "nope", "many": ["y"], "typed": "x"},
        {"plain": "&amp;", "typed": "1"},
    ],
)
def test_selects_are_the_same_as_djangos_templates(data):
    fast, slow = Choices(data, renderer=FormRenderer()), Choices(data, renderer=DjangoTemplates())
    if data:
        fast.is_valid(), slow.is_valid()
    for name in fast.fields:
        assert str(fast[name]) == str(slow[name]), name
        # Written straight from the field where it is a plain select; None where not.
        direct = select_html(fast[name], {"class": "x", "aria-describedby": "h"})
        assert direct in (None, slow[name].as_widget(attrs={"class": "x", "aria-describedby": "h"})), name
    assert "<option" in str(fast["plain"])
    assert select_html(fast["plain"]) is not None and select_html(fast["typed"]) is not None
    assert select_html(fast["grouped"]) is None and select_html(fast["many"]) is None


def test_the_project_uses_it(settings):
    from django.forms.renderers import get_default_renderer

    get_default_renderer.cache_clear()
    try:
        assert isinstance(get_default_renderer(), FormRenderer)
    finally:
        get_default_renderer.cache_clear()


class Inputs(forms.Form):
    name = forms.CharField(max_length=20, help_text="Your name.", widget=forms.TextInput(attrs={"class": "input"}))
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}))
    count = forms.IntegerField(required=False, min_value=0)
    secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=True))
    hidden = forms.CharField(required=False, widget=forms.HiddenInput)
    day = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date", "disabled": False}))
    agree = forms.BooleanField(required=False)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "hx-vals": '{"a": "b"}'}))
    site = forms.URLField(required=False)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"name": "Asha & <Ravi>", "email": "a@b.example", "count": "3", "secret": 'p"w', "hidden": "'x'"},
        {"name": "x" * 30, "email": "nope", "count": "-1", "day": "2026-02-30", "agree": "on", "notes": "<b>hi</b>\n"},
        {"notes": "", "site": "javascript:alert(1)", "hidden": "0"},
    ],
)
def test_inputs_and_textareas_are_the_same_as_djangos_templates(data):
    initial = {"count": 0, "notes": "Line one\nLine <two>", "day": "2026-01-05"}
    fast = Inputs(data, initial=initial, renderer=FormRenderer())
    slow = Inputs(data, initial=initial, renderer=DjangoTemplates())
    if data:
        fast.is_valid(), slow.is_valid()
    for name in fast.fields:
        assert str(fast[name]) == str(slow[name]), name
    assert "<textarea" in str(fast["notes"]) and "<input" in str(fast["email"])
