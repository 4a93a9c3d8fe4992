"""The embedded Celery broker: kombu's filesystem transport, made safe for concurrent processes.

kombu's own ``filesystem://`` transport (5.x) creates a message file under its final name and
writes the body afterwards, so a consumer that lists the folder in between moves and reads an
empty file and the worker dies with ``JSONDecodeError('Expecting value: line 1 column 1')``
(kombu issue #1551, still open). Its exchange tables (``control_folder/<exchange>.exchange``)
have the same gap: the first binding opens the file with ``"wb"`` and only then locks and
writes, so a process publishing at that moment reads an empty table; with web, worker and beat
starting together on a fresh ``var/`` both happen.

This transport keeps kombu's folder layout and file names (so the two can share a folder) and
changes how files change hands:

* a message is written under a temporary name the consumers ignore (``.<uuid>.tmp``: kombu
  only takes names ending in ``.<queue>.msg``), then renamed with ``os.replace``, which is
  atomic: a consumer sees either no file or the whole message;
* a consumer claims a message by renaming it into ``processed_folder`` (same file system, so
  one rename: exactly one consumer wins; kombu's ``shutil.move`` into ``/tmp`` may copy);
* a message that still cannot be decoded (a file left by kombu's own transport, a disk that
  lost the data in a crash) is moved to ``<processed_folder>/corrupt/`` and logged, and the
  consumer goes on with the next one instead of taking the worker down;
* an exchange table is rewritten whole, under an exclusive lock on a separate lock file, into a
  temporary file renamed over the table, so readers never see it half-written.

Settings select it by name (``CELERY_BROKER_TRANSPORT = "careinbox.broker:Transport"``); kombu
itself is not patched. Linux and macOS only (``fcntl``), like the rest of the embedded default.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from typing import Any, cast

from kombu.transport import filesystem
from kombu.utils import json as kombu_json

logger = logging.getLogger(__name__)

# kombu's JSON (dates, UUIDs and bytes tagged), as its own transport writes it, so files from
# either transport read in the other; cast because kombu's decorators hide the signatures.
dumps = cast(Callable[[Any], str], kombu_json.dumps)
loads = cast(Callable[[str], Any], kombu_json.loads)

TEMP_SUFFIX = ".tmp"
CORRUPT_FOLDER = "corrupt"


def write_atomically(folder: str | os.PathLike[str], name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` so that no reader ever sees a partial file.

    The temporary name starts with a dot and ends in ``.tmp``, which no kombu queue name
    matches. No fsync: atomicity against concurrent readers needs only the rename, and a
    message lost to a power cut is acceptable for the development broker (a file emptied by
    one is quarantined by the consumer, see ``Channel._get``).
    """
    final = Path(folder) / name
    temp = Path(folder) / f".{uuid.uuid4().hex}{TEMP_SUFFIX}"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return final


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """An flock on a lock file of its own: the table it guards is replaced, never locked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class Channel(filesystem.Channel):
    """kombu's filesystem channel with atomic writes, rename claims and quarantined junk."""

    # kombu's filesystem signature (its fanout passes **kwargs), wider than the abstract one.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Wall-clock nanoseconds, zero-padded, keep kombu's lexical FIFO order across restarts
        # (kombu uses monotonic milliseconds, which restart at boot and vary in width).
        name = f"{time.time_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        try:
            write_atomically(self.data_folder_out, name, dumps(payload).encode("utf-8"))
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add {name!r} to {self.data_folder_out}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        claim_folder = Path(self.processed_folder)
        claim_folder.mkdir(parents=True, exist_ok=True)
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = claim_folder / name
            try:
                os.replace(Path(self.data_folder_in) / name, claimed)
            except FileNotFoundError:
                continue  # another consumer claimed it first
            try:
                raw = claimed.read_bytes()
            except OSError as exc:
                raise filesystem.ChannelError(f"Cannot read {claimed}") from exc
            try:
                message = loads(raw.decode("utf-8"))
                if not isinstance(message, dict):
                    raise ValueError(f"a message is a JSON object, not {type(message).__name__}")
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
                self._quarantine(claimed, exc)
                continue
            if not self.store_processed:
                with contextlib.suppress(FileNotFoundError):
                    claimed.unlink()
            return message
        raise Empty()

    def _quarantine(self, claimed: Path, error: Exception) -> None:
        corrupt = claimed.parent / CORRUPT_FOLDER
        corrupt.mkdir(exist_ok=True)
        os.replace(claimed, corrupt / claimed.name)
        logger.error(
            "Broker: message file %s is not a valid message (%s: %s, %d bytes); moved it to %s "
            "and went on with the next one.",
            claimed.name,
            type(error).__name__,
            error,
            (corrupt / claimed.name).stat().st_size,
            corrupt,
        )

    # Exchange tables

    def _read_table(self, file: Path) -> list[filesystem.exchange_queue_t]:
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot open {file}") from exc
        try:
            return [filesystem.exchange_queue_t(*row) for row in loads(raw.decode("utf-8"))]
        except (ValueError, TypeError) as exc:
            # Only kombu's own transport leaves a table half-written; the next binding
            # (every process binds its queues at start) writes it again whole.
            logger.warning("Broker: exchange table %s is unreadable (%s); ignoring it.", file, exc)
            return []

    def get_table(self, exchange: str) -> list[filesystem.exchange_queue_t]:
        return self._read_table(self._exchange_file(exchange))

    def _update_table(self, exchange: str, change: Any) -> None:
        file = self._exchange_file(exchange)
        try:
            with _exclusive_lock(file.with_name(f".{file.name}.lock")):
                table = self._read_table(file)
                updated = change(list(table))
                if updated != table:
                    write_atomically(file.parent, file.name, dumps(updated).encode("utf-8"))
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot update {file}") from exc

    def _queue_bind(
        self, exchange: str, routing_key: str, pattern: str, queue: str, *args: Any
    ) -> None:
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")

        def add(table: list[filesystem.exchange_queue_t]) -> list[filesystem.exchange_queue_t]:
            return table if binding in table else [binding, *table]

        self._update_table(exchange, add)

    def _delete(
        self,
        queue: str,
        exchange: str,
        routing_key: str,
        pattern: str,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # The virtual base purges the queue's messages; the filesystem parent in between would
        # also rewrite the table in place, the unsafe part this class replaces.
        super(filesystem.Channel, self)._delete(
            queue, exchange, routing_key, pattern, *args, **kwargs
        )
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")

        def remove(table: list[filesystem.exchange_queue_t]) -> list[filesystem.exchange_queue_t]:
            return [row for row in table if row != binding]

        self._update_table(exchange, remove)


class Transport(filesystem.Transport):
    """The filesystem transport with ``Channel`` above; options as kombu's own."""

    Channel = Channel


# --- Redis ----------------------------------------------------------------------------------
# kombu's Redis transport acknowledges a task by removing it from its unacked index. When the
# broker connection is lost (Redis restarted), the worker closes the old connection, which
# forgets its URL (``transport.client = None``), and reconnects; a pool child that finishes a
# task in between hands its acknowledgement to the old channel, whose ``_connparams`` then
# raises ``AttributeError`` (not a connection error), and the worker stops for good with
# "Unrecoverable error" (seen in bench/restarts.py; kombu issues #582 and #659 are the same
# race elsewhere in the transport). Such an acknowledgement cannot reach Redis any more:
# it is dropped with a warning, and the task stays in the unacked index, from which kombu
# restores it to the queue after the visibility timeout, as after any lost acknowledgement
# (our tasks are idempotent: a poll or a send run twice does its work once).

from kombu.transport import redis as kombu_redis  # noqa: E402
from redis import exceptions as redis_exceptions  # noqa: E402


class RedisQoS(kombu_redis.QoS):
    """kombu's Redis QoS, which drops an acknowledgement its closed connection cannot send."""

    def _connection_gone(self) -> bool:
        transport = getattr(self.channel, "connection", None)
        return transport is None or getattr(transport, "client", None) is None

    def ack(self, delivery_tag: str) -> None:
        if self._connection_gone():
            logger.warning(
                "broker connection closed: acknowledgement of %s dropped (the task is"
                " restored to its queue after the visibility timeout)",
                delivery_tag,
            )
            self._quick_ack(delivery_tag)  # forgotten here, as an acknowledgement is
            return
        super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self._connection_gone():
            logger.warning(
                "broker connection closed: rejection of %s dropped (the task is restored"
                " to its queue after the visibility timeout)",
                delivery_tag,
            )
            self._quick_ack(delivery_tag)  # forgotten here, as an acknowledgement is
            return
        super().reject(delivery_tag, requeue=requeue)


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel; asked for a new Redis connection once its own connection was
    closed (the same reconnect: closing the old channel restores its unacknowledged tasks
    through it), it raises the connection error kombu and Celery expect there and ignore
    while closing, instead of ``AttributeError`` (which stopped the worker)."""

    QoS = RedisQoS

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = getattr(self, "connection", None)
        if transport is None or getattr(transport, "client", None) is None:
            raise redis_exceptions.ConnectionError("broker connection closed")
        return cast(dict[str, Any], super()._connparams(asynchronous=asynchronous))


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with ``RedisQoS``; URL and options as kombu's own."""

    Channel = RedisChannel
