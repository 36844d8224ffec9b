"""The booking domain's data. Rules live in bookings/services/; invariants live here, in the database."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Cast, Coalesce, Lower
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

# Acknowledgement IDs: six characters without look-alikes (no 0/O, 1/I/L).
ACK_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
ACK_LENGTH = 6
ACK_REGEX = rf"^MS-[{ACK_ALPHABET}]{{{ACK_LENGTH}}}$"


class Status(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PENDING = "pending", _("Pending review")
    APPROVED = "approved", _("Approved")
    PAYMENT_PENDING = "payment_pending", _("Payment pending")
    CONFIRMED = "confirmed", _("Confirmed")
    COMPLETED = "completed", _("Completed")
    # Final, like COMPLETED: the client did not come to a confirmed session. Kept distinct so
    # that "completed" always means the session took place.
    NO_SHOW = "no_show", _("No-show")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE_STATUSES = (Status.PENDING, Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED)

# Online rooms' links: long ones are usual (a Teams meeting's runs past 250 characters), and
# only https, as the client's "Join" button opens it.
MEETING_URL_MAX_LENGTH = 2000


def meeting_url_https(value: str) -> None:
    """Only https links; a link that is no web address at all is the URL field's own error."""
    scheme, sep, _rest = value.partition("://")
    if sep and scheme.lower() != "https":
        raise ValidationError("Enter the link as a secure web address, starting with https://.", code="https_only")


# Statuses that hold their slot: a slot carries at most one booking in one of these. A no-show
# held its slot too: the counsellor's time was reserved and is gone.
SLOT_HOLDING_STATUSES = (*ACTIVE_STATUSES, Status.COMPLETED, Status.NO_SHOW)
# Statuses in which a booking must have a slot.
SLOTTED_STATUSES = (Status.APPROVED, Status.PAYMENT_PENDING, Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW)


class Actor(models.TextChoices):
    CLIENT = "client", "Client"
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"
    PROVIDER = "provider", "Payment provider"


class ConsentGiven(models.TextChoices):
    """How a client agreed to the privacy notice when staff made their booking (a client who
    phoned or came in), as the action of the BookingEvent that records it: the action, unlike
    the event's reason, outlives anonymisation. A booking the client sent from the wizard has
    no such event: they agreed in the form itself."""

    PHONE = "consent_by_phone", "By phone"
    IN_PERSON = "consent_in_person", "In person"


class Mode(models.TextChoices):
    ONLINE = "online", _("Online")
    IN_PERSON = "in_person", _("In person")


# Each way of meeting and the field that says a session type or counsellor offers it.
MODE_FLAGS = {Mode.ONLINE: "offers_online", Mode.IN_PERSON: "offers_in_person"}


class Clinic(models.Model):
    """The clinic's public details, edited in the staff portal. There is one row. Its name is
    the CLINIC_NAME setting, one name for pages and emails alike (read without a query)."""

    address = models.TextField(blank=True, help_text="Shown to clients with in-person sessions.")
    directions = models.TextField(blank=True, help_text="How to find the clinic.")
    phone = models.CharField(max_length=30, blank=True)
    email = models.EmailField(blank=True)

    def __str__(self) -> str:
        return settings.CLINIC_NAME

    @classmethod
    def load(cls) -> Clinic:
        """The clinic's details: an empty, unsaved clinic until an administrator saves them
        (its save() then writes the one row). Reading never writes, so no GET does."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


# Languages counsellors speak, by their English name folded, as clients read them. Staff type
# the names freely (Counsellor.languages); the usual ones are shown in the page's language.
LANGUAGE_NAMES = {
    "english": _("English"),
    "hindi": _("Hindi"),
    "bengali": _("Bengali"),
    "marathi": _("Marathi"),
    "telugu": _("Telugu"),
    "tamil": _("Tamil"),
    "gujarati": _("Gujarati"),
    "urdu": _("Urdu"),
    "kannada": _("Kannada"),
    "odia": _("Odia"),
    "malayalam": _("Malayalam"),
    "punjabi": _("Punjabi"),
    "assamese": _("Assamese"),
    "konkani": _("Konkani"),
    "nepali": _("Nepali"),
    "sindhi": _("Sindhi"),
    "kashmiri": _("Kashmiri"),
}


def language_name(name: str) -> str:
    known = LANGUAGE_NAMES.get(name.casefold())
    return str(known) if known is not None else name


def shown_in_hindi(obj: models.Model, field: str) -> str:
    """`obj`'s `field` as clients see it in the active language: its Hindi (`field`_hi) on
    Hindi pages and in Hindi emails, when staff gave one; else `field`. Staff always read
    `field` itself."""
    return (getattr(obj, f"{field}_hi") if translation.get_language() == "hi" else "") or getattr(obj, field)


def english_shown(obj: models.Model, fields: tuple[str, ...]) -> set[str]:
    """Which of `fields` a Hindi page shows in English (no Hindi given): marked lang="en",
    so that a screen reader reads them as English."""
    if translation.get_language() != "hi":
        return set()
    return {field for field in fields if getattr(obj, field) and not getattr(obj, f"{field}_hi")}


class Counsellor(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="counsellor",
    )
    display_name = models.CharField(max_length=120)
    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=120, blank=True)
    bio = models.TextField(blank=True)
    approach = models.TextField(blank=True)
    # Clients reading in Hindi see these, when the counsellor gave them (see shown_title).
    title_hi = models.CharField(max_length=120, blank=True, default="", db_default="")
    approach_hi = models.TextField(blank=True, default="", db_default="")
    bio_hi = models.TextField(blank=True, default="", db_default="")
    languages = models.CharField(max_length=200, blank=True, help_text="Comma-separated.")
    offers_online = models.BooleanField(default=True)
    offers_in_person = models.BooleanField(default=True)
    meeting_url = models.URLField(
        blank=True,
        max_length=MEETING_URL_MAX_LENGTH,
        validators=[meeting_url_https],
        help_text="Default online room, sent to clients once a booking is confirmed.",
    )
    daily_summary = models.BooleanField(default=False)
    # Emails when a session of theirs is cancelled, moved or handed over (notifications.session_changed).
    change_emails = models.BooleanField(default=True, db_default=True)
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "display_name"]

    def __str__(self) -> str:
        return self.display_name

    @property
    def language_list(self) -> list[str]:
        return [lang.strip() for lang in self.languages.split(",") if lang.strip()]

    @property
    def language_names(self) -> list[str]:
        """The languages as a client reads them: in Hindi on Hindi pages, for those named in
        LANGUAGE_NAMES; any other as staff wrote it."""
        return [language_name(lang) for lang in self.language_list]

    # As clients read them (shown_in_hindi, english_shown).
    @property
    def shown_title(self) -> str:
        return shown_in_hindi(self, "title")

    @property
    def shown_approach(self) -> str:
        return shown_in_hindi(self, "approach")

    @property
    def shown_bio(self) -> str:
        return shown_in_hindi(self, "bio")

    @property
    def english_shown(self) -> set[str]:
        return english_shown(self, ("title", "approach", "bio"))

    @property
    def initials(self) -> str:
        """For the profile's picture: the public pages show initials, not photos."""
        parts = [p for p in self.display_name.split() if p[:1].isalpha()]
        return "".join(p[0].upper() for p in parts[:2]) or "?"

    @property
    def modes(self) -> list[str]:
        return [mode for mode, flag in MODE_FLAGS.items() if getattr(self, flag)]


class CounsellorPreviousSlug(models.Model):
    """A link name a counsellor's profile had before an administrator changed it: links
    shared with the old one (on social media, in emails) still lead to the profile, and no
    other counsellor may take it (bookings.services.counsellor_save). Read only when no
    counsellor has the slug asked for now."""

    counsellor = models.ForeignKey(Counsellor, on_delete=models.CASCADE, related_name="previous_slugs")
    slug = models.SlugField(unique=True)
    replaced_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.slug


class SessionType(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    description = models.TextField(blank=True)
    # Clients reading in Hindi see these, when staff gave them (see shown_name).
    name_hi = models.CharField(max_length=100, blank=True, default="", db_default="")
    description_hi = models.TextField(blank=True, default="", db_default="")
    duration_minutes = models.PositiveSmallIntegerField()
    price = models.PositiveIntegerField(help_text="In minor units (paise).")
    currency = models.CharField(max_length=3, default="INR")
    offers_online = models.BooleanField(default=True)
    offers_in_person = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(offers_online=True) | Q(offers_in_person=True),
                name="session_type_offers_a_mode",
            ),
            models.CheckConstraint(condition=Q(duration_minutes__gt=0), name="session_type_duration_positive"),
            # Clients choose by name: two bookable session types never share one (in either
            # language), whatever the case; services.session_type_save says so first.
            models.UniqueConstraint(Lower("name"), condition=Q(is_active=True), name="session_type_active_name"),
            models.UniqueConstraint(
                Lower("name_hi"), condition=Q(is_active=True) & ~Q(name_hi=""), name="session_type_active_name_hi"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def shown_name(self) -> str:
        """As clients read it (shown_in_hindi): staff always see `name`."""
        return shown_in_hindi(self, "name")

    @property
    def shown_description(self) -> str:
        return shown_in_hindi(self, "description")

    @property
    def english_shown(self) -> set[str]:
        return english_shown(self, ("name", "description"))

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def modes(self) -> list[str]:
        return [mode for mode, flag in MODE_FLAGS.items() if getattr(self, flag)]


class Slot(models.Model):
    """A published period in which a counsellor can hold one session.

    One counsellor's slots never overlap: checked in services, and by the database too: an
    exclusion constraint on PostgreSQL (migration 0002), triggers on SQLite (migration 0026).
    """

    counsellor = models.ForeignKey(Counsellor, on_delete=models.CASCADE, related_name="slots")
    start = models.DateTimeField()
    end = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The waitlist's outbox: written in the transaction that frees the slot, so that an offer
    # whose task was lost (a queue down, a worker killed) is still owed, and found by the sweep.
    freed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it became free, until the waitlist has been offered it."
    )

    class Meta:
        ordering = ["start", "counsellor_id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="slot_ends_after_start"),
            models.UniqueConstraint(fields=["counsellor", "start"], name="slot_unique_counsellor_start"),
        ]
        indexes = [
            models.Index(fields=["start", "end"], name="slot_start_end"),
            # Few rows are owed an offer at any time: the sweep reads (and clears) only those.
            models.Index(fields=["freed_at"], condition=Q(freed_at__isnull=False), name="slot_freed"),
        ]

    def __str__(self) -> str:
        return f"{self.counsellor} {timezone.localtime(self.start):%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


class Booking(models.Model):
    class AgeConfirmation(models.TextChoices):
        ADULT = "adult", _("18 or over")
        GUARDIAN = "guardian", _("Under 18, with a parent's or guardian's consent")

    ack_id = models.CharField("acknowledgement ID", max_length=9, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    version = models.PositiveIntegerField(default=1, help_text="Bumped by every change of state.")

    # The client (no account). Personal data: cleared by anonymisation.
    client_name = models.CharField(max_length=120)
    email = models.EmailField(max_length=254, help_text="Normalised: trimmed and lower-case.")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164.")
    age_confirmation = models.CharField(max_length=10, choices=AgeConfirmation.choices, blank=True)
    consent_policy_version = models.CharField(max_length=20, blank=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(max_length=10, default="en")
    # The client's own words. Sensitive: only the assigned counsellor and administrators see
    # them; never in emails, logs, the calendar feed, exports or the API.
    concerns = models.TextField("what brings you", blank=True)
    preferred_times = models.TextField(blank=True, help_text="Preferred days and times, in the client's words.")

    # The session.
    session_type = models.ForeignKey(SessionType, on_delete=models.PROTECT, related_name="bookings")
    mode = models.CharField(max_length=10, choices=Mode.choices)
    counsellor = models.ForeignKey(
        Counsellor,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bookings",
        help_text="Requested, then assigned. Empty: no preference, not yet assigned.",
    )
    preferred_slot = models.ForeignKey(Slot, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, null=True, blank=True, related_name="bookings")
    meeting_url = models.URLField(blank=True, max_length=MEETING_URL_MAX_LENGTH, validators=[meeting_url_https])
    amount = models.PositiveIntegerField(help_text="In minor units (paise).")
    currency = models.CharField(max_length=3, default="INR")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # One key per wizard run: a double submit finds the draft it already made.
    submission_key = models.CharField(max_length=64, unique=True, null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    payment_due_at = models.DateTimeField(null=True, blank=True)
    anonymised_at = models.DateTimeField(null=True, blank=True)
    # When the client confirmed their email address. A draft confirmed while the address's
    # last session had ended but was not yet recorded (still confirmed, so still its one
    # active booking) is a request held: it is made as soon as that session is recorded
    # (services.held_requests_release), instead of the client having to book again.
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["email"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="booking_one_active_per_email",
                violation_error_message="This email address already has an active booking.",
            ),
            models.UniqueConstraint(
                fields=["slot"],
                condition=Q(status__in=SLOT_HOLDING_STATUSES),
                name="booking_one_per_slot",
                violation_error_message="This time slot is already taken.",
            ),
            models.CheckConstraint(condition=Q(email=Lower("email")), name="booking_email_normalised"),
            models.CheckConstraint(condition=Q(status__in=Status.values), name="booking_status_valid"),
            models.CheckConstraint(
                condition=Q(slot__isnull=False) | ~Q(status__in=SLOTTED_STATUSES),
                name="booking_slotted_has_slot",
            ),
            # A booking with a time has the counsellor whose time it is: who may see it, whose
            # room it is held in (and the staff dashboard's queries rely on it). That it is
            # the slot's own counsellor is held by the database too, outside Django's model
            # state: a composite foreign key on PostgreSQL, triggers on SQLite (migration 0026).
            models.CheckConstraint(
                condition=Q(slot__isnull=True) | Q(counsellor__isnull=False),
                name="booking_slot_has_counsellor",
            ),
            models.CheckConstraint(condition=Q(ack_id__regex=ACK_REGEX), name="booking_ack_id_format"),
            models.CheckConstraint(condition=Q(mode__in=Mode.values), name="booking_mode_valid"),
            # A time reserved and waiting for its payment has a time to pay by: without it the
            # expiry sweep would never release it.
            models.CheckConstraint(
                condition=~Q(status__in=(Status.APPROVED, Status.PAYMENT_PENDING))
                | Q(approved_at__isnull=False, payment_due_at__isnull=False),
                name="booking_awaiting_payment_has_due",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="booking_status_created"),
            models.Index(fields=["counsellor", "status"], name="booking_counsellor_status"),
            models.Index(fields=["email"], name="booking_email"),
            models.Index(fields=["status", "payment_due_at"], name="booking_status_due"),
            # The staff list's default order (newest first): a page is read from the index
            # instead of sorting every booking.
            models.Index(fields=["created_at", "id"], name="booking_created"),
        ]

    def __str__(self) -> str:
        return self.ack_id

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def join_url(self) -> str:
        """The link to join an online session: the booking's own, else its counsellor's room
        while they are at work (the room of one who has left is theirs: their deactivation
        cleared their sessions' own links too); "" when there is none
        (staff.selectors.online_without_link is the query form)."""
        counsellor = self.counsellor
        if self.meeting_url or counsellor is None:
            return self.meeting_url
        if counsellor.user_id is not None and not counsellor.user.is_active:
            return ""
        return counsellor.meeting_url

    @property
    def session_end(self) -> datetime | None:
        """When the session ends: its start plus its session type's length (fixed once a
        booking uses the type), as the client's calendar invitation says. Its slot may be
        longer, and stays held whole (nothing else is booked in it), but the slot's end is
        not the session's. None without a reserved time. session_end_expression is the
        query form."""
        if self.slot is None:
            return None
        return self.slot.start + self.session_type.duration

    @property
    def session_over(self) -> bool:
        """Whether the session has ended (False without a reserved time). A CONFIRMED booking
        stays active after it until staff record it as held or missed."""
        return session_has_ended(self.session_end)

    @property
    def preferred_session_end(self) -> datetime | None:
        """When the session would end at the time the client asked for (as session_end)."""
        if self.preferred_slot is None:
            return None
        return self.preferred_slot.start + self.session_type.duration

    @property
    def client_initials(self) -> str:
        parts = [p for p in self.client_name.split() if p[:1].isalpha()]
        return "".join(p[0].upper() for p in parts[:2]) or "?"


def session_has_ended(end: datetime | None) -> bool:
    """Whether a session ending at `end` (a session_end, None without a reserved time) has
    ended."""
    return end is not None and end <= timezone.now()


def session_end_expression(
    *, start: str = "slot__start", minutes: str = "session_type__duration_minutes"
) -> ExpressionWrapper:
    """Booking.session_end in a query: the moment `start` (a lookup to the slot's start) plus
    `minutes` (a lookup to the session type's length). NULL where either is."""
    # As an IntegerField: Django multiplies a duration on SQLite only by that, not a small one.
    length = ExpressionWrapper(
        Cast(minutes, models.IntegerField()) * Value(timedelta(minutes=1)), output_field=DurationField()
    )
    return ExpressionWrapper(F(start) + length, output_field=DateTimeField())


class BookingEvent(models.Model):
    """The audit trail: every change of status, and other notable actions, with who and why."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    action = models.CharField(max_length=30, default="transition")
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    # A move's old and new start ("rescheduled" only): the client's timeline words them in
    # its own language; `reason` says the same in English for staff.
    moved_from = models.DateTimeField(null=True, blank=True)
    moved_to = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["booking", "created_at"], name="event_booking_created"),
            # The dashboard's recent activity: the newest events, whatever their booking.
            models.Index(fields=["-created_at", "-id"], name="event_newest"),
            # The dashboard's outcomes: which cancelled bookings were cancelled by a person.
            models.Index(
                fields=["booking"], condition=Q(action="transition", to_status="cancelled"), name="event_cancelled"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(moved_from__isnull=True, moved_to__isnull=True)
                | Q(action="rescheduled", moved_from__isnull=False, moved_to__isnull=False),
                name="event_move_times_only_on_moves",
            )
        ]

    def __str__(self) -> str:
        return f"{self.booking_id}: {self.from_status or '-'} -> {self.to_status or '-'}"


class LinkPurpose(models.TextChoices):
    VERIFY = "verify", "Verify email"
    MANAGE = "manage", "Booking page"
    CANCEL = "cancel", "Confirm cancellation"
    ERASE = "erase", "Confirm erasure"
    EXPORT = "export", "Data export"
    RESCHEDULE = "reschedule", "Confirm a move to another time"


class LinkToken(models.Model):
    """A secret in an emailed link. Only its SHA-256 is stored."""

    Purpose = LinkPurpose  # at module level, so that the constraints in Meta can name it

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="tokens")
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    # The time a RESCHEDULE link moves the booking to: what the client chose is what the
    # link confirms, and nothing else can be changed by whoever holds it.
    slot = models.ForeignKey("Slot", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["booking", "purpose"], name="token_booking_purpose")]
        constraints = [
            models.CheckConstraint(
                condition=Q(purpose="reschedule", slot__isnull=False)
                | (~Q(purpose="reschedule") & Q(slot__isnull=True)),
                name="token_slot_only_for_reschedule",
            ),
            models.CheckConstraint(condition=Q(purpose__in=LinkPurpose.values), name="token_purpose_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} token for booking {self.booking_id}"


class PaymentState(models.TextChoices):
    CREATED = "created", "Created"
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"


class RefundState(models.TextChoices):
    NONE = "", "No refund"
    PENDING = "pending", "Refund started"
    PROCESSED = "processed", "Refunded"
    FAILED = "failed", "Refund failed"


# A payment at the clinic: its provider, and how its ID starts when staff typed no receipt
# number (the ID is never empty once money is in: see services.payment_record_at_clinic).
CLINIC_PROVIDER = "clinic"
CLINIC_UNNUMBERED = "clinic_"


class Payment(models.Model):
    # Its choices are at module level, so that the constraints in Meta can name them.
    State = PaymentState
    RefundState = RefundState

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="payments")
    provider = models.CharField(max_length=20)
    provider_order_id = models.CharField(max_length=100, blank=True)
    provider_payment_id = models.CharField(max_length=100, blank=True)
    amount = models.PositiveIntegerField(help_text="In minor units (paise).")
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=State.choices, default=State.CREATED)
    raw = models.JSONField(default=dict, blank=True, help_text="The provider's payloads, by event.")
    needs_attention = models.CharField(max_length=300, blank=True, help_text="Why staff must look at this.")
    refund_status = models.CharField(max_length=10, choices=RefundState.choices, blank=True, default="")
    refunded_amount = models.PositiveIntegerField(default=0)
    # Of refunded_amount, what went back before the refund in hand (part refunded from the
    # provider's dashboard, say): the refund in hand returns the rest.
    refunded_earlier = models.PositiveIntegerField(default=0, db_default=0)
    # What the provider took, once money arrived: a refund returns it, whatever was asked for.
    captured_amount = models.PositiveIntegerField(null=True, blank=True, help_text="In minor units.")
    # When the client's return from checkout brought the provider's signed word that the money
    # was authorized, not captured yet (a UPI payment, often, for a few seconds): the capture
    # is on its way, and the booking is not expired under it (services.bookings_expire).
    authorized_at = models.DateTimeField(null=True, blank=True)
    provider_refund_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_payment_id"],
                condition=~Q(provider_payment_id=""),
                name="payment_unique_provider_payment",
            ),
            models.UniqueConstraint(
                fields=["provider", "provider_order_id"],
                condition=~Q(provider_order_id=""),
                name="payment_unique_provider_order",
            ),
            # A receipt number is the clinic's own: "r-1042" is receipt R-1042 typed again.
            models.UniqueConstraint(
                Lower("provider_payment_id"),
                condition=Q(provider=CLINIC_PROVIDER),
                name="payment_unique_clinic_receipt",
            ),
            models.UniqueConstraint(
                fields=["booking"], condition=Q(status="confirmed"), name="payment_one_confirmed_per_booking"
            ),
            models.CheckConstraint(condition=Q(status__in=PaymentState.values), name="payment_status_valid"),
            models.CheckConstraint(
                condition=Q(refund_status__in=RefundState.values), name="payment_refund_status_valid"
            ),
            # Never more back than was taken (or, before the money arrived, asked for).
            models.CheckConstraint(
                condition=Q(refunded_amount__lte=Coalesce("captured_amount", "amount")),
                name="payment_refund_within_captured",
            ),
            models.CheckConstraint(
                condition=Q(refunded_earlier__lte=F("refunded_amount")), name="payment_refunded_earlier_counted"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} payment {self.pk} for booking {self.booking_id}"

    @property
    def at_clinic(self) -> bool:
        """Money handed over at the clinic's desk, recorded by staff (payments.ClinicProvider)."""
        return self.provider == CLINIC_PROVIDER

    @property
    def reference(self) -> str:
        """The payment's reference, as a client or staff read it: the provider's, or the
        clinic's receipt number ("" for a payment at the clinic recorded without one)."""
        if self.at_clinic and self.provider_payment_id.startswith(CLINIC_UNNUMBERED):
            return ""
        return self.provider_payment_id

    @property
    def refund_in_hand(self) -> int:
        """What the refund under way (or failed) returns: what was taken, less what went back
        before it."""
        return (self.amount if self.captured_amount is None else self.captured_amount) - self.refunded_earlier


class RefundHeardEarly(models.Model):
    """A provider's news of a refund of a payment whose capture we have not heard of yet (its
    webhook is late, or the client's browser never came back): refunded from the provider's
    dashboard, say, or by the provider itself. Kept until the capture arrives, so that
    `payment_confirm` knows the money is already going back: it confirms nothing then, and
    is not refunded a second time."""

    class State(models.TextChoices):
        CREATED = "created", "Refund started"
        PROCESSED = "processed", "Refunded"
        FAILED = "failed", "Refund failed"

    provider = models.CharField(max_length=20)
    provider_payment_id = models.CharField(max_length=100)
    provider_refund_id = models.CharField(max_length=100)
    state = models.CharField(max_length=10, choices=State.choices)
    amount = models.PositiveIntegerField(help_text="In minor units (paise).")
    raw = models.JSONField(default=dict, blank=True, help_text="The provider's last word on the refund.")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_refund_id"], name="refund_heard_early_unique"),
            models.CheckConstraint(
                condition=~Q(provider_payment_id="") & ~Q(provider_refund_id=""), name="refund_heard_early_ids"
            ),
        ]
        indexes = [models.Index(fields=["provider", "provider_payment_id"], name="refund_heard_early_payment")]

    def __str__(self) -> str:
        return f"{self.provider} refund {self.provider_refund_id} of {self.provider_payment_id} ({self.state})"


class WebhookEvent(models.Model):
    """Provider webhook events already processed, so a replay changes nothing.

    An event is known by the SHA-256 of its signed part (for Razorpay, the body), never by
    the event ID beside it, which the signature does not cover. Events recorded before
    migration 0030 were known by that ID and have no digest: they stay as a record, and one
    of them delivered again is applied again, which changes nothing (the handlers are
    idempotent)."""

    provider = models.CharField(max_length=20)
    digest = models.CharField(max_length=64, null=True, blank=True)
    # The provider's ID for the event, for people matching it with the provider's records; it
    # proves nothing and is not unique (anyone holding a signed body may send it with any ID).
    event_id = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "digest"], name="webhook_event_digest_unique")]

    def __str__(self) -> str:
        return f"{self.provider} event {self.event_id or self.digest}"


class OutboundEmail(models.Model):
    """The email outbox: written in the same transaction as the change it announces.

    A task delivers it after commit; `manage.py send_emails` retries what failed. So a state
    change is never lost for want of an email, and an email never announces a change that
    was rolled back.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Gave up"

    kind = models.CharField(max_length=40)
    booking = models.ForeignKey(Booking, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails")
    to = models.EmailField(max_length=254)
    subject = models.CharField(max_length=200)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    ics = models.TextField(blank=True, help_text="An iCalendar attachment, if any.")
    status = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The failed attempts that were the message's own (the server refused it or its
    # recipient): EMAIL_MAX_ATTEMPTS of them give it up. A mail server down is no reason to.
    refusals = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When an administrator last put it back in the queue after it was given up (a long mail
    # outage, the email settings mended): the give-up clock (EMAIL_GIVE_UP_AFTER) runs from
    # then. Its links' lives still run from created_at, when they were made.
    requeued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="email_due")]

    def __str__(self) -> str:
        return f"{self.kind} email {self.pk}"


class LinksRequest(models.Model):
    """An address's request, from /status/, for the links to its bookings, waiting for a
    worker (bookings.tasks.send_booking_links). The page only writes this row, the same
    whether or not the address has booked: finding the bookings and queuing the email in the
    request would take longer for an address that has, and so say so to anyone timing it.
    Deleted once handled; `send_emails` handles any whose task never ran."""

    email = models.EmailField(max_length=254)
    language = models.CharField(max_length=10, help_text="The page's language, for the email.")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"links request {self.pk}"


def api_token_expiry() -> datetime:
    """When a token made now stops working, unless it is given a life of its own."""
    return timezone.now() + timedelta(days=settings.API_TOKEN_DAYS)


class ApiClient(models.Model):
    """A named caller of the chatbot API. Only the token's SHA-256 is stored.

    A client has one token, and for a while after `api_token rotate` also the one it
    replaced, so that the chatbot keeps working while it is redeployed with the new one.
    Both are on this row, so that one statement still authenticates either and the rate
    limit stays the client's (see bookings/api/auth.py)."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A leaked token must not work for ever. Existing tokens got API_TOKEN_DAYS from the
    # migration that added this, so that no working chatbot broke at the release.
    expires_at = models.DateTimeField(default=api_token_expiry)
    # When administrators were told that the token expires soon: once per token.
    expiry_warned_at = models.DateTimeField(null=True, blank=True)
    # The token the last rotation replaced, working until previous_expires_at.
    previous_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    previous_expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The client's rate-limit counter: the number of the current fixed window and the calls in
    # it. Counted by the same statement that authenticates a call, so that the API keeps its
    # query budget on the default database cache (see bookings/api/auth.py).
    rate_window = models.PositiveIntegerField(default=0)
    rate_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.name


class BookingView(models.Model):
    """Who on the staff looked at a booking's details, and when."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="views")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    viewed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-viewed_at"]

    def __str__(self) -> str:
        return f"{self.user_id} viewed booking {self.booking_id}"


WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class WeeklyHours(models.Model):
    """A counsellor's regular working hours, from which free slots are generated. Hours that end
    earlier than they start run past midnight into the next day (Friday 22:00 to 01:00 ends on
    Saturday); hours until midnight end at 00:00."""

    counsellor = models.ForeignKey(Counsellor, on_delete=models.CASCADE, related_name="weekly_hours")
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday.")
    start_time = models.TimeField()
    end_time = models.TimeField()
    session_minutes = models.PositiveSmallIntegerField(default=50)
    buffer_minutes = models.PositiveSmallIntegerField(default=10)

    class Meta:
        ordering = ["weekday", "start_time"]
        constraints = [
            # An end before the start is the next day's, so only hours that end when they
            # start are empty.
            models.CheckConstraint(condition=~Q(end_time=F("start_time")), name="weekly_hours_not_empty"),
            models.CheckConstraint(condition=Q(weekday__lte=6), name="weekly_hours_weekday_valid"),
            models.CheckConstraint(condition=Q(session_minutes__gt=0), name="weekly_hours_session_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.counsellor} {self.label}"

    @property
    def ends_next_day(self) -> bool:
        """Whether they end on the day after they start: past midnight, or at it (00:00)."""
        return self.end_time < self.start_time

    @property
    def minutes(self) -> tuple[int, int]:
        """Its start and end as minutes from the start of its day: an end on the next day is
        past 1440 (hours until midnight end at 1440, 22:00 to 01:00 at 1500). Hours that end
        when they start (refused) are empty."""
        first = self.start_time.hour * 60 + self.start_time.minute
        last = self.end_time.hour * 60 + self.end_time.minute
        return first, last + 24 * 60 if self.ends_next_day else last

    @property
    def week_minutes(self) -> tuple[int, int]:
        """Its start and end as minutes from Monday 00:00: Sunday's hours past midnight end
        past the week's 10080, in the next week's Monday."""
        first, last = self.minutes
        return self.weekday * 24 * 60 + first, self.weekday * 24 * 60 + last

    @property
    def end_label(self) -> str:
        return "24:00" if self.end_time == time(0) else f"{self.end_time:%H:%M}"

    @property
    def label(self) -> str:
        """As staff read them: 'Friday 09:00 to 13:00' with an en dash; 'Friday 21:00 to 24:00'
        (until midnight); 'Friday 22:00 to 01:00 (Saturday)', past midnight."""
        said = f"{WEEKDAY_NAMES[self.weekday % 7]} {self.start_time:%H:%M}\N{EN DASH}{self.end_label}"
        if self.ends_next_day and self.end_time != time(0):
            said += f" ({WEEKDAY_NAMES[(self.weekday + 1) % 7]})"
        return said


class BlockedPeriod(models.Model):
    """Leave or a holiday: no free slots are kept or generated inside it."""

    counsellor = models.ForeignKey(Counsellor, on_delete=models.CASCADE, related_name="blocked_periods")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [models.CheckConstraint(condition=Q(end__gt=F("start")), name="blocked_end_after_start")]

    def __str__(self) -> str:
        return f"{self.counsellor} blocked from {self.start:%Y-%m-%d %H:%M}"


class RateCounter(models.Model):
    """A fixed-window request counter for rate limits, shared by every app server.

    One row per (scope, hashed key); bumped with a single upsert (see ratelimit.py).
    Used when Redis is not configured.
    """

    key = models.CharField(max_length=80, primary_key=True)
    period_start = models.BigIntegerField(help_text="Unix time the current window began.")
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"


class Reminder(models.Model):
    """A reminder email sent (or being sent) for one session: at most one per booking, kind
    and slot. The unique constraint is what makes `send_reminders` safe to run concurrently
    and again; keying by the slot means a session moved to another time gets fresh ones."""

    booking = models.ForeignKey(Booking, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=20, help_text="Which reminder: hours before the session, e.g. 24h.")
    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, related_name="+")
    email = models.ForeignKey(OutboundEmail, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["booking", "kind", "slot"], name="reminder_once_per_slot"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} reminder for booking {self.booking_id}"


class DailySummary(models.Model):
    """A counsellor's morning summary for one day, claimed before it is sent: once per day."""

    counsellor = models.ForeignKey(Counsellor, on_delete=models.CASCADE, related_name="daily_summaries")
    day = models.DateField()
    sessions = models.PositiveSmallIntegerField(default=0)
    email = models.ForeignKey(OutboundEmail, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["counsellor", "day"], name="daily_summary_once_per_day")]

    def __str__(self) -> str:
        return f"summary for {self.counsellor} on {self.day}"


class WaitlistState(models.TextChoices):
    WAITING = "waiting", "Waiting"
    OFFERED = "offered", "Offered a time"
    BOOKED = "booked", "Booked"
    EXPIRED = "expired", "Expired"
    LEFT = "left", "Left the waitlist"
    CLOSED = "closed", "Ended: can no longer be offered"


class WaitlistEntry(models.Model):
    """A client waiting for a time to free up: for a kind of session, a counsellor (or any)
    and a range of days. Personal data (name, email): deleted when unverified, and kept no
    longer than the entry is useful (see services.waitlist_expire)."""

    State = WaitlistState  # at module level, so that the constraints in Meta can name it

    client_name = models.CharField(max_length=120)
    email = models.EmailField(max_length=254, help_text="Normalised: trimmed and lower-case.")
    session_type = models.ForeignKey(SessionType, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=10, choices=Mode.choices)
    counsellor = models.ForeignKey(
        Counsellor, on_delete=models.CASCADE, null=True, blank=True, related_name="+", help_text="Empty: any."
    )
    date_from = models.DateField()
    date_to = models.DateField(help_text="The last day that suits; the entry expires after it.")
    status = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    language = models.CharField(max_length=10, default="en", help_text="The language of the client's emails.")
    created_at = models.DateTimeField(default=timezone.now)
    verified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(date_to__gte=F("date_from")), name="waitlist_range_valid"),
            models.CheckConstraint(condition=Q(email=Lower("email")), name="waitlist_email_normalised"),
            models.CheckConstraint(condition=Q(mode__in=Mode.values), name="waitlist_mode_valid"),
            models.CheckConstraint(condition=Q(status__in=WaitlistState.values), name="waitlist_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "date_from", "date_to"], name="waitlist_status_range")]

    def __str__(self) -> str:
        return f"waitlist entry {self.pk} ({self.status})"


class WaitlistToken(models.Model):
    """A secret in an emailed waitlist link (confirm the address, leave). Only its SHA-256
    is stored. Separate from LinkToken, whose every reader relies on a booking."""

    class Purpose(models.TextChoices):
        VERIFY = "verify", "Confirm email"
        LEAVE = "leave", "Leave the waitlist"

    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="tokens")
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.purpose} token for waitlist entry {self.entry_id}"


class WaitlistOffer(models.Model):
    """One email offering one freed slot to one waiting client. Unique per (entry, slot): a
    slot is never offered twice to the same person, however often the hook runs."""

    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    slot = models.ForeignKey(Slot, on_delete=models.CASCADE, related_name="+")
    # The email that makes it: given up if the time is taken before it can go (emails._outdated).
    email = models.ForeignKey(OutboundEmail, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["entry", "slot"], name="waitlist_offer_once")]

    def __str__(self) -> str:
        return f"slot {self.slot_id} offered to waitlist entry {self.entry_id}"
