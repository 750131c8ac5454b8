"""The example project as a user meets it: its manage.py, and the README's demo command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.local_api import free_port

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "example_project" / "manage.py"


def example_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell on this machine, minus this test run's Django settings,
    with the example project's database in ``tmp_path`` so a developer's is untouched."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'example.sqlite3'}"
    env.update(extra)
    return env


def manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=ROOT,
        env=example_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_example_project_passes_system_checks(tmp_path):
    result = manage(tmp_path, "check", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_example_app_migrations_match_its_models(tmp_path):
    result = manage(tmp_path, "makemigrations", "helpdesk", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.demo
@pytest.mark.skipif(
    not (ROOT / "scripts" / "demo").exists(), reason="scripts/demo is not in the sdist"
)
def test_demo_check_creates_a_ticket_whose_thread_reaches_the_sandbox(tmp_path):
    env = example_env(
        tmp_path,
        DEMO_PORT=str(free_port()),
        SANDBOX_PORT=str(free_port()),
        SANDBOX_DB=str(tmp_path / "sandbox.sqlite3"),
        SANDBOX_CREDENTIALS=str(tmp_path / "sandbox.json"),
        SANDBOX_LOG=str(tmp_path / "sandbox.log"),
    )
    # Its own session, so a timeout can stop the servers the script started, too.
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo"), "--check"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"scripts/demo --check took over 120 s:\n{output}")

    assert process.returncode == 0, output
    assert "thread helpdesk.ticket:1 is in the sandbox inbox" in output
    assert "the thread now shows {'value': 'Pending', 'color': 'yellow'}" in output
    assert "reply arrived as a discussion by admin" in output
    assert output.rstrip().endswith("stopping both servers"), output
    # The demo's own files were not used: everything went to tmp_path.
    assert (tmp_path / "example.sqlite3").exists()
    assert (tmp_path / "sandbox.sqlite3").exists()
