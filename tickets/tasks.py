"""Thin, idempotent tasks: ids in, re-fetch, call a service."""

from __future__ import annotations

import random

from celery import shared_task
from celery.app.task import Task

from tickets.events import dispatch_pending
from tickets.services import (
    LONGEST_RETRY_WAIT,
    TransientSendError,
    outbox_flag_interrupted,
    outbox_requeue_lost,
    outbox_send,
)

MAX_SEND_RETRIES = 6
RETRY_WAIT_CAP_SECONDS = LONGEST_RETRY_WAIT.total_seconds() - 60


@shared_task(bind=True, max_retries=MAX_SEND_RETRIES, acks_late=True)
def send_outbox_item(self: Task, item_id: int) -> str:  # type: ignore[type-arg]
    final = self.request.retries >= MAX_SEND_RETRIES
    try:
        return outbox_send(item_id=item_id, final_attempt=final)
    except TransientSendError as exc:
        backoff = min(600, 5 * 2**self.request.retries)
        # Wait for the platform's reset, but never past housekeeping's requeue of lost retries.
        countdown = min(exc.retry_after or backoff, RETRY_WAIT_CAP_SECONDS)
        jitter = random.uniform(0, 3)  # noqa: S311 - spreads retries, not a secret
        raise self.retry(countdown=countdown + jitter, exc=exc) from exc


@shared_task
def outbox_housekeeping() -> dict[str, int]:
    interrupted = outbox_flag_interrupted()
    lost = outbox_requeue_lost()
    for item_id in lost:
        send_outbox_item.delay(item_id)
    return {"interrupted": interrupted, "requeued": len(lost)}


@shared_task
def dispatch_ticket_events() -> int:
    """Deliver events whose after-commit delivery never happened (a crash, a failed handler)."""
    return dispatch_pending()


@shared_task
def sweep_promises() -> dict[str, int]:
    """Remind of promises coming due and mark broken those past due (each once)."""
    from tickets.services.promises import promise_sweep

    result = promise_sweep()
    return {"reminded": result.reminded, "broken": result.broken}
