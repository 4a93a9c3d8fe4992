"""The Redis broker transport (``careinbox.broker.RedisTransport``) against the real Redis.

kombu's own stops the worker for good ("Unrecoverable error: AttributeError") when a task's
acknowledgement reaches a channel whose connection was closed for a reconnect (Redis
restarted: bench/restarts.py saw it). Ours drops that acknowledgement and the task is
restored to its queue after the visibility timeout; everything else is kombu's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu
import kombu.common
import pytest
import redis
from kombu.transport import redis as kombu_redis

from careinbox.broker import RedisTransport

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (a real Redis)")


def _options(name: str) -> dict[str, object]:
    # The test's own unacked index (kombu's option names), so nothing else's is touched.
    return {
        "visibility_timeout": 1,
        "unacked_key": f"{name}-unacked",
        "unacked_index_key": f"{name}-unacked-index",
        "unacked_mutex_key": f"{name}-unacked-mutex",
    }


def _received(transport: type, name: str) -> tuple[kombu.Connection, kombu.Message]:
    connection = kombu.Connection(REDIS_URL, transport=transport, transport_options=_options(name))
    queue = connection.SimpleQueue(name)
    queue.put({"task": "poll", "name": name})
    message = queue.get(timeout=5)
    assert _unacked(name) == 1
    return connection, message


def _unacked(name: str) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    return int(client.hlen(f"{name}-unacked"))


def _lost(connection: kombu.Connection, message: kombu.Message) -> None:
    """The state the worker's old channel is in while it reconnects to a restarted Redis:
    its pools dropped, its connection closed (``transport.client = None``)."""
    message.channel._disconnect_pools()
    connection._do_close_transport()


def test_an_acknowledgement_after_the_connection_closed_is_dropped_and_restored_later() -> None:
    name = f"test-broker-{uuid.uuid4().hex}"
    connection, message = _received(RedisTransport, name)
    _lost(connection, message)
    message.ack()  # no exception: dropped
    assert _unacked(name) == 1  # still in Redis's unacked index
    # After the visibility timeout, kombu restores it to its queue, from a new connection.
    time.sleep(1.5)
    with kombu.Connection(
        REDIS_URL, transport=RedisTransport, transport_options=_options(name)
    ) as again:
        queue = again.SimpleQueue(name)
        queue.channel.qos.restore_visible(interval=1)
        restored = queue.get(timeout=5)
        assert restored.payload == {"task": "poll", "name": name}
        restored.ack()
        assert _unacked(name) == 0
        queue.close()


def test_closing_the_lost_channel_is_a_connection_error_kombu_ignores() -> None:
    """Closing the old channel restores its unacknowledged tasks through its closed
    connection: kombu's own raised AttributeError there (the worker stopped); ours raises the
    connection error that kombu's ``ignore_errors`` (Celery's path) swallows."""
    name = f"test-broker-{uuid.uuid4().hex}"
    connection, message = _received(RedisTransport, name)
    channel = message.channel
    _lost(connection, message)
    with pytest.raises(redis.exceptions.ConnectionError):
        channel.qos.restore_unacked()
    kombu.common.ignore_errors(connection, channel.close)  # as Celery closes it: no error
    redis.Redis.from_url(REDIS_URL).delete(f"{name}-unacked", f"{name}-unacked-index", name)


def test_kombus_own_transport_fails_on_the_same_acknowledgement() -> None:
    """The race this transport exists for (if kombu fixes it, this test says so)."""
    name = f"test-broker-{uuid.uuid4().hex}"
    connection, message = _received(kombu_redis.Transport, name)
    _lost(connection, message)
    with pytest.raises(AttributeError):
        message.ack()
    redis.Redis.from_url(REDIS_URL).delete(f"{name}-unacked", f"{name}-unacked-index", name)


def test_an_acknowledgement_on_a_live_connection_removes_the_task() -> None:
    name = f"test-broker-{uuid.uuid4().hex}"
    connection, message = _received(RedisTransport, name)
    message.ack()
    assert _unacked(name) == 0
    connection.release()


def test_celery_uses_it_with_redis() -> None:
    """With REDIS_URL, settings name our Redis transport, and Celery's connection is one."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="careinbox.settings")
    script = (
        "import django; django.setup()\n"
        "from careinbox.celery import app\n"
        "with app.connection_for_write() as c: print(type(c.transport).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "RedisTransport"
