"""The site's addresses that carry an emailed token, for the tests that keep tokens out of logs."""

from django.urls import URLPattern, URLResolver, get_resolver, reverse


def token_paths(token: str) -> list[str]:
    """Every `<token>` route of the site, reversed with `token` (other arguments 1), so a
    new route is checked the day it is added."""

    def routes(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from routes(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern) and "token" in p.pattern.converters:
                yield f"{namespace}:{p.name}" if namespace else p.name, p.pattern.converters

    return [
        reverse(name, kwargs={key: (token if key == "token" else 1) for key in converters})
        for name, converters in routes(get_resolver().url_patterns)
    ]
