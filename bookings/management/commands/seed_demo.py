"""Demo data for a local run: counsellors with weekly hours, session types, two weeks of slots,
three staff logins.

Idempotent: a second run adds only what is missing (new days' slots) and prints no passwords.
"""

from __future__ import annotations

import secrets
from datetime import time, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from bookings.models import Clinic, Counsellor, SessionType, WeeklyHours
from bookings.services import slots_publish, weekly_hours_add, weekly_hours_period

SESSION_TYPES = [
    dict(
        slug="first-consultation",
        name="First consultation",
        description="A shorter first conversation to understand what you need and who can help.",
        name_hi="पहली बातचीत",
        description_hi="एक छोटी पहली बातचीत, यह समझने के लिए कि आपको क्या चाहिए और कौन मदद कर सकता है।",
        duration_minutes=30,
        price=80000,
        sort_order=1,
    ),
    dict(
        slug="individual",
        name="Individual session",
        description="A one-to-one session with a counsellor.",
        name_hi="व्यक्तिगत सेशन",
        description_hi="किसी काउंसलर के साथ अकेले में, एक-से-एक बातचीत।",
        duration_minutes=50,
        price=150000,
        sort_order=2,
    ),
    dict(
        slug="couples",
        name="Couples session",
        description="A session for two people together.",
        name_hi="कपल सेशन",
        description_hi="दो लोगों के लिए एक साथ एक सेशन।",
        duration_minutes=80,
        price=250000,
        sort_order=3,
    ),
]

COUNSELLORS = [
    dict(
        slug="asha-menon",
        display_name="Dr Asha Menon",
        title="Counselling psychologist",
        bio="Asha has worked with adults and young people for twelve years, in hospitals and in private practice.",
        approach="Warm, practical and collaborative, drawing on cognitive behavioural therapy and mindfulness.",
        title_hi="काउंसलिंग साइकोलॉजिस्ट",
        bio_hi="आशा बारह वर्षों से अस्पतालों और निजी प्रैक्टिस में वयस्कों और युवाओं के साथ काम कर रही हैं।",
        approach_hi="आत्मीय, व्यावहारिक और मिल-जुलकर काम करने का तरीका, जो कॉग्निटिव बिहेवियरल थेरेपी और माइंडफ़ुलनेस पर आधारित है।",
        languages="English, Hindi, Malayalam",
        meeting_url="https://meet.mindsettler.example/asha-menon",
        email="asha@mindsettler.example",
        first_name="Asha",
        last_name="Menon",
        # Monday to Friday: 50-minute sessions on the hour.
        days=(0, 1, 2, 3, 4),
        hours=(time(10), time(17)),
        session_minutes=50,
        buffer_minutes=10,
    ),
    dict(
        slug="rohan-kapoor",
        display_name="Rohan Kapoor",
        title="Couples and family therapist",
        bio="Rohan works with couples and families through change, conflict and loss.",
        approach="Systemic and person-centred; every voice in the room matters.",
        title_hi="कपल और फ़ैमिली थेरेपिस्ट",
        bio_hi="रोहन जोड़ों और परिवारों के साथ काम करते हैं, जब वे बदलाव, अनबन या किसी अपने को खोने के दौर से गुज़र रहे हों।",
        approach_hi="सिस्टमिक और व्यक्ति-केंद्रित तरीका; बातचीत में हर व्यक्ति की बात मायने रखती है।",
        languages="English, Hindi, Punjabi",
        meeting_url="https://meet.mindsettler.example/rohan-kapoor",
        email="rohan@mindsettler.example",
        first_name="Rohan",
        last_name="Kapoor",
        # Tuesday to Saturday: 80 minutes, long enough for couples sessions.
        days=(1, 2, 3, 4, 5),
        hours=(time(11), time(19)),
        session_minutes=80,
        buffer_minutes=10,
    ),
]

ADMIN_EMAIL = "admin@mindsettler.example"


class Command(BaseCommand):
    help = "Load demo data (idempotent). Prints new staff passwords once."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=14, help="How many days of slots to publish.")

    @transaction.atomic
    def handle(self, *args: object, days: int, **options: object) -> None:
        User = get_user_model()
        clinic = Clinic.load()
        if not clinic.address:
            clinic.address = "2nd floor, 14 Lavelle Road, Bengaluru 560001"
            clinic.directions = "Five minutes' walk from Cubbon Park metro station. Lift access; step-free entrance."
            clinic.phone = "+91 80 4000 1234"
            clinic.email = "care@mindsettler.example"
            clinic.save()

        for data in SESSION_TYPES:
            SessionType.objects.get_or_create(slug=data["slug"], defaults=data)

        created_logins: list[tuple[str, str, str]] = []
        admin, created = User.objects.get_or_create(
            email=ADMIN_EMAIL,
            defaults={"first_name": "Meera", "last_name": "Iyer", "role": User.Role.ADMINISTRATOR},
        )
        if created:
            password = secrets.token_urlsafe(12)
            admin.set_password(password)
            admin.save()
            created_logins.append(("administrator", ADMIN_EMAIL, password))

        today = timezone.localdate()
        made = 0
        for data in COUNSELLORS:
            user, created = User.objects.get_or_create(
                email=data["email"],
                defaults={
                    "first_name": data["first_name"],
                    "last_name": data["last_name"],
                    "role": User.Role.COUNSELLOR,
                },
            )
            if created:
                password = secrets.token_urlsafe(12)
                user.set_password(password)
                user.save()
                created_logins.append(("counsellor", data["email"], password))
            counsellor, _ = Counsellor.objects.get_or_create(
                slug=data["slug"],
                defaults={
                    "user": user,
                    "display_name": data["display_name"],
                    "title": data["title"],
                    "bio": data["bio"],
                    "approach": data["approach"],
                    "title_hi": data["title_hi"],
                    "bio_hi": data["bio_hi"],
                    "approach_hi": data["approach_hi"],
                    "languages": data["languages"],
                    "meeting_url": data["meeting_url"],
                    "sort_order": COUNSELLORS.index(data),
                },
            )
            # Weekly hours, as a counsellor sets them on the availability page, and the
            # coming days' slots published from them (a new day's, on a later run).
            if not WeeklyHours.objects.filter(counsellor=counsellor).exists():
                for weekday in data["days"]:
                    weekly_hours_add(
                        counsellor=counsellor,
                        weekday=weekday,
                        start_time=data["hours"][0],
                        end_time=data["hours"][1],
                        session_minutes=data["session_minutes"],
                        buffer_minutes=data["buffer_minutes"],
                    )
            for offset in range(1, days + 1):
                day = today + timedelta(days=offset)
                for hours in WeeklyHours.objects.filter(counsellor=counsellor, weekday=day.weekday()):
                    start, end = weekly_hours_period(hours, day)
                    slots, _ = slots_publish(
                        counsellor=counsellor,
                        start=start,
                        end=end,
                        session_minutes=hours.session_minutes,
                        buffer_minutes=hours.buffer_minutes,
                    )
                    made += len(slots)

        self.stdout.write(f"Demo data ready: {made} new slots published.")
        for role, email, password in created_logins:
            self.stdout.write(self.style.WARNING(f"  {role} login: {email}  password: {password}"))
        if created_logins:
            self.stdout.write(
                "  These passwords are shown only now. Staff set up an authenticator app (TOTP) at first sign-in, "
                "after opening a link emailed to them (printed in this console)."
            )
