#!/usr/bin/env bash
# Creates .venv with a Python >= 3.12 and installs the pinned requirements.
# Idempotent: a second run with unchanged requirements does nothing.
# Usage: scripts/bootstrap.sh requirements.txt|requirements-redis.txt|requirements-dev.txt
# PYTHON=/path/to/python3.12 chooses the interpreter when .venv is made.
set -euo pipefail
cd "$(dirname "$0")/.."
reqs="${1:-requirements.txt}"

find_python() {
    local want candidates c
    want="$(tr -d '[:space:]' < .python-version 2>/dev/null || true)"
    candidates=()
    [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
    if command -v pyenv >/dev/null 2>&1; then
        # The pinned version first, then any newer one.
        for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do
            case "$v" in "$want"|"$want".*) candidates+=("$(pyenv root)/versions/$v/bin/python");; esac
        done
        for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do
            case "$v" in 3.1[2-9]*) candidates+=("$(pyenv root)/versions/$v/bin/python");; esac
        done
    fi
    candidates+=("python$want" python3.14 python3.13 python3.12 python3)
    for c in "${candidates[@]}"; do
        if command -v "$c" >/dev/null 2>&1 \
            && "$c" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

# A .venv without pip is one whose making failed half-way (Debian's and Ubuntu's Python
# without python3.X-venv leaves the interpreter, then stops): made again.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
    || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    if ! py="$(find_python)"; then
        echo "error: MindSettler needs Python 3.12 or newer (with the venv module), and none was found." >&2
        echo "       Install one (e.g. 'pyenv install 3.12', or your distribution's python3.12 and python3.12-venv)," >&2
        echo "       or point PYTHON at it: PYTHON=/path/to/python3.12 make run" >&2
        exit 1
    fi
    echo "Creating .venv with $py ($("$py" -V))"
    rm -rf .venv
    if ! "$py" -m venv .venv; then
        rm -rf .venv
        echo "error: could not make .venv with $py; on Debian or Ubuntu, install python3.12-venv (or the venv package of that version)." >&2
        exit 1
    fi
fi

# Every requirements file counts: one includes another (-r).
stamp=".venv/.installed-$(cat "$reqs" requirements*.txt | sha256sum | cut -c1-16)-$(basename "$reqs")"
if [ ! -f "$stamp" ]; then
    echo "Installing $reqs into .venv"
    # Some machines' pip configuration names local mirrors that may be absent; those
    # warnings are noise, real errors still fail the install.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$reqs" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    test "${PIPESTATUS[0]}" -eq 0
    rm -f .venv/.installed-*-"$(basename "$reqs")"
    touch "$stamp"
fi

# The Hindi catalog: compiled here when GNU gettext is installed and the .po is newer than
# the .mo. Without gettext the committed .mo serves (bookings/tests/test_i18n.py checks that
# it says what the .po says).
po=locale/hi/LC_MESSAGES/django.po
if command -v msgfmt >/dev/null 2>&1 && [ "$po" -nt "${po%.po}.mo" ]; then
    echo "Compiling $po"
    msgfmt --check -o "${po%.po}.mo" "$po"
fi
