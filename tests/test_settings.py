"""The settings module fails loudly on bad values, and production settings pass check --deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from careinbox import settings as app_settings

ROOT = Path(__file__).resolve().parents[1]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTEST_VERSION", "CAREINBOX_TESTING", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("helper", "value", "message"),
    [
        (lambda: app_settings.env_bool("X_FLAG"), "maybe", "is not a boolean"),
        (lambda: app_settings.env_int("X_NUM", 3), "three", "is not a whole number"),
        (lambda: app_settings.env_int("X_NUM", 3, minimum=2), "1", "must be at least 2"),
        (
            lambda: app_settings.env_url("X_URL", "", schemes={"redis"}),
            "http://x",
            "has scheme 'http'",
        ),
    ],
)
def test_typed_helpers_fail_loudly(
    monkeypatch: pytest.MonkeyPatch, helper, value: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    for name in ("X_FLAG", "X_NUM", "X_URL"):
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_typed_helpers_read_good_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "yes")
    monkeypatch.setenv("X_NUM", "42")
    monkeypatch.setenv("X_LIST", "a.example, b.example,")
    assert app_settings.env_bool("X_FLAG") is True
    assert app_settings.env_int("X_NUM", 1) == 42
    assert app_settings.env_list("X_LIST", []) == ["a.example", "b.example"]


def test_production_without_secret_key_refuses_to_start() -> None:
    result = _manage(
        "check", DEBUG="0", SECRET_KEY="", CREDENTIALS_KEYS=Fernet.generate_key().decode()
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_without_credentials_key_refuses_to_start() -> None:
    result = _manage("check", DEBUG="0", SECRET_KEY="s" * 60, CREDENTIALS_KEYS="")
    assert result.returncode != 0
    assert "CREDENTIALS_KEYS must be set" in result.stderr


def test_bad_database_url_is_named() -> None:
    result = _manage("check", DEBUG="1", DATABASE_URL="mysql://x@y/z")
    assert result.returncode != 0 and "DATABASE_URL" in result.stderr


def test_production_settings_pass_check_deploy() -> None:
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=Fernet.generate_key().decode() + Fernet.generate_key().decode(),
        CREDENTIALS_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="care.example.com",
    )
    assert result.returncode == 0, result.stderr + result.stdout
