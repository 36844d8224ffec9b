from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate, pre_migrate


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = "Bookings"

    def ready(self) -> None:
        # The SQLite triggers of bookings.db_rules: out of the way of the migrations' table
        # rebuilds, and in place once they are done.
        pre_migrate.connect(_sqlite_rules_off, sender=self)
        post_migrate.connect(_sqlite_rules_on, sender=self)


def _sqlite_rules_off(using: str, **kwargs: Any) -> None:
    from bookings.db_rules import sqlite_triggers_drop

    if connections[using].vendor == "sqlite":
        sqlite_triggers_drop(connections[using])


def _sqlite_rules_on(using: str, **kwargs: Any) -> None:
    from bookings.db_rules import sqlite_triggers_sync

    sqlite_triggers_sync(connections[using])
