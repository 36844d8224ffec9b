from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("Staff accounts need an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("role", User.Role.ADMINISTRATOR)
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A member of staff. Clients never have accounts."""

    class Role(models.TextChoices):
        ADMINISTRATOR = "administrator", "Administrator"
        COUNSELLOR = "counsellor", "Counsellor"

    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.COUNSELLOR)
    # Part of every session's auth hash: bumping it ends all of this person's open sessions on
    # their next request, whatever the session engine (see get_session_auth_hash). db_default:
    # the previous release, still running during a deploy, inserts users without it.
    session_version = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="Bumped to sign this person out everywhere (deactivation, second-factor reset).",
    )

    USERNAME_FIELD = "email"
    # createsuperuser asks for a name too: the Staff page and the audit trail show it.
    REQUIRED_FIELDS: list[str] = ["first_name"]

    objects = UserManager()  # type: ignore[assignment,misc]

    class Meta:
        ordering = ["first_name", "last_name", "email"]

    def __str__(self) -> str:
        return self.get_full_name() or self.email

    @property
    def is_administrator(self) -> bool:
        return self.is_active and self.role == self.Role.ADMINISTRATOR

    # Django signs each session with an HMAC of the password hash and signs the session out
    # when it no longer matches. Mixing in session_version lets an administrator end someone's
    # sessions without touching their password, and without a query per request or a scan of
    # the sessions table. At version 0 the hash is Django's own, so sessions opened before this
    # field existed stay valid.
    def get_session_auth_hash(self) -> str:
        return self._versioned_session_hash(secret=None)

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        for fallback_secret in settings.SECRET_KEY_FALLBACKS:
            yield self._versioned_session_hash(secret=fallback_secret)

    def _versioned_session_hash(self, *, secret: str | None) -> str:
        value = self.password if not self.session_version else f"{self.password}${self.session_version}"
        return salted_hmac(_SESSION_HASH_SALT, value, secret=secret, algorithm="sha256").hexdigest()


# Django's own salt (AbstractBaseUser._get_session_auth_hash): version-0 hashes stay identical.
_SESSION_HASH_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"


class AccountEvent(models.Model):
    """What an administrator did to a staff account, shown on the Team page. Ids only in logs;
    this table is the readable record."""

    class Kind(models.TextChoices):
        DEACTIVATED = "deactivated", "Account deactivated"
        REACTIVATED = "reactivated", "Account reactivated"
        SECOND_FACTOR_RESET = "second_factor_reset", "Second factor reset"
        COUNSELLOR_PROFILE_ADDED = "counsellor_profile_added", "Counsellor profile added"
        CALENDAR_SUBSCRIPTION_STOPPED = "calendar_stopped", "Calendar subscription stopped"

    member = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_events")
    actor = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.actor_id} {self.kind} {self.member_id}"


class SetupLink(models.Model):
    """A secret in an emailed link that lets a staff member set up the first authenticator
    app of their account (staff.services.setup_link_send). Only its SHA-256 is stored, as for
    the clients' links (bookings.tokens); each member has at most the newest one."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"authenticator setup link for staff account {self.user_id}"


class CalendarSubscription(models.Model):
    """A counsellor's private calendar address: `/staff/calendar/<secret>.ics`, which their
    phone's or desktop's calendar app reads without signing in, so the secret is the only
    credential. Only its SHA-256 is stored, as for the emailed links (bookings.tokens): the
    address is shown once, when it is made, and nobody can read it back from the database.

    At most one per staff account: a new address replaces the row (the old one stops working
    at once) and stopping deletes it, as do deactivating the account and resetting its second
    factor (a lost phone holds the address). A password reset stops it too (whoever had the
    password may have made it), but keeps the row with `stopped_at`, so that the member's
    calendar page says why their calendar app went quiet until they make a new address.
    `last_read_at` tells the member, and administrators on the Team page, whether a calendar
    app still reads it; it is written at most once an hour
    (staff.services.calendar_subscription_read)."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="calendar_subscription")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_read_at = models.DateTimeField(null=True, blank=True)
    # When a password reset stopped it (staff.services.calendar_subscription_stop_on_reset).
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A SHA-256 in hex: never the secret itself by mistake.
            models.CheckConstraint(
                condition=Q(token_hash__regex=r"^[0-9a-f]{64}$"),  # noqa: S106 (a pattern, not a password)
                name="calendar_token_is_sha256",
            ),
        ]

    def __str__(self) -> str:
        return f"calendar subscription of staff account {self.user_id}"
