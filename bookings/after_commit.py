"""Background work that a change starts, queued once the change has committed."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task_name: str, *args: Any, otherwise: str) -> None:
    """Queue bookings.tasks.`task_name`(*args) after the caller's transaction commits (at once
    outside one), so that a rolled-back change starts nothing. A queue that refuses it is
    logged, never raised: the change has committed all the same, and `otherwise` says what
    does the work then (a sweep), for whoever reads the log."""
    from bookings import tasks  # tasks imports emails, which queues through here

    task = getattr(tasks, task_name)  # a wrong name fails loudly, not in the log below

    def enqueue() -> None:
        try:
            task.enqueue(*args)
        except Exception:
            logger.exception("could not enqueue %s%s; %s", task_name, tuple(args), otherwise)

    transaction.on_commit(enqueue)
