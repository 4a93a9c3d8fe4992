"""Development settings that keep `make run` usable: one secret key for every process and every
restart (so nobody is signed out), made once under VAR_DIR; production still requires its own;
`sandbox_post` works from a second terminal without weakening anything else."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from django.apps import apps

ROOT = Path(__file__).resolve().parents[1]
PRINT_KEY = ["manage.py", "shell", "--verbosity", "0", "-c"]
PRINT_KEY += ["from django.conf import settings; print(settings.SECRET_KEY)"]


def fresh_shell(var_dir: Path, **extra: str) -> dict[str, str]:
    """A terminal's environment: nothing from pytest or `make run`, VAR_DIR our own."""
    unset = {"PYTEST_VERSION", "CAREINBOX_TESTING", "DEBUG", "SECRET_KEY", "DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {**env, "CAREINBOX_VAR_DIR": str(var_dir), **extra}


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_dev_secret_key_is_made_once_and_kept_across_runs(tmp_path: Path) -> None:
    """Web, worker and beat start at once on a fresh var/: they must agree on one key, and the
    next `make run` must find the same one."""
    env = fresh_shell(tmp_path, DEBUG="1")
    together = [start(PRINT_KEY, env) for _ in range(4)]
    keys = []
    for process in together:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        keys.append(out.strip())
    later = run(PRINT_KEY, env)
    assert later.returncode == 0, later.stderr
    keys.append(later.stdout.strip())
    assert len(set(keys)) == 1
    key_file = tmp_path / "dev-secret-key"
    assert key_file.read_text().strip() == keys[0]
    assert len(keys[0]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".dev-secret")) == []


def test_production_still_requires_secret_key_with_a_dev_key_in_var(tmp_path: Path) -> None:
    made = run(PRINT_KEY, fresh_shell(tmp_path, DEBUG="1"))
    assert made.returncode == 0, made.stderr
    for debug in ({}, {"DEBUG": "0"}):
        refused = run(["manage.py", "check"], fresh_shell(tmp_path, **debug))
        assert refused.returncode != 0
        assert "SECRET_KEY must be set when DEBUG is off" in refused.stderr
    production = fresh_shell(
        tmp_path, SECRET_KEY="p" * 60, CREDENTIALS_KEYS=Fernet.generate_key().decode()
    )
    explicit = run(PRINT_KEY, production)
    assert explicit.stdout.strip() == "p" * 60, explicit.stderr


def test_only_sandbox_post_defaults_to_development(tmp_path: Path) -> None:
    """The README's `manage.py sandbox_post` needs no DEBUG=1; DEBUG=0 still turns it off."""
    help_text = run(["manage.py", "sandbox_post", "--help"], fresh_shell(tmp_path))
    assert help_text.returncode == 0, help_text.stderr
    assert "--sandbox-url" in help_text.stdout
    refused = run(["manage.py", "sandbox_post", "--help"], fresh_shell(tmp_path, DEBUG="0"))
    assert "SECRET_KEY must be set when DEBUG is off" in refused.stderr
    for other in (["sandbox_demo", "--help"], ["run_x_sandbox", "--help"], ["migrate", "--help"]):
        result = run(["manage.py", *other], fresh_shell(tmp_path))
        assert "SECRET_KEY must be set when DEBUG is off" in result.stderr, other


SIGN_IN = """
from django.test import Client
client = Client(HTTP_HOST="localhost")
response = client.post("/login/", {"username": "agent", "password": "agent-demo-pass"})
assert response.status_code == 302, response.status_code
print(client.cookies["sessionid"].value)
"""
STILL_SIGNED_IN = """
import os
from django.test import Client
client = Client(HTTP_HOST="localhost")
client.cookies["sessionid"] = os.environ["SESSION_TO_CHECK"]
response = client.get("/")
print(response.status_code, response.get("Location", ""))
"""


def test_a_signed_in_agent_stays_signed_in_across_a_restart(tmp_path: Path) -> None:
    """What `make run` does at each start (migrate, seed_demo, new processes) keeps sessions."""
    env = fresh_shell(tmp_path, DEBUG="1")
    for step in (["migrate", "--noinput"], ["seed_demo"]):
        done = run(["manage.py", *step], env)
        assert done.returncode == 0, done.stderr
    signed_in = run(["manage.py", "shell", "--verbosity", "0", "-c", SIGN_IN], env)
    assert signed_in.returncode == 0, signed_in.stderr
    session = signed_in.stdout.strip()
    restarted = run(["manage.py", "seed_demo"], env)  # the next `make run`
    assert restarted.returncode == 0, restarted.stderr
    check = ["manage.py", "shell", "--verbosity", "0", "-c", STILL_SIGNED_IN]
    inbox = run(check, {**env, "SESSION_TO_CHECK": session})
    assert inbox.returncode == 0, inbox.stderr
    assert inbox.stdout.split() == ["200"], inbox.stdout


def test_the_embedded_default_starts_without_system_check_warnings(tmp_path: Path) -> None:
    """Found reading `make run`'s log on a fresh clone: its first lines were "System check
    identified some issues" and four models.W040 warnings (SQLite ignores the covering
    indexes' INCLUDE columns, which serve PostgreSQL's index-only scans: nothing to act on).
    The embedded default silences that one check, and only on SQLite."""
    checked = run(
        ["manage.py", "check", "--database", "default"],
        fresh_shell(tmp_path, DEBUG="1"),
    )
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "W040" not in output
    # One W040 per model with a covering index (4 before the dashboard's counts added two).
    covering = sum(
        1 for model in apps.get_models() if any(index.include for index in model._meta.indexes)
    )
    assert covering >= 6
    assert f"System check identified no issues ({covering} silenced)." in output
