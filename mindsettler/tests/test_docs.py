"""What docs/deployment.md tells a clinic's operator to run: the commands exist, and every
command meant to run on a schedule is in its cron table."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]

# Our commands that a person runs by hand, when needed: everything else runs on a schedule.
BY_HAND = {"api_token", "invite_staff", "seed_demo", "seed_bench", "staff_setup_link"}


def _ours() -> set[str]:
    return {name for name, app in get_commands().items() if app in ("bookings", "staff")}


def _cron_table() -> str:
    deployment = (ROOT / "docs/deployment.md").read_text()
    table = re.search(r"## 4\. Cron.*?```cron\n(.*?)```", deployment, re.S)
    assert table, "docs/deployment.md lost its cron table"
    return table[1]


def test_every_scheduled_command_is_in_the_cron_table():
    scheduled = _ours() - BY_HAND
    assert not BY_HAND - _ours(), "a command run by hand is gone: update BY_HAND"
    cron = _cron_table()
    missing = sorted(name for name in scheduled if not re.search(rf"manage\.py {name}\b", cron))
    assert not missing, f"not in docs/deployment.md's cron table: {missing}"


def test_the_cron_table_runs_only_commands_that_exist():
    named = set(re.findall(r"manage\.py (\w+)", _cron_table()))
    assert named <= _ours(), named - _ours()


def _nginx_config() -> str:
    deployment = (ROOT / "docs/deployment.md").read_text()
    config = re.search(r"## 5\. Reverse proxy.*?```nginx\n(.*?)```", deployment, re.S)
    assert config, "docs/deployment.md lost its nginx configuration"
    return config[1]


def _nginx_redaction() -> tuple[re.Pattern[str], str, str]:
    """The `map` of the guide's nginx configuration, as Python's `re` reads it: nginx's PCRE
    names a group `(?<name>...)`, Python `(?P<name>...)`."""
    found = re.search(r'map \$uri \$(\w+) \{\s*default \$uri;\s*"~(.*?)" "(.*?)";\s*\}', _nginx_config())
    assert found, "the nginx map from $uri is gone"
    variable, pattern, replacement = found.groups()
    return re.compile(pattern.replace("(?<", "(?P<")), replacement, variable


def _logged_by_nginx(uri: str) -> str:
    pattern, replacement, _ = _nginx_redaction()
    match = pattern.search(uri)
    if not match:
        return uri
    return re.sub(r"\$\{(\w+)\}", lambda m: match[m[1]] or "", replacement)


def test_nginx_redacts_after_the_same_words_as_the_app():
    from mindsettler.logging import TOKEN_WORDS

    pattern, _, _ = _nginx_redaction()
    words = re.search(r"\(\?:((?:[\w-]+\|)+[\w-]+)\)", pattern.pattern)
    assert words and set(words[1].split("|")) == set(TOKEN_WORDS), "the nginx map's words differ from TOKEN_WORDS"


def test_nginx_logs_no_link_token_of_any_address_of_the_app():
    """nginx logs $uri (decoded, without the query string): every address of the app that
    takes a token, as the app's own redaction handles them (mindsettler/tests/test_logs.py),
    is logged without it, anywhere in the path."""
    import secrets

    from django.urls import reverse

    from mindsettler.logging import redact
    from mindsettler.tests.routes import token_paths

    token = secrets.token_urlsafe(32)
    paths = token_paths(token)
    paths += [
        reverse("account_reset_password_from_key", kwargs={"uidb36": "1", "key": "cb2c5t-" + token}),
        reverse("account_confirm_email", kwargs={"key": f"Mg:1vQx3T:{token}"}),
    ]
    assert len(paths) >= 17, paths
    for must in ("/staff/calendar/", "/accounts/password/reset/key/", "/accounts/2fa/totp/activate/link/"):
        assert any(p.startswith(must) for p in paths), must
    for must in ("/privacy/erase/", "/privacy/export/", "/waitlist/verify/", "/waitlist/leave/"):
        assert any(p.startswith(must) for p in paths), must
    for path in paths:
        assert token not in redact(path), path  # the app's own logs
        logged = _logged_by_nginx(path)
        assert token not in logged and "[redacted]" in logged, (path, logged)
        assert logged.startswith(path[:3])  # the rest of the path is kept
    assert _logged_by_nginx(f"/staff/calendar/{token}.ics") == "/staff/calendar/[redacted].ics"
    assert _logged_by_nginx(f"/bookings/{token}/pay/7/return/") == "/bookings/[redacted]/pay/7/return/"
    # Addresses without a secret are logged as they are.
    for kept in (
        "/staff/calendar/feed/",
        "/staff/calendar/subscription/new/",
        "/staff/bookings/12/approve/",
        "/staff/bookings/export.csv",
        "/accounts/password/reset/key/1-set-password/",
        "/pay/7/return/",
        "/book/",
    ):
        assert _logged_by_nginx(kept) == kept, kept


def test_nginx_logs_no_query_strings_and_no_unredacted_path():
    """A staff search (?q=) is a client's name: the log format writes the redacted path only,
    and every site of the guide's configuration logs with it."""
    config = _nginx_config()
    _, _, variable = _nginx_redaction()
    log_format = re.search(r"log_format (\w+) '(.*?)';", config)
    assert log_format and f"${variable}" in log_format[2]
    for leak in ("$request ", '$request"', "$request_uri", "$uri", "$args", "$query_string", "$http_referer"):
        assert leak not in log_format[2], leak
    access_logs = re.findall(r"^\s*access_log (.*?);", config, re.M)
    assert access_logs and all(line.split()[-1] == log_format[1] for line in access_logs), access_logs
    assert len(access_logs) == config.count("server {"), "a server without the redacting access log"
    # In the http context, before the servers that use them (nginx reads the file in order).
    assert config.index("map $uri") < config.index("log_format") < config.index("server {")


def test_nginx_compresses_no_page():
    """BREACH: pages carry CSRF tokens and booking links. Debian's nginx.conf has gzip on."""
    config = _nginx_config()
    https = config[config.index("listen 443") :]
    server_level = re.sub(r"location[^{]*\{[^}]*\}", "", https)
    assert re.search(r"^\s*gzip off;", server_level, re.M)
    for location in re.findall(r"location ([^{]*)\{([^}]*)\}", https):
        if re.search(r"^\s*gzip on;", location[1], re.M):
            assert location[0].strip() == "= /staff/calendar/feed/", location[0]
