"""scripts/bootstrap.sh, which `make run` and `make test` start with: it finds a Python 3.12 or
newer, or says clearly that there is none; run again, it does nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("dirname", "tr", "cat", "sha256sum", "cut", "basename", "rm", "touch", "grep", "sort")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A checkout with the script, the pinned version and a requirements file with nothing to
    install, and a bin directory holding only the tools the script uses: no Python at all."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/bootstrap.sh", tmp_path / "scripts/bootstrap.sh")
    shutil.copy(ROOT / ".python-version", tmp_path / ".python-version")
    (tmp_path / "requirements.txt").write_text("# nothing to install\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return tmp_path


def bootstrap(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", "scripts/bootstrap.sh", "requirements.txt"],
        cwd=project,
        env={"PATH": str(project / "bin"), "HOME": str(project), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def fake_python(project: Path, name: str, version: str) -> None:
    """This Python, running the code it is given (`-c CODE`) as Python `version`."""
    info = (*map(int, version.split(".")), 0, "final", 0)[:5]
    pretend = f"import sys; sys.version_info = {info!r}; exec(compile(sys.argv[1], '-c', 'exec'))"
    script = project / "bin" / name
    script.write_text(f'#!/bin/sh\n[ "$1" = -c ] || exit 1\nshift\nexec {sys.executable} -c "{pretend}" "$@"\n')
    script.chmod(0o755)


def test_the_fake_interpreter_answers_as_the_version_it_plays(project):
    fake_python(project, "python3", "3.11")
    fake_python(project, "python3.12", "3.12")
    check = "import sys; sys.exit(sys.version_info < (3, 12))"
    assert subprocess.run([project / "bin/python3", "-c", check], check=False).returncode == 1
    assert subprocess.run([project / "bin/python3.12", "-c", check], check=False).returncode == 0


@pytest.mark.parametrize("found", [[], ["python3"], ["python3", "python3.11"]])
def test_without_python_312_setup_stops_with_a_clear_message(project, found):
    for name in found:
        fake_python(project, name, "3.11")
    result = bootstrap(project)
    assert result.returncode == 1
    assert "needs Python 3.12 or newer" in result.stderr
    assert "PYTHON=/path/to/python3.12 make run" in result.stderr
    assert not (project / ".venv").exists()


def test_an_old_interpreter_named_by_python_is_not_taken(project):
    fake_python(project, "python3", "3.11")
    result = bootstrap(project, PYTHON=str(project / "bin/python3"))
    assert result.returncode == 1 and "needs Python 3.12 or newer" in result.stderr


def test_setup_with_python_312_makes_the_venv_once(project):
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    (project / "bin/python3.12").symlink_to(python)
    first = bootstrap(project)
    assert first.returncode == 0, first.stderr
    assert "Creating .venv" in first.stdout and "Installing requirements.txt" in first.stdout
    started = time.monotonic()
    again = bootstrap(project)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "" and time.monotonic() - started < 5
