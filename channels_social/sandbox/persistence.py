"""What every sandbox emulator's store shares: its world kept in a JSON state file, saved a
moment after each change (so a burst of posts is one write), atomically, and on shutdown."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class PersistentStore(ABC):
    """Mixed into an emulator's store. The store holds ``self._lock`` (an RLock) around every
    change, calls ``self._changed()`` under it after each, and implements ``snapshot`` (what to
    save) and ``_load`` (read a saved file back; an unreadable one is the store's to set aside).
    """

    #: For log lines: "X sandbox", "Facebook sandbox".
    label = "sandbox"
    _lock: threading.RLock

    def _init_persistence(self, state_path: Path | str | None, save_delay: float) -> None:
        self.state_path = Path(state_path) if state_path is not None else None
        self.save_delay = save_delay
        self._save_lock = threading.Lock()
        self._dirty = False
        self._timer: threading.Timer | None = None
        if self.state_path is not None:
            self._load(self.state_path)
            atexit.register(self.flush)

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The persistent part of the world as JSON-ready data."""

    @abstractmethod
    def _load(self, path: Path) -> None:
        """Read the world back from ``path`` (which may not exist yet)."""

    def _changed(self) -> None:
        """Called under the lock after every change: schedule a save when there is a file."""
        if self.state_path is None:
            return
        self._dirty = True
        if self._timer is None:
            self._timer = threading.Timer(self.save_delay, self.flush)
            self._timer.daemon = True
            self._timer.start()

    def flush(self) -> None:
        """Write pending changes to the state file now (no-op in memory or when clean)."""
        if self.state_path is None:
            return
        with self._save_lock:
            with self._lock:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                if not self._dirty:
                    return
                data = self.snapshot()
                self._dirty = False
            try:
                write_atomically(self.state_path, json.dumps(data, separators=(",", ":")))
            except OSError as exc:
                with self._lock:
                    self._dirty = True  # try again on the next change or flush
                logger.warning(
                    "%s: cannot save its state to %s: %s", self.label, self.state_path, exc
                )

    def close(self) -> None:
        """Flush and stop saving in the background; call on a clean shutdown."""
        self.flush()
        if self.state_path is not None:
            atexit.unregister(self.flush)


def write_atomically(path: Path, text: str) -> None:
    """Write a temp file next to ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as temp:
            temp.write(text)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
