# The two commands a new user needs: `make run` and `make test`. See README.md.
PY := .venv/bin/python
MANAGE := $(PY) manage.py

.PHONY: run test test-clocks setup setup-dev lint audit format css messages bench screenshots clean

# Another port when 8000 is taken: `make run PORT=8123` (emailed links say it too).
PORT ?= 8000
run: export SITE_URL ?= http://127.0.0.1:$(PORT)
run: setup
	$(MANAGE) migrate --noinput
	$(MANAGE) createcachetable
	$(MANAGE) seed_demo
	$(MANAGE) runserver 127.0.0.1:$(PORT)

# Three worker processes, on two cores: the browser tests spend much of their time waiting for
# Chromium, and the third keeps both cores busy (worksteal: an idle worker takes tests from a
# busy one, so no worker is left with the slow ones at the end). On PostgreSQL (DATABASE_URL
# set; the browser tests are skipped there, see e2e/conftest.py) only the tests that use the
# database run: the others cannot reach it and ran the same on SQLite. Then the tests marked
# `postgres`, in one process: its races and lock tests are about timing and are not safe beside
# a second worker. Each run fails on its own failure, and on finding no tests (pytest exits 5).
test: setup-dev
	$(PY) -m pytest -n 3 --dist worksteal $(if $(DATABASE_URL),-m "not postgres" --database-tests-only)
	$(if $(DATABASE_URL),$(PY) -m pytest -m postgres)

# The suite (without the browser and `postgres` tests) at six moments when date arithmetic
# goes wrong: late evening and after midnight in the clinic's zone, a Monday, a Sunday, a new
# month, a new year (scripts/test_clocks.py; needs faketime). About 2 minutes each; not in CI.
test-clocks: setup-dev
	$(PY) scripts/test_clocks.py $(ARGS)

setup:
	@scripts/bootstrap.sh requirements.txt

setup-dev:
	@scripts/bootstrap.sh requirements-dev.txt

lint: setup-dev
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# Every installed distribution against PyPI's vulnerability advisories (needs the network).
audit: setup-dev
	$(PY) scripts/audit_deps.py

format: setup-dev
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# Rebuild the committed, minified Tailwind CSS after changing templates (needs Node.js).
css:
	npm ci
	npm run build:css

# After changing text clients see: collect the marked strings into the Hindi catalog, write
# the Hindi for new entries in locale/hi/LC_MESSAGES/django.po, then `make messages` again to
# compile it. Commit the .po and the .mo. Needs GNU gettext (apt-get install gettext). The
# staff portal, the API and the management commands stay in English, so they are left out.
MESSAGES_IGNORE := $(foreach p,.venv node_modules e2e benchmarks staff templates/staff templates/account \
	templates/allauth templates/mfa bookings/tests bookings/management bookings/api mindsettler/tests docs \
	deploy static staticfiles,-i "$(p)/*")
messages: setup-dev
	$(MANAGE) makemessages -l hi --no-location $(MESSAGES_IGNORE)
	$(MANAGE) compilemessages -l hi -i .venv -i node_modules

# The side-by-side benchmark (issue 7; benchmarks/README.md). Needs wrk (apt-get install wrk);
# uses a throwaway PostgreSQL cluster when its server binaries are installed, else SQLite.
bench: setup
	$(PY) benchmarks/run.py

# The README tour: drives the app in Chromium with demo data, writes docs/screenshots/*.png.
screenshots: setup-dev
	$(PY) -m pytest e2e/screenshots.py -p no:cacheprovider -q

clean:
	rm -rf .venv staticfiles .pytest_cache
