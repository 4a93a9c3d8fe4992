"""Outbound webhooks end to end on a real Celery worker: a ticket event is committed, the
event seam makes the delivery, the worker sends it to a real receiver, a 500 is retried after
a backoff, the retry lands; another organisation's endpoint hears nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from monitoring.webhooks.models import DeliveryState, WebhookDelivery
from monitoring.webhooks.services import endpoint_create
from monitoring.webhooks.signing import verify
from tests.conftest import Persona
from tests.factories import TicketFactory
from tests.webhook_receiver import Answer, Receiver
from tests.worker_fixtures import wait_for
from tickets.models import EventKind

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", autouse=True)
def _quick_retries() -> Iterator[None]:
    """The worker reads its settings from the environment: a 1-second backoff base, so the
    retry comes within a second or two (production waits up to 30 s, then 60 s, ...)."""
    before = os.environ.get("WEBHOOK_RETRY_BASE_SECONDS")
    os.environ["WEBHOOK_RETRY_BASE_SECONDS"] = "1"
    yield
    if before is None:
        os.environ.pop("WEBHOOK_RETRY_BASE_SECONDS")
    else:
        os.environ["WEBHOOK_RETRY_BASE_SECONDS"] = before


def test_the_worker_retries_a_500_and_delivers_to_the_right_organisation_only(
    celery_worker_process: object, org_admin: Persona, outsider: Persona, receiver: Receiver
) -> None:
    receiver.script = [Answer(500, "busy"), Answer(200, "ok")]
    endpoint, secret = endpoint_create(
        organization=org_admin.organization,
        by=org_admin.user,
        name="CRM",
        url=receiver.url,
        events=["ticket.created"],
    )
    theirs, _ = endpoint_create(
        organization=outsider.organization,
        by=outsider.user,
        name="Globex",
        url=receiver.url,
        events=["ticket.created"],
    )
    ticket = TicketFactory(social_account__brand__organization=org_admin.organization)
    ticket.record(EventKind.OPENED)  # committed: the seam hands it on

    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(
            endpoint=endpoint, state=DeliveryState.SUCCEEDED
        ).first(),
        timeout=60,
        what="the delivery to succeed after its retry",
    )
    assert isinstance(delivery, WebhookDelivery)
    assert delivery.attempts == 2
    codes = list(delivery.attempt_log.order_by("number").values_list("status_code", flat=True))
    assert codes == [500, 200]
    assert len(receiver.received) == 2
    for request in receiver.received:
        assert request.headers["X-CareInbox-Event-Id"] == delivery.event_id
        assert verify(
            secret,
            body=request.body,
            timestamp=request.headers["X-CareInbox-Timestamp"],
            header=request.headers["X-CareInbox-Signature"],
        )
    assert not WebhookDelivery.objects.filter(endpoint=theirs).exists()
