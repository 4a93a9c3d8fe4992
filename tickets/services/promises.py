"""Promises made to customers: recorded with a due time, reminded before it, broken after it
unless kept. A ticket cannot close while one is open (``Ticket.check_no_open_promise``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from careinbox.notifications.services import notify
from tickets.models import EventKind, Promise, PromiseState, Ticket, when
from tickets.services.teamwork import TeamworkError, ticket_url

if TYPE_CHECKING:
    from careinbox.accounts.models import User

DEFAULT_REMINDER_LEAD = timedelta(minutes=30)
LONGEST_REMINDER_LEAD = timedelta(days=7)
PROMISE_MAX_LENGTH = 300
SWEEP_BATCH = 500


def promise_make(
    *,
    ticket: Ticket,
    by: User,
    text: str,
    due_at: datetime,
    remind_before: timedelta = DEFAULT_REMINDER_LEAD,
) -> Promise:
    """Record a promise ("call back by 17:00"); its reminder goes out ``remind_before`` its due
    time (at once if that is already past). Recorded."""
    text = " ".join(text.split())
    now = timezone.now()
    if not text:
        raise TeamworkError("Say what was promised.")
    if len(text) > PROMISE_MAX_LENGTH:
        raise TeamworkError(
            f"A promise can be at most {PROMISE_MAX_LENGTH} characters; this one is {len(text)}."
        )
    if timezone.is_naive(due_at):
        raise TeamworkError("The due time needs a time zone.")
    if due_at <= now:
        raise TeamworkError("The due time has passed already; promise something still ahead.")
    if not timedelta(0) <= remind_before <= LONGEST_REMINDER_LEAD:
        raise TeamworkError("The reminder can come at most 7 days before the due time.")
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).get(pk=ticket.pk)
        if not locked.is_open:
            raise TeamworkError("This ticket is closed; a promise belongs on an open ticket.")
        promise = Promise.objects.create(
            organization_id=locked.organization_id,
            ticket=locked,
            text=text,
            made_by=by,
            created_at=now,
            due_at=due_at,
            remind_at=max(now, due_at - remind_before),
        )
        locked.record(
            EventKind.PROMISE_MADE,
            actor=by,
            promise_id=promise.pk,
            due_at=due_at.isoformat(),
            summary=f"\u201c{text}\u201d by {when(due_at, locked.organization)}",
        )
    return promise


def promise_keep(*, ticket: Ticket, promise_id: int, by: User) -> Promise:
    """The agent kept the promise (late, if it was broken); recorded."""
    with transaction.atomic():
        promise = (
            Promise.objects.select_for_update(of=("self",))
            .select_related("ticket__organization")
            .filter(ticket_id=ticket.pk, pk=promise_id)
            .first()
        )
        if promise is None:
            raise TeamworkError("There is no such promise on this ticket.")
        if promise.state == PromiseState.KEPT:
            raise TeamworkError("This promise was kept already.")
        promise.keep(by=by)
    return promise


def _people_to_tell(promise: Promise) -> list[User]:
    people = [promise.made_by, promise.ticket.assigned_to]
    return [user for user in people if user is not None and user.is_active]


@dataclass(frozen=True)
class SweepResult:
    reminded: int
    broken: int


def promise_sweep(*, now: datetime | None = None) -> SweepResult:
    """Remind of the open promises coming due, and mark broken those past due; each once.

    Rows are claimed with ``skip_locked``, and each change is a conditional UPDATE, so two
    sweeps at once never remind or break a promise twice."""
    now = now or timezone.now()
    reminded = broken = 0
    related = ("ticket__organization", "ticket__assigned_to", "made_by")
    with transaction.atomic():
        coming_due = list(
            Promise.objects.filter(
                state=PromiseState.OPEN,
                reminded_at__isnull=True,
                remind_at__lte=now,
                due_at__gt=now,
            )
            .select_related(*related)
            .select_for_update(of=("self",), skip_locked=True)
            .order_by("remind_at")[:SWEEP_BATCH]
        )
        for promise in coming_due:
            if promise.mark_reminded(at=now) is None:
                continue
            reminded += 1
            ticket = promise.ticket
            notify(
                ticket.organization,
                _people_to_tell(promise),
                f"Promise due {when(promise.due_at, ticket.organization)} on ticket #{ticket.pk}",
                body=promise.text,
                url=ticket_url(ticket, f"promise-{promise.pk}"),
                kind="promise",
                dedupe_key=f"promise:{promise.pk}:reminder",
            )
    with transaction.atomic():
        overdue = list(
            Promise.objects.filter(state=PromiseState.OPEN, due_at__lte=now)
            .select_related(*related)
            .select_for_update(of=("self",), skip_locked=True)
            .order_by("due_at")[:SWEEP_BATCH]
        )
        for promise in overdue:
            if promise.mark_broken(at=promise.due_at) is None:
                continue
            broken += 1
            ticket = promise.ticket
            notify(
                ticket.organization,
                _people_to_tell(promise),
                f"Promise broken on ticket #{ticket.pk}",
                body=f"{promise.text} (was due {when(promise.due_at, ticket.organization)})",
                url=ticket_url(ticket, f"promise-{promise.pk}"),
                kind="promise",
                dedupe_key=f"promise:{promise.pk}:broken",
            )
    return SweepResult(reminded=reminded, broken=broken)
