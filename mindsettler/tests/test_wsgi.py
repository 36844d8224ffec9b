"""The WSGI entry point gunicorn loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_what_loading_the_app_made_is_frozen_out_of_the_garbage_collectors_walks():
    # A full collection walks every tracked object: with the app's ~110,000 it paused a
    # request for about 40 ms, enough to show in the benchmark's p99 (README, Performance).
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", "import gc, mindsettler.wsgi; print(gc.get_freeze_count(), len(gc.get_objects()))"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "mindsettler.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    frozen, tracked = map(int, result.stdout.split())
    assert frozen > 50_000 and tracked < frozen / 10, result.stdout
