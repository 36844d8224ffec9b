"""MindSettler settings, configured from the environment only.

Every variable is listed in `.env.example`. With none set the app runs locally in debug
mode on SQLite with console email and the sandbox payment provider. The helpers below fail
loudly on values they do not understand, so a typo never silently means "off".
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_noop

BASE_DIR = Path(__file__).resolve().parent.parent

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105 - refused when DEBUG is off


def envstr(name: str, default: str = "") -> str:
    # Set but empty means the default, as for the other helpers: `.env.example`, copied as
    # the environment file, leaves most of its values empty.
    return os.environ.get(name, "").strip() or default


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ImproperlyConfigured(f"{name} must be 'true' or 'false', not {raw!r}.")


def envint(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}.")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


def envints(name: str, default: str, *, minimum: int = 1) -> list[int]:
    """A comma-separated list of whole numbers, e.g. REMINDER_HOURS=24,2."""
    values = []
    for item in envlist(name, default):
        try:
            value = int(item)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be whole numbers separated by commas, not {item!r}.") from None
        if value < minimum:
            raise ImproperlyConfigured(f"{name} values must be at least {minimum}, not {value}.")
        values.append(value)
    return values


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = envstr(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def _installed(module: str, package: str, what: str) -> None:
    """An optional package (not in requirements.txt) missing stops the app at startup, not
    at the first request that needs it."""
    try:
        __import__(module)
    except ImportError:
        raise ImproperlyConfigured(
            f"{what} needs the package {package}, which requirements.txt leaves out: install "
            "requirements-redis.txt instead (scripts/bootstrap.sh requirements-redis.txt)."
        ) from None


DEBUG = envbool("DEBUG", True)
SECRET_KEY = envstr("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value (at least 32 characters) when DEBUG "
        "is false. Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
# Debug mode is for this machine only. Its error page shows a failed request's local
# variables (a client's name, email, what they wrote) to whoever made it fail, it serves plain
# HTTP without secure cookies, and by default it signs sessions with a key published in this
# file. A server others reach (a public host in ALLOWED_HOSTS, as when .env.example is copied
# and DEBUG=true left in it) refuses to start, whatever its SECRET_KEY.
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "testserver"}
_public_hosts = [h for h in ALLOWED_HOSTS if h not in _LOCAL_HOSTS and not h.endswith(".localhost")]
if DEBUG and _public_hosts:
    raise ImproperlyConfigured(
        f"DEBUG is true, but ALLOWED_HOSTS names {', '.join(_public_hosts)}. Debug mode is for this "
        "machine only: on a server, set DEBUG=false and a SECRET_KEY."
    )
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# No django.contrib.admin: everything staff do is in the portal (/staff/), behind allauth's
# sign-in with a second factor. Django's admin has its own password-only sign-in, which would
# be a way round both.
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "crispy_forms",
    "crispy_tailwind",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_tasks_db",
    "mindsettler",
    "bookings",
    "staff",
]

MIDDLEWARE = [
    "mindsettler.middleware.head_middleware",
    "mindsettler.middleware.RequestIDMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "mindsettler.middleware.SecurityHeadersMiddleware",
    # /healthz, for load balancers probing an app server by its address (see the middleware).
    "mindsettler.middleware.health_middleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The client's language: the switcher's cookie, then Accept-Language. English only for
    # the staff portal, the API and the admin (see mindsettler.middleware).
    "mindsettler.middleware.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "staff.middleware.StaffSessionMiddleware",
    "mindsettler.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "mindsettler.urls"
WSGI_APPLICATION = "mindsettler.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            # Django's cached loader, handing out pages with their {% extends %} resolved.
            "loaders": [
                (
                    "mindsettler.templating.Loader",
                    ["django.template.loaders.filesystem.Loader", "django.template.loaders.app_directories.Loader"],
                )
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                # csrf_token and csp_nonce again, cheaper to use (replacing the two above)
                "mindsettler.context_processors.tokens",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "bookings.context_processors.clinic",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers proceed during a write; IMMEDIATE takes the write lock at BEGIN so
    # two writers queue up instead of failing halfway through a transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif envbool("DB_PREPARED_STATEMENTS", True):
    # Server-side parameters let psycopg prepare a query the second time a connection runs
    # it, so PostgreSQL stops re-planning it: the booking page's token+booking join costs
    # 0.14 ms instead of 0.66 ms, most of that planning. Needs persistent connections
    # (DB_CONN_MAX_AGE) to pay off. Behind PgBouncer in transaction mode older than 1.21
    # (no max_prepared_statements), set DB_PREPARED_STATEMENTS=false.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, sessions, rate limits (shared across app servers) ---------------------------

REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    _installed("redis", "redis", "REDIS_URL")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "mindsettler_cache",
        }
    }
SESSION_ENGINE = "mindsettler.sessions"  # database sessions, read faster
RATELIMIT_ENABLED = envbool("RATELIMIT_ENABLED", True)
# scope: (attempts, per seconds). See bookings/ratelimit.py.
RATE_LIMITS = {
    "status_lookup": (envint("RATE_LIMIT_STATUS_PER_MINUTE", 10, minimum=1), 60),
    # "Email me my links": per address, as for every other email we send on request.
    "links_email": (3, 3600),
    "wizard_submit_ip": (20, 3600),
    "wizard_submit_email": (5, 3600),
    "verify_resend": (3, 3600),
    "cancel_request": (5, 3600),
    "reschedule_request": (5, 3600),
    "waitlist_join": (5, 3600),
    "data_request": (5, 3600),
    # A staff member's authenticator setup links, per account: each goes to their own inbox.
    "staff_setup_link": (3, 3600),
    "api": (envint("API_RATE_LIMIT_PER_MINUTE", 120, minimum=1), 60),
}
# How long a chatbot API token works (`api_token create` and `rotate` take --days for one
# token): a leaked token stops working by itself. Administrators are emailed when one has
# API_TOKEN_WARNING_DAYS left (`manage.py send_api_token_warnings`, daily).
API_TOKEN_DAYS = envint("API_TOKEN_DAYS", 365, minimum=1, maximum=3650)  # bookings.api.auth.MAX_TOKEN_DAYS
API_TOKEN_WARNING_DAYS = 14
# How many reverse proxies in front of the app append to X-Forwarded-For (0: use REMOTE_ADDR).
NUM_PROXIES = envint("NUM_PROXIES", 0)

# --- Auth (staff only; clients have no accounts) ----------------------------------------
AUTH_USER_MODEL = "staff.User"
# Django's and allauth's, reading the signed-in user faster (staff/backends.py).
AUTHENTICATION_BACKENDS = [
    "staff.backends.ModelBackend",
    "staff.backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "staff:dashboard"
ACCOUNT_ADAPTER = "staff.adapters.StaffAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""
# Accounts are made only by invitation: no "unknown account" email inviting whoever typed an
# address on the reset page to a sign-up that is closed (and no way to make us email anyone).
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
ACCOUNT_RATE_LIMITS = {
    "login_failed": "5/5m/ip,5/5m/key",
    "reset_password": "5/h/ip,3/h/key",
}
ACCOUNT_FORMS = {
    "change_password": "staff.forms.ChangePasswordForm",
    "reset_password_from_key": "staff.forms.PasswordFromLinkForm",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# The setup page keeps the key it showed when reloaded (allauth's own makes a new one).
MFA_FORMS = {"activate_totp": "staff.forms.ActivateTOTPForm"}
# Staff sessions end after this much inactivity (the session is refreshed on each request).
STAFF_SESSION_IDLE_MINUTES = envint("STAFF_SESSION_IDLE_MINUTES", 30, minimum=5)
SESSION_COOKIE_AGE = 60 * 60 * 12

# --- Internationalisation and time ------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("hi", "हिंदी")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["mindsettler.formats"]
TIME_ZONE = envstr("TIME_ZONE", "Asia/Kolkata")
# The zone as clients are told it ("Times are shown in India Standard Time (IST)"); another
# zone is named after its city ("Europe/London": "London time") unless this is set, and a
# zone with no city by its offset ("Etc/GMT-5", whose sign reads backwards, is "UTC+05:00"),
# or by its name if that changes ("GB time": its offset on one day was wrong half the year).
if TIME_ZONE in ("Asia/Kolkata", "Asia/Calcutta"):
    _zone_words = gettext_noop("India Standard Time")
elif "/" in TIME_ZONE and not TIME_ZONE.startswith("Etc/"):
    _zone_words = TIME_ZONE.rsplit("/", 1)[-1].replace("_", " ") + " time"
else:
    _offsets = {ZoneInfo(TIME_ZONE).utcoffset(datetime(datetime.now().year, month, 1)) for month in range(1, 13)}
    if len(_offsets) > 1:  # daylight saving ("GB", "NZ", "CET"): no one offset is right all year
        _zone_words = TIME_ZONE.replace("_", " ") + " time"
    else:  # a fixed offset: said the way round people read it ("Etc/GMT-5" is UTC+05:00)
        _offset = int(_offsets.pop().total_seconds() // 60)
        _zone_words = (
            f"UTC{'+' if _offset >= 0 else '-'}{abs(_offset) // 60:02d}:{abs(_offset) % 60:02d}" if _offset else "UTC"
        )
TIME_ZONE_NAME = envstr("TIME_ZONE_NAME") or _zone_words  # empty: the default
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_MAX_AGE = 60 * 60 * 24 * 365 if not DEBUG else 0
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG


def _static_file_headers(headers: dict[str, str], path: str, url: str) -> None:
    """WhiteNoise answers before the page middleware: the same frame and feature policies,
    and, for a file opened as a document (the SVG icon), a policy that lets it run nothing."""
    headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    headers["X-Frame-Options"] = "DENY"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY


WHITENOISE_ADD_HEADERS_FUNCTION = _static_file_headers

# --- Email ------------------------------------------------------------------------------
_EMAIL_BACKENDS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "file": "django.core.mail.backends.filebased.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}
EMAIL_BACKEND_NAME = envstr("EMAIL_BACKEND", "console")
_email_backend = _EMAIL_BACKENDS.get(EMAIL_BACKEND_NAME, EMAIL_BACKEND_NAME)
if "." not in _email_backend:
    raise ImproperlyConfigured(
        f"EMAIL_BACKEND must be one of {', '.join(_EMAIL_BACKENDS)} or a dotted path, not {EMAIL_BACKEND_NAME!r}."
    )
_email_options: dict[str, object] = {}
if _email_backend.endswith("smtp.EmailBackend"):
    # STARTTLS (EMAIL_USE_TLS, port 587) or TLS from the first byte (EMAIL_USE_SSL, port 465).
    _use_ssl = envbool("EMAIL_USE_SSL", False)
    _use_tls = envbool("EMAIL_USE_TLS", not _use_ssl)
    if _use_ssl and _use_tls:
        raise ImproperlyConfigured(
            "EMAIL_USE_SSL=true (TLS from the start, port 465) and EMAIL_USE_TLS=true (STARTTLS, port 587) "
            "cannot both be on: set EMAIL_USE_TLS=false."
        )
    _email_options = {
        "host": envstr("EMAIL_HOST", "localhost"),
        "port": envint("EMAIL_PORT", 465 if _use_ssl else 587),
        "username": envstr("EMAIL_HOST_USER"),
        "password": envstr("EMAIL_HOST_PASSWORD"),
        "use_tls": _use_tls,
        "use_ssl": _use_ssl,
        "timeout": envint("EMAIL_TIMEOUT", 10, minimum=1),
    }
elif _email_backend.endswith("filebased.EmailBackend"):
    _email_options = {"file_path": envstr("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))}
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "MindSettler <bookings@mindsettler.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Failed sends are retried with growing delays (up to 4 hours apart). The mail server
# refusing the message or its recipient (a 5xx answer) gives it up after this many refusals;
# the server down, unreachable or refusing our login (its settings wrong) never counts, so an
# outage loses nothing that is mended within EMAIL_GIVE_UP_AFTER_HOURS of the email's writing.
EMAIL_MAX_ATTEMPTS = envint("EMAIL_MAX_ATTEMPTS", 8, minimum=1)
EMAIL_GIVE_UP_AFTER = timedelta(hours=envint("EMAIL_GIVE_UP_AFTER_HOURS", 72, minimum=1))

# --- Background tasks -------------------------------------------------------------------
_TASK_BACKENDS = {
    "immediate": "django.tasks.backends.immediate.ImmediateBackend",
    "database": "django_tasks_db.DatabaseBackend",
    "dummy": "django.tasks.backends.dummy.DummyBackend",
    # Scale-out: jobs in Redis, run by `rqworker --job-class django_tasks_rq.Job` (installed with
    # requirements-redis.txt; needs REDIS_URL).
    "rq": "django_tasks_rq.RQBackend",
}
_task_backend = envstr("TASKS_BACKEND", "immediate")
TASKS = {"default": {"BACKEND": _TASK_BACKENDS.get(_task_backend, _task_backend)}}
if TASKS["default"]["BACKEND"] == _TASK_BACKENDS["rq"]:
    if not REDIS_URL:
        raise ImproperlyConfigured("TASKS_BACKEND=rq needs REDIS_URL.")
    _installed("django_tasks_rq", "django-tasks-rq", "TASKS_BACKEND=rq")
    INSTALLED_APPS.append("django_rq")  # its `rqworker` command
    TASKS["default"]["QUEUES"] = ["default"]
    RQ_QUEUES = {"default": {"URL": REDIS_URL}}

# --- Payments ---------------------------------------------------------------------------
PAYMENT_PROVIDER = envchoice("PAYMENT_PROVIDER", "sandbox", ("sandbox", "razorpay"))
RAZORPAY_KEY_ID = envstr("RAZORPAY_KEY_ID")
RAZORPAY_KEY_SECRET = envstr("RAZORPAY_KEY_SECRET")
RAZORPAY_WEBHOOK_SECRET = envstr("RAZORPAY_WEBHOOK_SECRET")
if PAYMENT_PROVIDER == "razorpay" and not (RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET and RAZORPAY_WEBHOOK_SECRET):
    raise ImproperlyConfigured(
        "PAYMENT_PROVIDER=razorpay needs RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET and RAZORPAY_WEBHOOK_SECRET."
    )

# --- Booking rules ----------------------------------------------------------------------
CLINIC_NAME = envstr("CLINIC_NAME", "MindSettler")
MFA_TOTP_ISSUER = CLINIC_NAME  # what staff see their codes listed under in their authenticator app
# Shown on every public page: this service is not for emergencies. The default is translated
# (marked with gettext_noop, looked up by bookings.context_processors); a configured text is
# shown as written unless the catalog has it.
CRISIS_HELP_TEXT = envstr(
    "CRISIS_HELP_TEXT",
    gettext_noop(
        "If you are in danger or thinking about ending your life, call 112 now, or the Tele-MANAS "
        "mental health helpline on 14416 (free, any time, many languages)."
    ),
)
BOOKING_MIN_NOTICE_HOURS = envint("BOOKING_MIN_NOTICE_HOURS", 24)
BOOKING_HORIZON_DAYS = envint("BOOKING_HORIZON_DAYS", 60, minimum=1)
CANCELLATION_CUTOFF_HOURS = envint("CANCELLATION_CUTOFF_HOURS", 24)
# How many times a client may move one booking online (staff moves are not counted).
RESCHEDULE_LIMIT = envint("RESCHEDULE_LIMIT", 2)
RESCHEDULE_LINK_MINUTES = 60
# When a slot frees up, how many waiting clients (oldest first) are emailed about it at once.
WAITLIST_OFFERS_PER_SLOT = envint("WAITLIST_OFFERS_PER_SLOT", 3, minimum=1)
PAYMENT_WINDOW_HOURS = envint("PAYMENT_WINDOW_HOURS", 48, minimum=1)
PAYMENT_DEADLINE_BEFORE_SESSION_HOURS = envint("PAYMENT_DEADLINE_BEFORE_SESSION_HOURS", 12)
DRAFT_RETENTION_HOURS = envint("DRAFT_RETENTION_HOURS", 48, minimum=1)
# A request confirmed while the address's last session waited to be recorded is held this
# long for it (services.held_requests_release); after that the client is told to book again.
HELD_REQUEST_DAYS = 14
# Finished (completed, cancelled, rejected) bookings lose their personal data after this.
RETENTION_MONTHS = envint("RETENTION_MONTHS", 12, minimum=1)
VERIFICATION_LINK_HOURS = 24
CANCELLATION_LINK_MINUTES = 60
# Reminder emails before each confirmed session, in hours before it (e.g. "24" or "24,2").
# Sent by `manage.py send_reminders`, which should run every few minutes.
REMINDER_HOURS = sorted(set(envints("REMINDER_HOURS", "24")), reverse=True)
BOOKING_LINK_DAYS_AFTER_SESSION = envint("BOOKING_LINK_DAYS_AFTER_SESSION", 30, minimum=1)
# "adult_only": clients confirm they are 18 or over. "guardian_consent": younger clients
# may book when a parent or guardian consents.
CLIENT_AGE_POLICY = envchoice("CLIENT_AGE_POLICY", "adult_only", ("adult_only", "guardian_consent"))
# Bump when the privacy notice or cancellation policy text changes; stored with each consent.
POLICY_VERSION = "2026-11-29"

# --- Security ---------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True  # read by the server only
LANGUAGE_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe app servers over plain HTTP (mindsettler.middleware.health_middleware).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Served over HTTPS: redirected to it here, or the site's address is https:// (a load
    # balancer in front may do the redirecting, with SECURE_SSL_REDIRECT=false here).
    _https = SECURE_SSL_REDIRECT or SITE_URL.startswith("https://")
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", _https)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", _https)
    LANGUAGE_COOKIE_SECURE = _https
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if not _https:
        # Plain HTTP on loopback (benchmarks, a trial): secure-only cookies would never come
        # back, and HSTS over HTTP is meaningless. check --deploy warns, as it should.
        SECURE_HSTS_SECONDS = 0

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    # FullCalendar embeds its small icon font (the prev/next chevrons) as a data: URL.
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(self), usb=(), interest-cohort=()"
)

# --- Forms ------------------------------------------------------------------------------
CRISPY_ALLOWED_TEMPLATE_PACKS = "tailwind"
CRISPY_TEMPLATE_PACK = "tailwind"
# Django's renderer, with <select> written in Python (the same markup, without a template
# include per option): see mindsettler/forms.py.
FORM_RENDERER = "mindsettler.forms.FormRenderer"

# --- Logging: one line per event, with the request ID, no personal data -----------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "mindsettler.logging.RequestIDFilter"}},
    "formatters": {
        "line": {
            "class": "mindsettler.logging.UTCFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s",
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's default "django" logger, which would print every line a second
        # time, unformatted, in debug mode.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # A line per task run is noise (seeding demo data runs hundreds); failures still show.
        "django.tasks": {"level": "WARNING"},
        # Django's request logger would print full URLs, which carry booking tokens.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # runserver's line per request (local runs only), its link tokens redacted.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # At DEBUG the template engine dumps whole contexts (booking objects, link tokens).
        "django.template": {"level": "INFO"},
    },
}
