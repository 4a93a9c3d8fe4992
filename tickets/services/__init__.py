"""Work that spans tickets, messages and the outbox, one module per concern:

- ``ingest``: the post sink polling and webhooks hand batches to;
- ``steps``: the four care steps;
- ``outbox``: sending, its outcomes, housekeeping and the agent's settling of uncertain sends.

Each service runs in one transaction; side effects (Celery enqueues, event handlers) run only
once it has committed.
"""

from __future__ import annotations

from tickets.services.ingest import ingest_posts
from tickets.services.outbox import (
    LONGEST_RETRY_WAIT,
    MAX_SEND_ATTEMPTS,
    SettleOutcome,
    TransientSendError,
    outbox_flag_interrupted,
    outbox_requeue_lost,
    outbox_send,
    outbox_settle_uncertain,
)
from tickets.services.steps import UNSETTLED, ticket_take_step

__all__ = [
    "LONGEST_RETRY_WAIT",
    "MAX_SEND_ATTEMPTS",
    "UNSETTLED",
    "SettleOutcome",
    "TransientSendError",
    "ingest_posts",
    "outbox_flag_interrupted",
    "outbox_requeue_lost",
    "outbox_send",
    "outbox_settle_uncertain",
    "ticket_take_step",
]
