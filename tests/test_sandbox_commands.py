"""sandbox_post and sandbox_demo drive the X emulator the way a person at a terminal would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from channels_social.management.commands import run_x_sandbox
from channels_social.sandbox.x.app import XSandboxApp
from channels_social.sandbox.x.control import SandboxControl
from tests.factories import SocialAccountFactory
from tests.sandbox_fixtures import XSandbox


@pytest.fixture
def sandbox(x_sandbox_clean: XSandbox) -> XSandbox:
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return x_sandbox_clean


def sandbox_post(sandbox_url: str, **options: object) -> str:
    out = StringIO()
    arguments = {
        "to": "AcmeCare",
        "author_id": "2001",
        "author_username": "dana_k",
        "followers": 321,
        "text": "Where is my order #A123456?",
        "sandbox_url": sandbox_url,
        **options,
    }
    call_command("sandbox_post", stdout=out, **arguments)
    return out.getvalue()


def test_sandbox_post_prints_only_the_id(sandbox: XSandbox) -> None:
    output = sandbox_post(sandbox.url, created_at="2025-02-03T08:30:00Z")
    post_id = output.strip()
    assert post_id.isdigit()
    assert output == post_id + "\n"
    stored = sandbox.control.get_tweet(post_id)
    assert stored["text"] == "@AcmeCare Where is my order #A123456?"
    assert stored["author_id"] == "2001"
    assert stored["created_at"] == "2025-02-03T08:30:00.000Z"
    reply_id = sandbox_post(sandbox.url, text="hello??", in_reply_to=post_id).strip()
    assert sandbox.control.get_tweet(reply_id)["in_reply_to_tweet_id"] == post_id


def test_sandbox_post_unknown_handle(sandbox: XSandbox) -> None:
    with pytest.raises(CommandError, match="@NoSuchBrand is not a user in the X sandbox"):
        sandbox_post(sandbox.url, to="NoSuchBrand")


def test_sandbox_post_bad_input(sandbox: XSandbox) -> None:
    with pytest.raises(CommandError, match="not an ISO 8601"):
        sandbox_post(sandbox.url, created_at="last tuesday")
    with pytest.raises(CommandError, match="author-id"):
        sandbox_post(sandbox.url, author_id="dana")
    with pytest.raises(CommandError, match=r"No post with id .12345. to reply to"):
        sandbox_post(sandbox.url, in_reply_to="12345")


def test_sandbox_post_when_the_emulator_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CommandError, match="not reachable"):
        sandbox_post(f"http://127.0.0.1:{port}")


@pytest.mark.django_db
def test_sandbox_demo_registers_accounts_and_posts(x_sandbox_clean: XSandbox, settings) -> None:
    settings.X_SANDBOX_URL = x_sandbox_clean.url
    account = SocialAccountFactory(
        username="AcmeCare", external_id="1000", api_base_url=x_sandbox_clean.url
    )
    SocialAccountFactory(username="Elsewhere", api_base_url="")
    out = StringIO()
    call_command("sandbox_demo", count=4, burst=4, seed=7, wait=2, stdout=out)
    brand = x_sandbox_clean.control.user_by_username("AcmeCare")
    assert brand["name"] == account.brand.name
    assert brand["followers_count"] == 250_000
    assert x_sandbox_clean.control.health()["tweets"] == 4
    assert out.getvalue().count(" -> ") == 4
    assert "Stopped after 4 posts." in out.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "VAR_DIR/x_sandbox_state.json"),
        ({"state_file": "elsewhere.json"}, "elsewhere.json"),
        ({"no_state": True}, None),
    ],
)
def test_run_x_sandbox_state_file_options(
    tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch, options: dict, expected: str | None
) -> None:
    settings.VAR_DIR = tmp_path
    served: list[XSandboxApp] = []

    def fake_serve_forever(host: str, port: int, app: XSandboxApp) -> None:
        served.append(app)
        app.store.upsert_user(id="1", username="a")
        app.close()

    monkeypatch.setattr(run_x_sandbox, "serve_forever", fake_serve_forever)
    if "state_file" in options:
        options = {"state_file": tmp_path / options["state_file"]}
    out = StringIO()
    call_command("run_x_sandbox", port=0, stdout=out, **options)
    (app,) = served
    if expected is None:
        assert app.store.state_path is None
        assert "in memory only" in out.getvalue()
        assert list(tmp_path.iterdir()) == []
    else:
        path = tmp_path / expected.removeprefix("VAR_DIR/")
        assert app.store.state_path == path
        assert f"state in {path}" in out.getvalue()
        assert json.loads(path.read_text())["users"][0]["username"] == "a"


def test_run_x_sandbox_saves_its_state_on_sigterm(tmp_path: Path) -> None:
    """honcho stops `make run` with SIGTERM; the next run must find yesterday's posts."""
    state = tmp_path / "x_state.json"
    port = free_port()
    env = {**os.environ, "DEBUG": "1", "CAREINBOX_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "manage.py", "run_x_sandbox", "--port", str(port)]
    command += ["--state-file", str(state)]
    root = Path(__file__).resolve().parents[1]

    def run_once() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    control = SandboxControl(f"http://127.0.0.1:{port}")
    first = run_once()
    try:
        control.wait_until_up(20)
        control.upsert_user(id="1000", username="AcmeCare")
        post = control.post_mention("AcmeCare", "2001", "dana", 12, "late order")
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(10)
    assert first.returncode == 0, first.stdout.read() if first.stdout else ""
    second = run_once()
    try:
        control.wait_until_up(20)
        assert control.get_tweet(post["id"])["text"] == "@AcmeCare late order"
        assert control.health()["users"] == 2
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    output = second.stdout.read().decode() if second.stdout else ""
    assert f"state in {state}; 2 users, 1 posts" in output


def second_terminal_env(var_dir: Path) -> dict[str, str]:
    """A fresh shell in the checkout: nothing from `make run` (no DEBUG, no X_SANDBOX_URL)."""
    unset = {"PYTEST_VERSION", "CAREINBOX_TESTING", "DEBUG", "X_SANDBOX_URL", "SECRET_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in unset | {"DATABASE_URL"}}
    return {**env, "CAREINBOX_VAR_DIR": str(var_dir)}


def test_sandbox_post_in_a_second_terminal_finds_the_emulator_on_any_port(
    tmp_path: Path,
) -> None:
    """The README's command as written (no DEBUG, no --sandbox-url, no X_SANDBOX_URL) reaches
    an emulator started on a port other than the default (as `make run SANDBOX_PORT=...`)."""
    var_dir = tmp_path / "var"
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    env = second_terminal_env(var_dir)
    emulator = subprocess.Popen(
        [sys.executable, "manage.py", "run_x_sandbox", "--port", str(port), "--no-state"],
        cwd=root,
        env={**env, "DEBUG": "1"},  # as make run starts it
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    record = var_dir / run_x_sandbox.ADDRESS_FILE
    post = [sys.executable, "manage.py", "sandbox_post", "--to", "AcmeCare", "--author-id", "42"]
    post += ["--author-username", "dana", "--followers", "1200", "--text", "My parcel is late"]
    try:
        control = SandboxControl(f"http://127.0.0.1:{port}")
        control.wait_until_up(20)
        assert json.loads(record.read_text())["url"] == f"http://127.0.0.1:{port}"
        control.upsert_user(id="1000", username="AcmeCare")
        posted = subprocess.run(
            post, cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert posted.returncode == 0, posted.stderr
        assert control.get_tweet(posted.stdout.strip())["text"] == "@AcmeCare My parcel is late"
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(10)
    assert not record.exists()  # stopped: the record goes with it
    refused = subprocess.run(
        post, cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1
    assert "not reachable" in refused.stderr
    assert "no emulator recorded its address" in refused.stderr


def test_a_record_left_by_a_killed_emulator_is_ignored(tmp_path: Path, settings) -> None:
    settings.VAR_DIR = tmp_path
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / run_x_sandbox.ADDRESS_FILE).write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid})
    )
    assert run_x_sandbox.recorded_url() is None
    (tmp_path / run_x_sandbox.ADDRESS_FILE).write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid()})
    )
    assert run_x_sandbox.recorded_url() == "http://127.0.0.1:9"
