"""The form renderer: Django's own, with <select>, <input> and <textarea> written in Python.

Django renders a select through a template that includes one template per option, and
another per option's attributes: the staff list's filter form (about 75 options) and the
booking wizard's counsellor list cost a few milliseconds a request in template includes
alone. A plain <input> costs three templates (e.g. email.html, input.html, attrs.html),
about 0.2 ms each field on the status lookup's page. `FormRenderer` writes the same markup,
byte for byte, for Django's select, input and textarea templates
(mindsettler/tests/test_forms_renderer.py compares the two); anything else, or a select
with options of a custom template, goes through the templates as before.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator
from typing import Any

from django import forms
from django.forms import BoundField
from django.forms.renderers import DjangoTemplates
from django.template import Context
from django.template.base import render_value_in_context
from django.template.defaultfilters import stringformat
from django.utils.choices import BaseChoiceIterator
from django.utils.functional import Promise
from django.utils.safestring import SafeData, SafeString, mark_safe

SELECT = "django/forms/widgets/select.html"
OPTION = "django/forms/widgets/select_option.html"
TEXTAREA = "django/forms/widgets/textarea.html"
# Widgets whose template is only `{% include "django/forms/widgets/input.html" %}`.
_INPUT_NAMES = "input text email number password url hidden date datetime time search tel color file checkbox"
INPUTS = frozenset(f"django/forms/widgets/{name}.html" for name in _INPUT_NAMES.split())


def _html(value: Any, context: Context) -> str:
    """`{{ value }}`: render_value_in_context(), with a shortcut for a plain str (most labels,
    names and values), which it only escapes, and escape() is html.escape(). A lazy label is
    made a str first, as render_value_in_context() does."""
    if isinstance(value, Promise):
        value = str(value)
    if type(value) is str:
        return html.escape(value)
    return render_value_in_context(value, context)


def _string(value: Any, context: Context) -> str:
    """`{{ value|stringformat:'s' }}`: the filter keeps a safe string safe."""
    if type(value) is str:
        return html.escape(value)
    if type(value) is int:  # an id: its digits need no escaping
        return str(value)
    text = stringformat(value, "s")
    safe = isinstance(value, SafeData)  # as the template engine does for is_safe filters
    return render_value_in_context(mark_safe(text) if safe else text, context)  # noqa: S308


def _attrs(attrs: dict[str, Any], context: Context) -> str:
    """django/forms/widgets/attrs.html."""
    out = []
    for name, value in attrs.items():
        if value is False:
            continue
        out.append(" " + _html(name, context))
        if value is not True:
            out.append(f'="{_string(value, context)}"')
    return "".join(out)


def _option(value: Any, attrs: str, label: Any, context: Context) -> str:
    """django/forms/widgets/select_option.html, with its attributes already written."""
    return f'\n  <option value="{_string(value, context)}"{attrs}>{_html(label, context)}</option>\n'


def render_select(widget: dict[str, Any]) -> str | None:
    """django/forms/widgets/select.html for `widget` (a widget's context), stripped as the
    renderer strips it; None if an option uses another template."""
    context = Context(autoescape=True)
    out = [f'<select name="{_html(widget["name"], context)}"{_attrs(widget["attrs"], context)}>']
    for group_name, group_choices, _index in widget["optgroups"]:
        if group_name:
            out.append(f'\n  <optgroup label="{_html(group_name, context)}">')
        for option in group_choices:
            if option.get("template_name") != OPTION:
                return None
            out.append(_option(option["value"], _attrs(option["attrs"], context), option["label"], context))
        if group_name:
            out.append("\n  </optgroup>")
    out.append("\n</select>")
    return "".join(out)


def render_input(widget: dict[str, Any]) -> str:
    """django/forms/widgets/input.html for `widget` (a widget's context), stripped."""
    context = Context(autoescape=True)
    value = widget["value"]
    shown = f' value="{_string(value, context)}"' if value is not None else ""
    return (
        f'<input type="{_html(widget["type"], context)}"'
        f' name="{_html(widget["name"], context)}"{shown}{_attrs(widget["attrs"], context)}>'
    )


def render_textarea(widget: dict[str, Any]) -> str:
    """django/forms/widgets/textarea.html for `widget` (a widget's context), stripped."""
    context = Context(autoescape=True)
    value = widget["value"]
    text = _html(value, context) if value else ""
    return f'<textarea name="{_html(widget["name"], context)}"{_attrs(widget["attrs"], context)}>\n{text}</textarea>'


def select_html(field: BoundField, attrs: dict[str, Any] | None = None) -> SafeString | None:
    """`field.as_widget(attrs=attrs)` for a plain select (forms.Select, its own templates, a
    flat list of text choices), written straight from the field; None for any other widget.

    Before the renderer is reached, Django's Select builds a dict per option (optgroups) and
    copies the attributes: for a list of counsellors, more than the rendering itself."""
    w = field.field.widget
    if type(w) is not forms.Select or w.template_name != SELECT or w.option_template_name != OPTION:
        return None
    context = Context(autoescape=True)
    options = []
    values = w.format_value(field.value())  # what Select.optgroups compares, as text
    found = False  # only the first matching option is selected, as in optgroups
    for value, label in w.choices:
        if not isinstance(label, str | Promise):  # a group of options, or a label to localise
            return None
        if value is None:
            value = ""
        selected = not found and str(value) in values
        found = found or selected
        options.append(_option(value, " selected" if selected else "", label, context))
    # As BoundField.as_widget, then Widget.get_context, build them, in their order.
    attrs = field.build_widget_attrs(dict(attrs or {}), w)
    if field.auto_id and "id" not in w.attrs:
        attrs.setdefault("id", field.auto_id)
    attrs = w.build_attrs(w.attrs, attrs)
    return mark_safe(  # noqa: S308 (every value escaped)
        f'<select name="{_html(field.html_name, context)}"{_attrs(attrs, context)}>{"".join(options)}\n</select>'
    )


class Pairs(BaseChoiceIterator):
    """Choices that are (value, label) pairs of plain values, used as they are and never
    changed. Django normalises a list of choices on every assignment, for the field and again
    for its widget, and copies it for every form: a microsecond a choice on every request
    (the staff list's and the wizard's counsellors)."""

    def __init__(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        self.pairs = tuple(pairs)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return iter(self.pairs)

    # Forms copy their fields' choices (deep) and their widgets' (shallow): a tuple of values
    # that are never changed is its own copy.
    def __copy__(self) -> Pairs:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Pairs:
        return self


class FormRenderer(DjangoTemplates):
    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> str:
        if "widget" in context:
            if template_name == SELECT:
                html = render_select(context["widget"])
                if html is not None:
                    return html
            elif template_name in INPUTS:
                return render_input(context["widget"])
            elif template_name == TEXTAREA:
                return render_textarea(context["widget"])
        return super().render(template_name, context, request=request)
