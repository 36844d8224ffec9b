"""The form renderer writes selects exactly as Django's templates do (mindsettler/forms.py)."""

from __future__ import annotations

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils.safestring import mark_safe

from mindsettler.forms import FormRenderer


class Choices(forms.Form):
    plain = forms.ChoiceField(choices=[("", "Any"), ("a", "A & B"), (1, "One"), ("<x>", mark_safe("<b>bold</b>"))])
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
    ],
)
def test_selects_are_the_same_as_djangos_templates(data):
    fast, slow = Choices(data, renderer=FormRenderer()), Choices(data, renderer=DjangoTemplates())
    if data:
        fast.is_valid(), slow.is_valid()
    for name in fast.fields:
        assert str(fast[name]) == str(slow[name]), name
    assert "<option" in str(fast["plain"])


def test_the_project_uses_it(settings):
    from django.forms.renderers import get_default_renderer

    get_default_renderer.cache_clear()
    try:
        assert isinstance(get_default_renderer(), FormRenderer)
    finally:
        get_default_renderer.cache_clear()
