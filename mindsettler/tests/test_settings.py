"""Settings fail loudly and clearly on bad configuration, at startup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE for Playwright; a real deployment never has it.
_NOT_INHERITED = {"DEBUG", "SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}


def start(env: dict[str, str], then: str = "print('started')") -> subprocess.CompletedProcess[str]:
    """Django set up in a process of its own with `env`, then the Python in `then`."""
    clean = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {then}"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "mindsettler.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def manage(env: dict[str, str], *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """`manage.py args` in a process of its own with `env`."""
    clean = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_defaults_start_in_local_debug_mode():
    result = start({})
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


@pytest.mark.parametrize("value", ["yes", "1", "on", "TRUE-ish"])
def test_a_bad_debug_value_is_a_clear_error(value):
    result = start({"DEBUG": value})
    assert result.returncode != 0
    assert f"DEBUG must be 'true' or 'false', not '{value}'" in result.stderr


@pytest.mark.parametrize("value, error", [("0", "at least 1"), ("3651", "at most 3650"), ("a year", "a whole number")])
def test_a_bad_api_token_life_is_a_clear_error(value, error):
    """Not a token refused at its making, months later, with a date that overflows."""
    result = start({"API_TOKEN_DAYS": value})
    assert result.returncode != 0
    assert f"API_TOKEN_DAYS must be {error}" in result.stderr


@pytest.mark.parametrize("secret", [None, "", "short", "dev-only-insecure-key-never-use-in-production"])
def test_production_refuses_a_missing_or_weak_secret_key(secret):
    env = {"DEBUG": "false"}
    if secret is not None:
        env["SECRET_KEY"] = secret
    result = start(env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set to a long random value" in result.stderr


@pytest.mark.parametrize("hosts", ["book.example.org", "127.0.0.1,book.example.org", "*", "10.0.0.7"])
@pytest.mark.parametrize("secret", [None, "a-real-secret-" + "z" * 40])
def test_debug_mode_refuses_a_host_others_reach(hosts, secret):
    """.env.example copied to a server with its DEBUG=true left in. With its empty SECRET_KEY,
    the session key is the one in settings.py: anyone could sign in as staff. With a key of
    its own, the debug error page still shows a failed request's local variables, a client's
    name and words among them, and cookies go over plain HTTP."""
    env = {"ALLOWED_HOSTS": hosts} | ({"SECRET_KEY": secret} if secret else {})
    result = start(env)
    assert result.returncode != 0
    assert "DEBUG is true, but ALLOWED_HOSTS names" in result.stderr
    assert "set DEBUG=false and a SECRET_KEY" in result.stderr


def test_debug_mode_starts_on_this_machine():
    result = start({"ALLOWED_HOSTS": "127.0.0.1,localhost,[::1],testserver,mindsettler.localhost"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "missing", "message"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "redis", "REDIS_URL needs the package redis"),
        (
            {"REDIS_URL": "redis://127.0.0.1:1/0", "TASKS_BACKEND": "rq"},
            "django_tasks_rq",
            "TASKS_BACKEND=rq needs the package django-tasks-rq",
        ),
    ],
)
def test_an_optional_package_missing_stops_the_app_at_startup(env, missing, message):
    """requirements.txt leaves out Redis's packages: without them the app used to start, then
    answer 500 to every request that used the cache (or queued a task)."""
    assert start(env).returncode == 0  # with the package (installed here), it starts
    clean = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.modules[{missing!r}] = None; import django; django.setup()"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "mindsettler.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_with_a_real_secret_key():
    result = start({"DEBUG": "false", "SECRET_KEY": "x" * 50})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMAIL_PORT": "twenty-five"}, "EMAIL_PORT must be a whole number"),
        ({"EMAIL_BACKEND": "carrier-pigeon"}, "EMAIL_BACKEND must be one of"),
        ({"PAYMENT_PROVIDER": "paypal"}, "PAYMENT_PROVIDER must be one of sandbox, razorpay"),
        ({"PAYMENT_PROVIDER": "razorpay"}, "needs RAZORPAY_KEY_ID"),
    ],
)
def test_other_bad_values_are_named(env, message):
    if "EMAIL_PORT" in env:
        env = {**env, "EMAIL_BACKEND": "smtp"}
    result = start(env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "True False 587"),  # STARTTLS on 587, as before
        ({"EMAIL_USE_SSL": "true"}, "False True 465"),  # TLS from the first byte
        ({"EMAIL_USE_SSL": "true", "EMAIL_USE_TLS": "false", "EMAIL_PORT": "2465"}, "False True 2465"),
        ({"EMAIL_USE_TLS": "false"}, "False False 587"),
    ],
)
def test_smtp_speaks_starttls_or_tls_from_the_start(env, expected):
    """Some mail providers take only TLS from the first byte (port 465): EMAIL_USE_SSL."""
    result = start(
        {"EMAIL_BACKEND": "smtp", **env},
        "from django.conf import settings as s; o = s.MAILERS['default']['OPTIONS']; "
        "print(o['use_tls'], o['use_ssl'], o['port'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_smtp_refuses_starttls_and_tls_from_the_start_together():
    result = start({"EMAIL_BACKEND": "smtp", "EMAIL_USE_SSL": "true", "EMAIL_USE_TLS": "true"})
    assert result.returncode != 0
    assert "cannot both be on: set EMAIL_USE_TLS=false" in result.stderr


def test_check_deploy_is_clean_in_a_production_like_environment():
    env = {
        "DEBUG": "false",
        "SECRET_KEY": "a-real-secret-" + "z" * 40,
        "ALLOWED_HOSTS": "mindsettler.example",
        "SITE_URL": "https://mindsettler.example",
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "smtp.mindsettler.example",
        "PAYMENT_PROVIDER": "razorpay",
        "RAZORPAY_KEY_ID": "rzp_test_x",
        "RAZORPAY_KEY_SECRET": "secret",
        "RAZORPAY_WEBHOOK_SECRET": "webhook-secret",
    }
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


def test_env_example_documents_every_variable():
    import re

    used = set(
        re.findall(r'env(?:str|bool|ints?|list|choice)\(\s*"([A-Z_]+)"', (ROOT / "mindsettler/settings.py").read_text())
    )
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {"REMINDER_HOURS", "CRISIS_HELP_TEXT"} <= used  # read by envints, and over two lines
    assert used - documented == set()
    assert documented - used == set(), "listed in .env.example but read nowhere"


def test_env_example_copied_as_it_is_starts_with_the_defaults():
    """The file is what an operator copies to the environment file; its empty values mean
    the defaults, not "empty": no `DATABASE_URL=` crash, no collectstatic into the current
    directory, no blank crisis-help note on the public pages."""
    import re

    values = dict(re.findall(r'^([A-Z_]+)="?(.*?)"?$', (ROOT / ".env.example").read_text(), re.M))
    assert values["DATABASE_URL"] == values["STATIC_ROOT"] == values["CRISIS_HELP_TEXT"] == ""
    result = start(
        values,
        "from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.STATIC_ROOT.name, bool(s.CRISIS_HELP_TEXT), s.TIME_ZONE_NAME)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "staticfiles", "True", "India", "Standard", "Time"]


def _environment_files() -> dict[str, str]:
    """.env.example, and the production minimum in docs/deployment.md: files an operator copies
    to /etc/mindsettler.env."""
    import re

    deployment = (ROOT / "docs/deployment.md").read_text()
    minimum = re.search(r"A production minimum.*?```sh\n(.*?)```", deployment, re.S)
    assert minimum, "docs/deployment.md lost its production minimum"
    return {".env.example": (ROOT / ".env.example").read_text(), "deployment.md": minimum[1]}


@pytest.mark.parametrize("name", [".env.example", "deployment.md"])
def test_environment_files_read_the_same_in_systemd_and_in_a_shell(name):
    """systemd's EnvironmentFile takes all after "=" as the value (a trailing "# comment"
    too), and `set -a; . file` is shell: a value with spaces or <> must be quoted, and `$`,
    backticks, backslashes and single quotes are read differently by the two (the shell
    expands `$X` even in double quotes, systemd does not), so no value has them."""
    import re

    text = _environment_files()[name]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert re.fullmatch(r"""[A-Z_][A-Z0-9_]*=("[^"$`\\]*"|[^\s#"'<>;&|$`\\]*)""", line), f"{name}: {line!r}"
    result = subprocess.run(["sh", "-n", "-c", text], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_check_deploy_warns_about_sandbox_payments():
    env = {
        "DEBUG": "false",
        "SECRET_KEY": "a-real-secret-" + "z" * 40,
        "ALLOWED_HOSTS": "mindsettler.example",
        "EMAIL_BACKEND": "smtp",
    }
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "mindsettler.W001" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "warnings"),
    [
        ({}, {"mindsettler.W002", "mindsettler.W003"}),  # SITE_URL left at its local default
        ({"SITE_URL": "http://book.example.org"}, {"mindsettler.W002"}),
        ({"SITE_URL": "https://www.example.org"}, {"mindsettler.W003"}),
        ({"SITE_URL": "https://book.example.org:8443"}, set()),
        ({"SITE_URL": "http://127.0.0.1:8000", "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false"}, set()),
    ],
)
def test_check_deploy_names_a_site_url_that_would_break_the_links_in_emails(env, warnings):
    """Every emailed link (verification, the booking page, payment, cancellation) is made
    from SITE_URL: left at http://127.0.0.1:8000 in production, every one is dead."""
    result = start(
        {"DEBUG": "false", "SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "book.example.org", **env},
        "from django.core import checks; "
        "print(*{m.id for m in checks.run_checks(include_deployment_checks=True) if m.id.startswith('mindsettler.')})",
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) - {"mindsettler.W001"} == warnings


def test_production_static_build_succeeds(tmp_path):
    """collectstatic with the hashed, compressed storage: every CSS url() must resolve."""
    env = {"DEBUG": "false", "SECRET_KEY": "s" * 50, "STATIC_ROOT": str(tmp_path)}
    result = manage(env, "collectstatic", "--noinput", "-v0", timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.glob("css/app.*.css.gz")), "hashed, compressed CSS"
    assert (tmp_path / "staticfiles.json").exists()


@pytest.mark.parametrize(
    ("zone", "words"),
    [
        ("Asia/Kolkata", "India Standard Time"),
        ("Europe/London", "London time"),
        ("America/Argentina/Buenos_Aires", "Buenos Aires time"),
        ("Asia/Calcutta", "India Standard Time"),  # the zone's old name
        ("Etc/GMT-5", "UTC+05:00"),  # five hours *ahead* of UTC: "GMT-5" says the opposite
        ("UTC", "UTC"),
        ("Japan", "UTC+09:00"),
        # No city, and daylight saving: named by their offset on 1 January, they were wrong half
        # the year ("GB" was "UTC", "NZ" "UTC+13:00").
        ("GB", "GB time"),
        ("NZ", "NZ time"),
        ("CET", "CET time"),
    ],
)
def test_the_clinics_zone_is_named_in_words(zone, words):
    result = start({"TIME_ZONE": zone}, "from django.conf import settings; print(settings.TIME_ZONE_NAME)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == words


@pytest.mark.django_db
def test_a_command_run_without_the_servers_environment_file_is_refused(tmp_path, monkeypatch, settings):
    """Forgetting `set -a; . /etc/mindsettler.env; set +a` before a release's `migrate` made a
    db.sqlite3 beside the code and said it had migrated; collectstatic ran in debug mode."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from mindsettler import checks

    env_file = tmp_path / "mindsettler.env"
    monkeypatch.setattr(checks, "ENVIRONMENT_FILE", env_file)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings.DEBUG = True
    assert checks.check_environment_file_was_read(None) == []  # a developer's machine
    env_file.write_text("DEBUG=false\n")
    assert [e.id for e in checks.check_environment_file_was_read(None)] == ["mindsettler.E001"]
    with pytest.raises(SystemCheckError, match=r"mindsettler\.env exists but was not read"):
        call_command("migrate", "--check", skip_checks=False, verbosity=0)
    with pytest.raises(SystemCheckError, match=r"mindsettler\.env exists but was not read"):
        call_command("collectstatic", "--noinput", "--dry-run", skip_checks=False, verbosity=0)
    # Read: production settings (DEBUG off), or a database named.
    settings.DEBUG = False
    assert checks.check_environment_file_was_read(None) == []
    settings.DEBUG = True
    monkeypatch.setenv("DATABASE_URL", "postgres://mindsettler@db.internal/mindsettler")
    assert checks.check_environment_file_was_read(None) == []


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({}, True),  # redirected to HTTPS here
        ({"SECURE_SSL_REDIRECT": "false"}, True),  # a load balancer redirects; the site is https://
        ({"SECURE_SSL_REDIRECT": "false", "SITE_URL": "http://127.0.0.1:8000", "ALLOWED_HOSTS": "127.0.0.1"}, False),
    ],
    ids=["redirecting", "behind a redirecting proxy", "plain HTTP trial"],
)
def test_cookies_are_https_only_and_hsts_on_wherever_the_site_is_https(env, secure):
    result = start(
        {
            "DEBUG": "false",
            "SECRET_KEY": "s" * 50,
            "ALLOWED_HOSTS": "book.example.org",
            "SITE_URL": "https://book.example.org",
            **env,
        },
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(secure)] * 3
