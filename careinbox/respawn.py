"""Run a command, and run it again whenever it exits, with a backoff; log every exit.

``make run`` uses it in ``Procfile.dev`` for the demo helpers (the X emulator, the mention
generator, the banner): honcho stops the whole stack as soon as one process exits, and a demo
helper that fails must not take the web app, the worker and beat down with it.

    python -m careinbox.respawn --name x_sandbox -- python manage.py run_x_sandbox --port 8765

* Each exit is logged with its code (or signal) and how long the command ran; the next start
  waits ``--min-delay`` seconds, doubling after each short-lived run up to ``--max-delay``,
  and back to the minimum once a run lasted ``--stable-after`` seconds.
* SIGTERM, SIGINT or SIGHUP (honcho's stop, Ctrl-C) stop it for good: the signal is passed
  to the command once, the command gets ``--stop-timeout`` seconds to finish (honcho kills
  after 5), then its process group is killed, and nothing is restarted.
* The command runs in a process group of its own, so a signal sent to this wrapper's group
  reaches the command once (forwarded), not twice; and on Linux it is told to stop should
  this wrapper die without a chance to pass anything on (SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def log(name: str, message: str) -> None:
    """One line on stderr; honcho prefixes it with the process name and a time."""
    print(f"{time.strftime('%H:%M:%S')} respawn[{name}]: {message}", file=sys.stderr, flush=True)


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


def next_delay(
    previous: float, ran_for: float, *, minimum: float, maximum: float, stable: float
) -> float:
    """Back to ``minimum`` after a run that lasted; otherwise twice the last wait, capped."""
    if ran_for >= stable or previous <= 0:
        return minimum
    return min(maximum, previous * 2)


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux for SIGTERM when the wrapper dies (None elsewhere).

    libc is looked up here, in the wrapper: ``find_library`` may run ``ldconfig``, which has
    no place between fork and exec.
    """
    libc_name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or not libc_name:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    wrapper = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != wrapper:  # the wrapper died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class Respawner:
    name: str
    command: Sequence[str]
    min_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    stop_timeout: float = 4.0

    def __post_init__(self) -> None:
        self.stopping: signal.Signals | None = None
        self.child: subprocess.Popen[bytes] | None = None

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: the wait loop passes it on, so a signal arriving while the child is
        # being started is never lost.
        if self.stopping is None:
            self.stopping = signal.Signals(signum)

    def _signal_child(self, signum: int) -> None:
        assert self.child is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, signum)  # its group: the command and what it started

    def run(self) -> int:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_stop_signal)
        preexec = _parent_death_signal()
        delay = 0.0
        restarts = 0
        while self.stopping is None:
            started = time.monotonic()
            try:
                self.child = subprocess.Popen(  # noqa: S603 - the command line we were given
                    list(self.command), start_new_session=True, preexec_fn=preexec
                )
            except OSError as exc:
                log(self.name, f"cannot start {self.command[0]!r}: {exc}")
                returncode = 127
            else:
                log(self.name, f"started pid {self.child.pid}: {' '.join(self.command)}")
                returncode = self._wait_for_child()
            ran_for = time.monotonic() - started
            if self.stopping is not None:
                log(
                    self.name,
                    f"stopped ({self.stopping.name}); the command ended with "
                    f"{describe(returncode)}",
                )
                return 0
            delay = next_delay(
                delay,
                ran_for,
                minimum=self.min_delay,
                maximum=self.max_delay,
                stable=self.stable_after,
            )
            restarts += 1
            log(
                self.name,
                f"exited with {describe(returncode)} after {ran_for:.1f} s; "
                f"restart #{restarts} in {delay:g} s",
            )
            deadline = time.monotonic() + delay
            while self.stopping is None and time.monotonic() < deadline:
                time.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
        log(self.name, f"stopped ({self.stopping.name})")
        return 0

    def _wait_for_child(self) -> int:
        assert self.child is not None
        forwarded_at: float | None = None
        while True:
            try:
                return self.child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping is None:
                continue
            if forwarded_at is None:
                self._signal_child(self.stopping)
                forwarded_at = time.monotonic()
            elif time.monotonic() - forwarded_at > self.stop_timeout:
                log(self.name, f"pid {self.child.pid} still running; killing its group")
                self._signal_child(signal.SIGKILL)
                return self.child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m careinbox.respawn",
        description="Run COMMAND; run it again whenever it exits (with a backoff) until stopped.",
    )
    parser.add_argument("--name", default=None, help="Shown in the log (default: the command).")
    parser.add_argument("--min-delay", type=float, default=1.0)
    parser.add_argument("--max-delay", type=float, default=30.0)
    parser.add_argument("--stable-after", type=float, default=60.0)
    parser.add_argument("--stop-timeout", type=float, default=4.0)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give the command to run after --")
    return Respawner(
        name=options.name or os.path.basename(command[0]),
        command=command,
        min_delay=options.min_delay,
        max_delay=options.max_delay,
        stable_after=options.stable_after,
        stop_timeout=options.stop_timeout,
    ).run()


if __name__ == "__main__":
    sys.exit(main())
