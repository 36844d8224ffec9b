"""Production settings plus the benchmark's ceiling views. Used only by `make bench`.

Everything else comes from the environment exactly as in production (benchmarks/run.py sets
DEBUG=false, a generated SECRET_KEY, persistent connections...). The ceiling views live in
benchmarks/urls.py, which the production URLconf never includes.
"""

from __future__ import annotations

from mindsettler.settings import *  # noqa: F403
from mindsettler.settings import INSTALLED_APPS

ROOT_URLCONF = "benchmarks.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks"]  # for the ceiling's template
