"""Pages with their {% extends %} resolved at load time render exactly as Django renders them
(mindsettler/templating.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Engine, TemplateDoesNotExist, engines
from django.template.loader_tags import BlockNode, ExtendsNode
from django.template.loaders.cached import Loader as CachedLoader

from mindsettler.templating import Loader, _extends

LAYOUTS = {
    "base.html": (
        "<title>{% block title %}Site{% endblock %}</title>"
        "{% block header %}<h1>{% block heading %}Welcome{% endblock %}</h1>{% endblock %}"
        "<main>{% block content %}{% endblock %}</main>{% firstof scoped 'unset' %}"
        "{% block footer %}<p>{% block extra %}{% endblock %}</p>{% endblock %}"
    ),
    "section.html": (
        '{% extends "base.html" %}ignored text'
        "{% block content %}<section>{% block inner %}section inner{% endblock %}</section>{% endblock %}"
        "{% block heading %}Section {{ name }}{% endblock %}"
    ),
    "page.html": (
        '{% extends "section.html" %}'
        "{% block inner %}{% firstof 'in the block' as scoped %}{{ scoped }}, {{ name|upper }}{% endblock %}"
        "{% block title %}Page{% endblock %}{% block nowhere %}never shown{% endblock %}"
        # A block named again inside another: Django renders the most derived one in both places.
        "{% block footer %}[{% block heading %}Page heading{% endblock %}]{% endblock %}"
    ),
    "direct.html": '{% extends "base.html" %}{% block content %}{% for x in items %}{{ x }}{% endfor %}{% endblock %}',
    # Left to Django:
    "super.html": '{% extends "base.html" %}{% block title %}{{ block.super }} and more{% endblock %}',
    "variable.html": "{% extends layout %}{% block content %}by name{% endblock %}",
    "conditional.html": "{% if on %}{% block content %}on{% endblock %}{% endif %}",
    "on_conditional.html": '{% extends "conditional.html" %}{% block content %}page{% endblock %}',
    "orphan.html": '{% extends "missing.html" %}{% block content %}x{% endblock %}',
}


def _engines(debug: bool = False) -> tuple[Engine, Engine]:
    """Ours, and Django's own cached loader over the same templates."""
    locmem = [("django.template.loaders.locmem.Loader", LAYOUTS)]
    ours = Engine(debug=debug, loaders=[("mindsettler.templating.Loader", locmem)])
    djangos = Engine(debug=debug, loaders=[("django.template.loaders.cached.Loader", locmem)])
    return ours, djangos


CONTEXT = {"name": "<Asha>", "items": [1, 2], "layout": "base.html", "on": True}


@pytest.mark.parametrize("name", ["page.html", "section.html", "direct.html", "base.html"])
def test_a_resolved_page_renders_as_django_renders_it(name):
    ours, djangos = _engines()
    page = ours.get_template(name)
    if name != "base.html":  # a layout renders its own blocks, as ever
        assert _extends(page) is None and not page.nodelist.get_nodes_by_type(BlockNode)
    expected = djangos.get_template(name).render(Context(CONTEXT))
    assert page.render(Context(CONTEXT)) == expected
    assert page.render(Context(CONTEXT)) == expected  # and again, from the loader's cache
    assert ours.get_template(name) is page


def test_what_the_page_shows():
    html = _engines()[0].get_template("page.html").render(Context(CONTEXT))
    assert html == (
        "<title>Page</title><h1>Page heading</h1>"
        "<main><section>in the block, &lt;ASHA&gt;</section></main>unset"  # a block's variables stay in it
        "[Page heading]"
    )


@pytest.mark.parametrize("name", ["super.html", "variable.html", "on_conditional.html"])
def test_pages_django_must_resolve_are_handed_out_as_written(name):
    ours, djangos = _engines()
    page = ours.get_template(name)
    assert isinstance(_extends(page), ExtendsNode)
    assert page.render(Context(CONTEXT)) == djangos.get_template(name).render(Context(CONTEXT))


def test_a_missing_parent_fails_when_the_page_renders_as_before():
    ours, djangos = _engines()
    for engine in (ours, djangos):
        page = engine.get_template("orphan.html")  # found: the page exists
        with pytest.raises(TemplateDoesNotExist, match=r"missing\.html"):
            page.render(Context())


def test_in_debug_mode_every_page_is_handed_out_as_written():
    ours, _ = _engines(debug=True)
    assert isinstance(_extends(ours.get_template("page.html")), ExtendsNode)


def test_parents_are_looked_up_as_written_and_reset_forgets():
    ours, _ = _engines()
    loader = ours.template_loaders[0]
    page = ours.get_template("page.html")
    # {% extends %} looks its parent up with the origins already seen: the layout as written.
    section, _origin = ours.find_template("section.html", skip=[page.origin])
    assert isinstance(_extends(section), ExtendsNode)
    loader.reset()
    assert loader.resolved == {} and ours.get_template("page.html") is not page


def test_the_project_uses_it_and_its_pages_are_resolved():
    engine = engines["django"].engine
    loader = engine.template_loaders[0]
    assert isinstance(loader, Loader) and not engine.debug
    roots = [Path(settings.BASE_DIR) / "templates"]
    names = sorted(
        str(path.relative_to(root))
        for root in roots
        for path in root.rglob("*.html")
        if "{% extends" in path.read_text()
    )
    assert len(names) > 40
    left = [name for name in names if _extends(engine.get_template(name)) is not None]
    assert left == []


def test_the_project_pages_render_as_django_renders_them():
    """Every page of ours, resolved and as written, with an empty context: the same output, or
    the same error (a page that needs its context fails alike both ways)."""
    engine = engines["django"].engine
    ours = engine.template_loaders[0]
    root = Path(settings.BASE_DIR) / "templates"
    for path in sorted(root.rglob("*.*")):
        name = str(path.relative_to(root))
        outcomes = []
        for template in (engine.get_template(name), CachedLoader.get_template(ours, name)):
            try:
                outcomes.append(template.render(Context({"clinic_name": "Clinic"})))
            except Exception as exc:  # compared below, not hidden
                outcomes.append((type(exc), str(exc)))
        assert outcomes[0] == outcomes[1], name
