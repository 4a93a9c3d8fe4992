"""careinbox/respawn.py with real processes: restarts with a backoff and logs each exit, passes a
stop signal on exactly once and restarts nothing after it, kills what ignores it, and leaves no
orphan when it is killed itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from careinbox.respawn import next_delay

ROOT = Path(__file__).resolve().parents[1]


def wrapper(*options: str, command: list[str]) -> subprocess.Popen[str]:
    """The wrapper in a session of its own, as honcho starts each Procfile line."""
    return subprocess.Popen(
        [sys.executable, "-m", "careinbox.respawn", *options, "--", *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; its parent just has not reaped it yet.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def python(script: str) -> list[str]:
    return [sys.executable, "-c", script]


@pytest.fixture
def stop_wrappers() -> Iterator[list[subprocess.Popen[str]]]:
    """Whatever a failed test leaves running is killed, group and all."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def test_backoff_doubles_after_short_runs_and_resets_after_a_stable_one() -> None:
    delays = [0.0]
    for _ in range(5):
        delays.append(next_delay(delays[-1], 0.5, minimum=1, maximum=8, stable=60))
    assert delays[1:] == [1, 2, 4, 8, 8]
    assert next_delay(8, 61, minimum=1, maximum=8, stable=60) == 1


def test_a_failing_command_is_restarted_with_a_backoff_and_every_exit_logged(
    tmp_path: Path, stop_wrappers: list[subprocess.Popen[str]]
) -> None:
    starts = tmp_path / "starts"
    script = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    process = wrapper(
        "--name", "flaky", "--min-delay", "0.1", "--max-delay", "0.4", command=python(script)
    )
    stop_wrappers.append(process)
    wait_until(lambda: starts.exists() and len(starts.read_text()) >= 5, "five starts")
    os.killpg(process.pid, signal.SIGTERM)
    _, log = process.communicate(timeout=20)
    assert process.returncode == 0
    exits = [line for line in log.splitlines() if "exited with code 3" in line]
    assert len(exits) >= 4
    assert [line.rsplit(" in ", 1)[1] for line in exits[:4]] == ["0.1 s", "0.2 s", "0.4 s", "0.4 s"]
    assert all("respawn[flaky]:" in line for line in exits)
    assert "stopped (SIGTERM)" in log


def test_a_stop_signal_reaches_the_command_once_and_nothing_restarts(
    tmp_path: Path, stop_wrappers: list[subprocess.Popen[str]]
) -> None:
    """honcho stops a Procfile line by signalling its whole process group."""
    got = tmp_path / "got"
    pid_file = tmp_path / "pid"
    script = f"""
import os, signal, time
open({str(pid_file)!r}, "w").write(str(os.getpid()))
def on_term(signum, frame):
    open({str(got)!r}, "a").write("TERM\\n")
    time.sleep(0.5)  # a clean shutdown takes a moment; a second TERM would land in here
    raise SystemExit(0)
signal.signal(signal.SIGTERM, on_term)
while True:
    time.sleep(0.1)
"""
    process = wrapper("--name", "calm", "--min-delay", "0.1", command=python(script))
    stop_wrappers.append(process)
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the command to start")
    child = int(pid_file.read_text())
    os.killpg(process.pid, signal.SIGTERM)
    _, log = process.communicate(timeout=20)
    assert process.returncode == 0
    assert got.read_text() == "TERM\n"
    assert not alive(child)
    assert "exited with" not in log and "restart #" not in log
    assert "stopped (SIGTERM); the command ended with code 0" in log


def test_a_command_that_ignores_the_stop_is_killed_after_the_timeout(
    tmp_path: Path, stop_wrappers: list[subprocess.Popen[str]]
) -> None:
    pid_file = tmp_path / "pid"
    script = f"""
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open({str(pid_file)!r}, "w").write(str(os.getpid()))
time.sleep(600)
"""
    process = wrapper("--stop-timeout", "0.5", command=python(script))
    stop_wrappers.append(process)
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the command to start")
    child = int(pid_file.read_text())
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    _, log = process.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert "still running; killing its group" in log
    assert "ended with signal SIGKILL" in log
    assert not alive(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_command_does_not_outlive_a_killed_wrapper(
    tmp_path: Path, stop_wrappers: list[subprocess.Popen[str]]
) -> None:
    pid_file = tmp_path / "pid"
    script = f"""
import os, time
open({str(pid_file)!r}, "w").write(str(os.getpid()))
time.sleep(600)
"""
    process = wrapper(command=python(script))
    stop_wrappers.append(process)
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the command to start")
    child = int(pid_file.read_text())
    process.kill()  # SIGKILL: no chance to pass anything on
    process.wait(5)
    try:
        wait_until(lambda: not alive(child), "the orphan to stop", timeout=10)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
