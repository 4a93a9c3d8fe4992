"""manage.py sandbox_demo against the real emulator: it never collides with itself (within a run,
across restarts of the emulator's saved world, with users an older generator left behind),
and it survives the emulator going away and the database not being ready."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from channels_social.management.commands import sandbox_demo
from channels_social.models import SocialAccount
from channels_social.sandbox.x.app import create_app
from channels_social.sandbox.x.control import SandboxControl
from channels_social.sandbox.x.server import RunningServer, start_in_thread
from channels_social.sandbox.x.store import ID_RE
from tests.factories import SocialAccountFactory

FIRST_NAMES = sandbox_demo.FIRST_NAMES

DEMO_LOGGER = "channels_social.management.commands.sandbox_demo"


@pytest.fixture
def saved_world() -> Iterator[list[RunningServer]]:
    """Emulators started on one state file, one after the other; all stopped at the end."""
    servers: list[RunningServer] = []
    yield servers
    for server in servers:
        server.stop()


def start_emulator(servers: list[RunningServer], state: Path | None, port: int = 0) -> str:
    server = start_in_thread(create_app(state_path=state), port=port)
    servers.append(server)
    SandboxControl(server.url).wait_until_up(5)
    return server.url


def point_account_at(url: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.X_SANDBOX_URL = url
    SocialAccountFactory(username="AcmeCare", external_id="1000", api_base_url=url)


def run_demo(**options: object) -> str:
    out = StringIO()
    call_command("sandbox_demo", stdout=out, **{"wait": 2, "interval": 0.01, "burst": 0, **options})
    return out.getvalue()


def demo_in_thread(output: list[str], **options: object) -> threading.Thread:
    """Run the command in a thread (as its own process would, with its own DB connection)."""

    def run() -> None:
        try:
            output.append(run_demo(**options))
        finally:
            connections.close_all()  # this thread's connection; else the test DB stays in use

    thread = threading.Thread(target=run, name="sandbox-demo")
    thread.start()
    return thread


def test_customer_ids_are_stable_per_handle_and_valid_x_ids() -> None:
    customer_id = sandbox_demo.customer_id
    assert customer_id("the_samuel") == customer_id("The_Samuel")  # X handles ignore case
    ids = {customer_id(f"the_{name.lower()}") for name in FIRST_NAMES}
    assert len(ids) == len(FIRST_NAMES)
    assert all(ID_RE.match(value) for value in ids)


@pytest.mark.django_db
def test_never_collides_with_itself_across_restarts_and_with_old_users(
    tmp_path: Path, saved_world: list[RunningServer], settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Three generator runs (seeds 1, 2, then 1 again: the same customers once more), each on a
    restarted emulator with the saved world, which already holds every ``the_<name>`` handle
    under a random id as the old generator left them (``@the_samuel already belongs to user
    5926...``)."""
    state = tmp_path / "x_sandbox_state.json"
    url = start_emulator(saved_world, state)
    control = SandboxControl(url)
    for number, name in enumerate(FIRST_NAMES):
        control.upsert_user(id=str(5_926_000_000 + number), username=f"the_{name.lower()}")
    saved_world[-1].stop()
    saved_world.pop()
    caplog.set_level(logging.WARNING, logger=DEMO_LOGGER)

    point_account_at(url, settings)
    outputs = []
    for seed in (1, 2, 1):
        url = start_emulator(saved_world, state)  # a restart: the saved world, a new port
        settings.X_SANDBOX_URL = url
        SocialAccount.objects.update(api_base_url=url)
        outputs.append(run_demo(count=30, seed=seed))
        saved_world[-1].stop()
        saved_world.pop()

    assert [output.count(" -> ") for output in outputs] == [30, 30, 30]
    assert caplog.records == []  # not one refused post
    final = start_emulator(saved_world, state)
    assert SandboxControl(final).health()["tweets"] == 90
    # Old users were adopted, not duplicated: one user per handle, each old one with its id.
    store = saved_world[-1].app.store
    usernames = [user.username.lower() for user in store.users.values()]
    assert len(usernames) == len(set(usernames))
    old_users = [store.user_by_username(f"the_{name.lower()}") for name in FIRST_NAMES]
    assert [user.id if user else None for user in old_users] == [
        str(5_926_000_000 + number) for number in range(len(FIRST_NAMES))
    ]
    assert any(user.tweet_count for user in old_users if user)  # some posted as themselves


@pytest.mark.django_db(transaction=True)
def test_survives_the_emulator_going_away_and_coming_back_empty(
    saved_world: list[RunningServer], settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The emulator stops mid-stream and comes back on the same port with nothing in it (no
    state file): the generator logs the failures, registers the brand again and goes on."""
    url = start_emulator(saved_world, None)
    port = saved_world[-1].server.port
    point_account_at(url, settings)
    caplog.set_level(logging.WARNING, logger=DEMO_LOGGER)
    output: list[str] = []
    runner = demo_in_thread(output, count=12, interval=0.2)
    try:
        deadline = time.monotonic() + 20
        while len(saved_world[-1].app.store.tweets) < 3:
            assert time.monotonic() < deadline, "the generator did not start posting"
            time.sleep(0.05)
        saved_world[-1].stop()
        while not any("failed" in record.getMessage() for record in caplog.records):
            assert time.monotonic() < deadline + 20, "the failure was not logged"
            time.sleep(0.05)
        start_emulator(saved_world, None, port=port)  # back, empty
    finally:
        runner.join(90)
    assert not runner.is_alive()
    (text,) = output
    assert "Stopped after 12 posts." in text
    assert "SandboxUnreachable" in caplog.text
    store = saved_world[-1].app.store
    assert store.user_by_username("AcmeCare") is not None  # registered again
    assert 1 <= len(store.tweets) <= 9  # the rest of the 12, after the outage


@pytest.mark.django_db(transaction=True)
def test_waits_for_an_account_instead_of_exiting(
    saved_world: list[RunningServer], settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Started before the seed (or with no account pointing at the sandbox), it logs why, waits,
    and starts posting once an account appears."""
    url = start_emulator(saved_world, None)
    settings.X_SANDBOX_URL = url
    caplog.set_level(logging.WARNING, logger=DEMO_LOGGER)
    output: list[str] = []
    runner = demo_in_thread(output, count=2)
    try:
        deadline = time.monotonic() + 20
        while "no X account points at the sandbox" not in caplog.text:
            assert time.monotonic() < deadline, "the missing account was not logged"
            time.sleep(0.05)
        SocialAccountFactory(username="AcmeCare", external_id="1000", api_base_url=url)
    finally:
        runner.join(60)
    assert not runner.is_alive()
    assert "Stopped after 2 posts." in output[0]
    assert len(saved_world[-1].app.store.tweets) == 2
