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
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.utils import timezone

from careinbox.locks import lock_organizations
from tickets.models import EventKind, InboxCountsStamp, TicketEvent

if TYPE_CHECKING:
    from careinbox.accounts.models import User
    from tickets.models import Message, Ticket

log = logging.getLogger(__name__)

Handler = Callable[[TicketEvent], None]
BatchHandler = Callable[[list[TicketEvent]], None]


@dataclass(frozen=True)
class Subscription:
    handler: Handler
    kinds: frozenset[str] | None  # None: every kind
    # The same work for many events at once (optional): see ``subscribe``.
    batch: BatchHandler | None = None
    # ``handler`` applied to each of several events in one call (optional): see ``subscribe``.
    many: BatchHandler | None = None

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


def subscribe(
    handler: Handler,
    *,
    kinds: Iterable[str] | None = None,
    batch: BatchHandler | None = None,
    many: BatchHandler | None = None,
) -> Handler:
    """Register ``handler`` for events of ``kinds`` (all if None). Registering twice is a no-op.

    ``batch``, if given, does ``handler``'s work for a list of events at once. It is for
    handlers that look at a ticket's current state (a check for warnings, a rule pass), where
    checking once after all of a batch's events equals checking after each: ``dispatch`` calls
    it once per delivery, after every per-event handler of the delivery has run.

    ``many``, if given, is ``handler`` applied to several events in one call, with a few
    statements for all of them instead of a few for each (timers started for a poll's new
    tickets in one INSERT): ``many(events)`` must do exactly what ``for event in events:
    handler(event)`` does. ``dispatch`` hands it at most one event per ticket per call, in the
    order they were recorded, at the place in the delivery where ``handler`` would run (see
    ``dispatch``); should it raise, ``handler`` is called for each of those events instead.
    """
    if batch is not None and many is not None:
        raise ValueError("a handler has a batch form or a many form, not both")
    subscription = Subscription(
        handler, frozenset(kinds) if kinds is not None else None, batch=batch, many=many
    )
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
    InboxCountsStamp.counts_changed(ticket.organization_id)
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
    for organization_id in {event.organization_id for event in created}:
        InboxCountsStamp.counts_changed(organization_id)
    return created


_together = threading.local()


@contextmanager
def published_together() -> Iterator[None]:
    """Publish every event recorded inside as one delivery (one ``dispatch`` after commit)
    instead of one delivery per event: for services that record many events in one
    transaction, such as ingest (a poll's hundreds of posts, each in a savepoint of its own).

    An event written in a savepoint that rolled back is simply not found by ``dispatch``; the
    ids of a sequence are never handed out twice.
    """
    outer = getattr(_together, "ids", None)
    if outer is not None:  # already inside one: the outermost publishes
        yield
        return
    collected: list[int] = []
    _together.ids = collected
    try:
        yield
    finally:
        _together.ids = None
        if collected:
            transaction.on_commit(lambda: dispatch(collected), robust=True)


def _publish(event_ids: list[int]) -> None:
    collecting = getattr(_together, "ids", None)
    if collecting is not None:
        collecting.extend(event_ids)
        return
    transaction.on_commit(lambda: dispatch(event_ids), robust=True)


def dispatch(event_ids: Iterable[int]) -> int:
    """Hand the given events (those not yet dispatched) to their handlers, in order.

    All in one transaction. The events go in rounds: round one holds each ticket's first event
    of the delivery, round two each ticket's second, and so on (a poll's new tickets: their
    ``opened`` events, then their first messages). Per round, the per-event handlers in the
    order they subscribed, each over the round's events in the order they were recorded, in one
    savepoint for all of them (its ``many`` form if it has one, else one call per event). A
    ticket's own events are so handled in exactly the
    order they were recorded, each by every handler in subscription order, as one at a time
    would; only handlers of *different* tickets change places (they act on their event's
    ticket, so they commute). Then each batch handler once, with the events it wants; then the
    events whose handlers all returned are marked dispatched. One commit for a poll's hundreds
    of events instead of one per event and handler (bench/ingest_storm.py).

    A handler that raises rolls back alone and leaves its event undispatched, for
    ``dispatch_pending``: a handler that raises on one of a round's events is retried one event
    at a time, each in a savepoint of its own (its work on the others rolled back and done
    again: handlers are idempotent), so only the events it fails on wait; so is a batch form.
    Events the handlers record are published together, as one more delivery after this one
    commits (not one delivery each). Should the commit itself fail, each event is delivered
    again in transactions of its own (delivery is at least once).
    """
    ids = list(event_ids)
    events = _undispatched(ids)
    if not events:
        return 0
    try:
        with transaction.atomic(), published_together():
            # The handlers update these organisations' tickets and timers, as a concurrent
            # ingest or delivery of the same organisation does in another order: one at a time.
            lock_organizations(event.organization_id for event in events)
            return _deliver_together(events)
    except Exception:
        log.exception("delivering %d events together failed; one by one now", len(events))
    return _deliver_each(_undispatched(ids))  # read again: the rollback undid what changed


def _undispatched(event_ids: list[int]) -> list[TicketEvent]:
    return list(
        TicketEvent.objects.filter(pk__in=event_ids, dispatched_at__isnull=True)
        .select_related("ticket", "message")
        # The platform's raw item (kilobytes of JSON per message) is no handler's business:
        # a handler that wants it reads it (one query).
        .defer("message__raw")
        .order_by("pk")
    )


def _rounds(events: list[TicketEvent]) -> list[list[TicketEvent]]:
    """The events (in recorded order) in rounds: the n-th round holds each ticket's n-th event."""
    rounds: list[list[TicketEvent]] = []
    seen: dict[int, int] = {}
    for event in events:
        n = seen.get(event.ticket_id, 0)
        seen[event.ticket_id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(event)
    return rounds


def _deliver_together(events: list[TicketEvent]) -> int:
    failed: set[int] = set()
    batched: dict[str, tuple[Subscription, list[TicketEvent]]] = {}
    for round_events in _rounds(events):
        for subscription in list(_subscriptions):
            wanted = [event for event in round_events if subscription.wants(event.kind)]
            if not wanted:
                continue
            if subscription.batch is not None:
                batched.setdefault(subscription.name, (subscription, []))[1].extend(wanted)
            elif len(wanted) > 1:
                form = subscription.many or _each(subscription.handler)
                failed.update(_call_many(subscription, form, wanted))
            elif not _call(subscription, wanted[0]):
                failed.add(wanted[0].pk)
    # In the order they subscribed, whichever event came first: a handler registered after
    # another (the roll-ups after the SLA check) sees what that one changed.
    order = {subscription.name: n for n, subscription in enumerate(_subscriptions)}
    for subscription, wanted in sorted(batched.values(), key=lambda sw: order[sw[0].name]):
        assert subscription.batch is not None
        wanted.sort(key=lambda event: event.pk)
        failed.update(_call_many(subscription, subscription.batch, wanted))
    delivered = [event.pk for event in events if event.pk not in failed]
    if delivered:
        TicketEvent.objects.filter(pk__in=delivered).update(dispatched_at=timezone.now())
    return len(delivered)


def _each(handler: Handler) -> BatchHandler:
    """A handler without a many form, over several events: one call each, in one savepoint."""

    def each(batch: list[TicketEvent]) -> None:
        for event in batch:
            handler(event)

    return each


def _call_many(
    subscription: Subscription, form: BatchHandler, wanted: list[TicketEvent]
) -> list[int]:
    """A many or batch form over ``wanted`` in one savepoint; should it raise, the handler
    one event at a time. Returns the events it failed on."""
    try:
        with transaction.atomic():
            form(wanted)
    except Exception:
        log.exception("%s failed on %d events; one event at a time", subscription.name, len(wanted))
        return [event.pk for event in wanted if not _call(subscription, event)]
    return []


def _call(subscription: Subscription, event: TicketEvent) -> bool:
    try:
        with transaction.atomic():
            subscription.handler(event)
    except Exception:
        log.exception("handler %s failed on event %s", subscription.name, event.pk)
        return False
    return True


def _deliver_each(events: list[TicketEvent]) -> int:
    delivered: list[int] = []
    for event in events:
        ok = True
        for subscription in subscribers(event.kind):
            ok = _call(subscription, event) and ok
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
