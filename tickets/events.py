"""The ticket event log as the seam between apps: the one writer of ``TicketEvent``, and the
publisher that hands each event, after commit, to the handlers other apps register.

``tickets`` knows nothing of SLA timers, escalation, notifications or webhooks. Those apps
subscribe here in their ``AppConfig.ready``::

    events.subscribe(start_timers, kinds=[EventKind.OPENED])

Delivery is at least once. An event is handed to its handlers once its transaction commits,
and marked dispatched when every one of them returned; an event left undispatched (the process
died after commit, or a handler raised) is delivered again by ``dispatch_pending``, which beat
runs every few seconds. So handlers must be idempotent: applying one event twice changes nothing
the second time. An event no handler subscribes to is marked dispatched as it is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.utils import timezone

from tickets.models import EventKind, TicketEvent

if TYPE_CHECKING:
    from careinbox.accounts.models import User
    from tickets.models import Message, Ticket

log = logging.getLogger(__name__)

Handler = Callable[[TicketEvent], None]


@dataclass(frozen=True)
class Subscription:
    handler: Handler
    kinds: frozenset[str] | None  # None: every kind

    @property
    def name(self) -> str:
        return f"{self.handler.__module__}.{self.handler.__qualname__}"

    def wants(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


_subscriptions: list[Subscription] = []
_labels: dict[str, str] = {}


def register_kinds(kinds: type[models.TextChoices]) -> None:
    """Name an app's own event kinds, for the timeline (``monitoring`` registers its SLA kinds)."""
    _labels.update({str(value): str(label) for value, label in kinds.choices})


def label_for(kind: str) -> str:
    return _labels.get(kind, kind.replace("_", " ").capitalize())


register_kinds(EventKind)


def subscribe(handler: Handler, *, kinds: Iterable[str] | None = None) -> Handler:
    """Register ``handler`` for events of ``kinds`` (all if None). Registering twice is a no-op."""
    subscription = Subscription(handler, frozenset(kinds) if kinds is not None else None)
    if all(existing.name != subscription.name for existing in _subscriptions):
        _subscriptions.append(subscription)
    return handler


def subscribers(kind: str) -> list[Subscription]:
    return [subscription for subscription in _subscriptions if subscription.wants(kind)]


def record_event(
    ticket: Ticket,
    kind: str,
    *,
    actor: User | None = None,
    message: Message | None = None,
    at: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> TicketEvent:
    """Write one event and publish it after commit. ``Ticket.record`` is the usual way in."""
    now = timezone.now()
    event = TicketEvent.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        kind=kind,
        actor=actor,
        message=message,
        at=at or now,
        data=data or {},
        recorded_at=now,
        dispatched_at=None if subscribers(kind) else now,
    )
    if event.dispatched_at is None:
        _publish([event.pk])
    return event


def record_events(events: Sequence[TicketEvent]) -> list[TicketEvent]:
    """Write many events at once (unsaved ``TicketEvent`` objects) and publish them after commit.

    For set-based work such as the SLA sweep; one INSERT, one callback.
    """
    now = timezone.now()
    for event in events:
        event.recorded_at = now
        event.dispatched_at = None if subscribers(event.kind) else now
    created = TicketEvent.objects.bulk_create(events)
    ids = [event.pk for event in created if event.dispatched_at is None and event.pk]
    if ids:
        _publish(ids)
    return created


def _publish(event_ids: list[int]) -> None:
    transaction.on_commit(lambda: dispatch(event_ids), robust=True)


def dispatch(event_ids: Iterable[int]) -> int:
    """Hand the given events (those not yet dispatched) to their handlers, in order."""
    events = list(
        TicketEvent.objects.filter(pk__in=list(event_ids), dispatched_at__isnull=True)
        .select_related("ticket", "message")
        .order_by("pk")
    )
    delivered: list[int] = []
    for event in events:
        ok = True
        for subscription in subscribers(event.kind):
            try:
                with transaction.atomic():
                    subscription.handler(event)
            except Exception:
                ok = False
                log.exception("handler %s failed on event %s", subscription.name, event.pk)
        if ok:
            delivered.append(event.pk)
    if delivered:
        TicketEvent.objects.filter(pk__in=delivered).update(dispatched_at=timezone.now())
    return len(delivered)


def dispatch_pending(*, older_than: timedelta = timedelta(seconds=20), limit: int = 500) -> int:
    """Deliver events that were never dispatched: their process died, or a handler failed.

    ``older_than`` leaves the after-commit delivery of fresh events to run first.
    """
    cutoff = timezone.now() - older_than
    ids = list(
        TicketEvent.objects.filter(dispatched_at__isnull=True, recorded_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return dispatch(ids) if ids else 0
