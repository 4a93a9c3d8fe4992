"""The promise sweep as beat runs it: the task on a real Celery worker marks a promise that
came due broken and reminds of one coming due (that each happens once is
test_promises.py's)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from careinbox.notifications.models import Notification
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tests.worker_fixtures import wait_for
from tickets.models import EventKind, Promise, PromiseState
from tickets.services.promises import promise_make
from tickets.tasks import sweep_promises

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_worker_reminds_and_breaks_promises(
    celery_worker_process: object, agent: Persona
) -> None:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    InboundMessageFactory(ticket=ticket)
    soon = promise_make(
        ticket=ticket,
        by=agent.user,
        text="Call back in an hour",
        due_at=timezone.now() + timedelta(minutes=20),  # inside the 30-minute lead
    )
    late = promise_make(
        ticket=ticket,
        by=agent.user,
        text="Refund today",
        due_at=timezone.now() + timedelta(hours=3),
    )
    # It came due: as if made earlier (the due time a moment ago).
    Promise.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(seconds=1))

    sweep_promises.delay()
    wait_for(
        lambda: Promise.objects.filter(pk=late.pk, state=PromiseState.BROKEN).exists(),
        what="the promise to be marked broken",
    )
    wait_for(
        lambda: Promise.objects.filter(pk=soon.pk, reminded_at__isnull=False).exists(),
        what="the reminder",
    )
    assert ticket.events.filter(kind=EventKind.PROMISE_BROKEN).count() == 1
    assert ticket.events.filter(kind=EventKind.PROMISE_REMINDER).count() == 1
    assert Notification.objects.filter(recipient=agent.user, kind="promise").count() == 2
    assert Promise.objects.get(pk=soon.pk).state == PromiseState.OPEN
