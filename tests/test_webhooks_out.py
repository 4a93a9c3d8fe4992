"""Outbound webhooks against a real HTTP receiver: the events they carry and to whom, the
signature, retries with backoff, giving up, the delivery log, redelivery and the SSRF guard."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Organization
from careinbox.audit import AuditEntry
from careinbox.notifications.models import Notification
from monitoring.models import SlaEventKind
from monitoring.webhooks.delivery import address_problem, post_signed
from monitoring.webhooks.forms import WebhookEndpointForm
from monitoring.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from monitoring.webhooks.services import (
    RedeliverError,
    deliveries_for_event,
    delivery_attempt,
    delivery_redeliver,
    endpoint_create,
    endpoint_ping,
    endpoint_rotate_secret,
)
from monitoring.webhooks.signing import signature, verify
from tests.conftest import Persona
from tests.factories import TicketFactory
from tests.webhook_receiver import Answer, Receiver
from tickets.models import EventKind, Ticket, TicketEvent

pytestmark = pytest.mark.django_db

ALL = ["ticket.created", "ticket.step_changed", "sla.warning", "sla.breached", "ticket.closed"]


def _endpoint(admin: Persona, url: str, events: list[str] | None = None) -> tuple[Any, str]:
    return endpoint_create(
        organization=admin.organization,
        by=admin.user,
        name=f"Receiver {WebhookEndpoint.objects.count() + 1}",
        url=url,
        events=events or ALL,
    )


def _ticket(org: Organization) -> Ticket:
    return TicketFactory(social_account__brand__organization=org)  # type: ignore[no-any-return]


def _due_now(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_an_event_reaches_its_organisations_endpoints_once_through_the_event_seam(
    org_admin: Persona,
    outsider: Persona,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    mine, _ = _endpoint(org_admin, receiver.url)
    only_closed, _ = _endpoint(org_admin, receiver.url, ["ticket.closed"])
    theirs, _ = endpoint_create(
        organization=outsider.organization,
        by=outsider.user,
        name="Globex CRM",
        url=receiver.url,
        events=ALL,
    )
    ticket = _ticket(org_admin.organization)
    with django_capture_on_commit_callbacks(execute=True):
        event = ticket.record(EventKind.OPENED)
    deliveries = list(WebhookDelivery.objects.all())
    assert [(d.endpoint_id, d.event_type) for d in deliveries] == [(mine.pk, "ticket.created")]
    assert not WebhookDelivery.objects.filter(endpoint__in=[theirs, only_closed]).exists()
    # The seam delivers at least once: handling the same event again adds nothing.
    assert deliveries_for_event(event) == []
    assert WebhookDelivery.objects.count() == 1
    body = json.loads(deliveries[0].body)
    assert body["type"] == "ticket.created"
    assert body["organization_id"] == org_admin.organization.pk
    assert body["data"]["ticket"]["id"] == ticket.pk
    assert body["data"]["ticket"]["customer"]["username"] == ticket.customer_username
    assert body["id"].startswith("evt_")


def test_a_delivery_of_many_events_looks_for_endpoints_once(
    org_admin: Persona, outsider: Persona, receiver: Receiver
) -> None:
    """Events delivered together (an SLA sweep's, a poll's): one statement finds which of
    their organisations listen, then only those organisations' events become deliveries."""
    from tickets.events import dispatch

    mine, _ = _endpoint(org_admin, receiver.url)
    quiet = [_ticket(outsider.organization) for _ in range(5)]
    loud = _ticket(org_admin.organization)
    with transaction.atomic():  # recorded, not yet delivered: dispatch below delivers them
        recorded = [ticket.record(EventKind.OPENED) for ticket in [*quiet, loud]]
        ids = [event.pk for event in recorded]
    WebhookDelivery.objects.all().delete()
    TicketEvent.objects.filter(pk__in=ids).update(dispatched_at=None)
    with CaptureQueriesContext(connection) as queries:
        assert dispatch(ids) == len(ids)
    looks = [q["sql"] for q in queries.captured_queries if "webhooks_webhookendpoint" in q["sql"]]
    assert len(looks) == 1, looks  # one look for the endpoints of every organisation at once
    assert [(d.endpoint_id, d.ticket_event_id) for d in WebhookDelivery.objects.all()] == [
        (mine.pk, recorded[-1].pk)
    ]


def test_each_ticket_kind_maps_to_its_webhook_types(org_admin: Persona, receiver: Receiver) -> None:
    endpoint, _ = _endpoint(org_admin, receiver.url)
    ticket = _ticket(org_admin.organization)
    cases = {
        EventKind.ACKNOWLEDGE: ["ticket.step_changed"],
        EventKind.CLOSE_OUT: ["ticket.step_changed", "ticket.closed"],
        EventKind.CLOSED_AS_SPAM: ["ticket.closed"],
        SlaEventKind.SLA_WARNING: ["sla.warning"],
        SlaEventKind.SLA_BREACHED: ["sla.breached"],
        EventKind.TAGGED: [],
    }
    for kind, expected in cases.items():
        event = ticket.record(kind, metric="first_response", due_at="2026-12-01T10:00:00+00:00")
        made = deliveries_for_event(event)
        assert sorted(d.event_type for d in made) == sorted(expected), kind
    breach = WebhookDelivery.objects.get(endpoint=endpoint, event_type="sla.breached")
    event_data = json.loads(breach.body)["data"]["event"]
    assert event_data["metric"] == "first_response"
    assert event_data["due_at"] == "2026-12-01T10:00:00+00:00"
    step = WebhookDelivery.objects.filter(event_type="ticket.step_changed").order_by("pk").first()
    assert step is not None
    assert json.loads(step.body)["data"]["event"] | {"at": None} == {
        "kind": "acknowledge",
        "at": None,
        "actor": None,
        "change": "taken",
        "step": "acknowledge",
        "status": "acknowledged",
    }


def test_the_signature_verifies_with_the_endpoints_secret(
    org_admin: Persona, receiver: Receiver
) -> None:
    endpoint, secret = _endpoint(org_admin, receiver.url)
    ticket = _ticket(org_admin.organization)
    (delivery,) = deliveries_for_event(ticket.record(EventKind.OPENED))
    assert delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    (request,) = receiver.received
    headers = request.headers
    assert headers["X-CareInbox-Event"] == "ticket.created"
    assert headers["X-CareInbox-Event-Id"] == delivery.event_id
    assert headers["Content-Type"] == "application/json"
    assert request.body == delivery.body.encode()
    assert verify(
        secret,
        body=request.body,
        timestamp=headers["X-CareInbox-Timestamp"],
        header=headers["X-CareInbox-Signature"],
    )
    # Recomputed by hand, as a receiver in any language would.
    import hashlib
    import hmac

    expected = hmac.new(
        secret.encode(),
        headers["X-CareInbox-Timestamp"].encode() + b"." + request.body,
        hashlib.sha256,
    ).hexdigest()
    assert headers["X-CareInbox-Signature"] == f"sha256={expected}"
    # Another secret, a changed body or an old timestamp does not verify.
    assert not verify(
        "whsec_other",
        body=request.body,
        timestamp=headers["X-CareInbox-Timestamp"],
        header=headers["X-CareInbox-Signature"],
    )
    assert not verify(
        secret,
        body=request.body + b" ",
        timestamp=headers["X-CareInbox-Timestamp"],
        header=headers["X-CareInbox-Signature"],
    )
    old = int(headers["X-CareInbox-Timestamp"]) - 600
    assert not verify(
        secret, body=request.body, timestamp=str(old), header=signature(secret, old, request.body)
    )
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_a_500_is_retried_with_backoff_then_delivered_and_logged(
    org_admin: Persona, receiver: Receiver
) -> None:
    receiver.script = [Answer(500, "x" * 2000), Answer(200, "thanks")]
    _endpoint(org_admin, receiver.url)
    (delivery,) = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED))
    before = timezone.now()
    assert delivery_attempt(delivery_id=delivery.pk) == "retrying"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.PENDING
    assert delivery.attempts == 1 and delivery.last_status_code == 500
    assert delivery.next_attempt_at is not None
    # Full jitter: somewhere in [0, base] seconds after the first attempt.
    assert before <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=30)
    _due_now(delivery)
    assert delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.attempts == 2
    first, second = delivery.attempt_log.order_by("number")
    assert (first.number, first.status_code, first.succeeded) == (1, 500, False)
    assert first.response_excerpt == "x" * 500  # truncated
    assert first.will_retry_at is not None
    assert (second.number, second.status_code, second.succeeded) == (2, 200, True)
    assert second.response_excerpt == "thanks"
    assert second.duration_ms >= 0 and second.error == ""
    # Both attempts carried the same event id and the same body.
    assert {r.headers["X-CareInbox-Event-Id"] for r in receiver.received} == {delivery.event_id}
    assert receiver.received[0].body == receiver.received[1].body
    # Sent: a late duplicate task changes nothing.
    assert delivery_attempt(delivery_id=delivery.pk) == "skipped"
    assert len(receiver.received) == 2


def test_a_retry_not_yet_due_is_skipped(org_admin: Persona, receiver: Receiver) -> None:
    receiver.default = Answer(503)
    _endpoint(org_admin, receiver.url)
    (delivery,) = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED))
    delivery_attempt(delivery_id=delivery.pk)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert delivery_attempt(delivery_id=delivery.pk) == "skipped"
    assert len(receiver.received) == 1


def test_a_4xx_is_not_retried_and_marks_the_endpoint_failing(
    org_admin: Persona, agent: Persona, receiver: Receiver
) -> None:
    receiver.default = Answer(410, "gone")
    endpoint, _ = _endpoint(org_admin, receiver.url)
    (delivery,) = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED))
    assert delivery_attempt(delivery_id=delivery.pk) == "failed"
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    assert "answered 410" in endpoint.failure_reason
    notes = Notification.objects.filter(kind="webhook")
    assert [n.recipient_id for n in notes] == [org_admin.user.pk]  # admins only
    assert reverse("webhooks:endpoint", args=[endpoint.pk]) == notes[0].url


def test_a_429_is_retried(org_admin: Persona, receiver: Receiver) -> None:
    receiver.script = [Answer(429)]
    _endpoint(org_admin, receiver.url)
    (delivery,) = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED))
    assert delivery_attempt(delivery_id=delivery.pk) == "retrying"


def test_it_gives_up_after_the_last_attempt_and_a_success_clears_failing(
    org_admin: Persona, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.default = Answer(502)
    endpoint, _ = _endpoint(org_admin, receiver.url)
    (delivery,) = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED))
    outcomes = []
    for _ in range(3):
        outcomes.append(delivery_attempt(delivery_id=delivery.pk))
        _due_now(delivery)
    assert outcomes == ["retrying", "retrying", "failed"]
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and delivery.attempts == 3
    assert delivery.attempt_log.filter(will_retry_at__isnull=True).count() == 1
    endpoint.refresh_from_db()
    assert endpoint.is_failing
    assert Notification.objects.filter(kind="webhook", recipient=org_admin.user).count() == 1
    # Fixed: the admin redelivers, the same event id arrives again, failing is cleared.
    receiver.default = Answer(200)
    delivery_redeliver(delivery=delivery, by=org_admin.user)
    assert delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    assert receiver.received[-1].headers["X-CareInbox-Event-Id"] == delivery.event_id
    assert delivery.attempt_log.count() == 4
    endpoint.refresh_from_db()
    assert not endpoint.is_failing


def test_redelivery_replays_the_same_event_id_and_body(
    org_admin: Persona, receiver: Receiver
) -> None:
    _endpoint(org_admin, receiver.url)
    (delivery,) = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED))
    delivery_attempt(delivery_id=delivery.pk)
    delivery_redeliver(delivery=delivery, by=org_admin.user)
    with pytest.raises(RedeliverError):
        delivery_redeliver(delivery=delivery, by=org_admin.user)  # already on its way
    assert delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    first, again = receiver.received
    assert first.body == again.body
    assert first.headers["X-CareInbox-Event-Id"] == again.headers["X-CareInbox-Event-Id"]
    assert json.loads(again.body)["id"] == delivery.event_id
    assert AuditEntry.objects.filter(action="redelivered").count() == 1


def test_a_timeout_and_a_refused_connection_are_retried(
    org_admin: Persona, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.script = [Answer(200, delay=2.5)]
    _endpoint(org_admin, receiver.url)
    (slow,) = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED))
    assert delivery_attempt(delivery_id=slow.pk) == "retrying"
    attempt = WebhookAttempt.objects.get(delivery=slow)
    assert attempt.status_code is None and "No answer within 1 s" in attempt.error
    closed, _ = _endpoint(org_admin, "http://127.0.0.1:9/hooks", ["ticket.closed"])
    made = deliveries_for_event(_ticket(org_admin.organization).record(EventKind.CLOSED_AS_SPAM))
    (refused,) = [delivery for delivery in made if delivery.endpoint_id == closed.pk]
    assert delivery_attempt(delivery_id=refused.pk) == "retrying"
    assert "ConnectionError" in WebhookAttempt.objects.get(delivery=refused).error


def test_a_disabled_endpoint_gets_nothing(org_admin: Persona, receiver: Receiver) -> None:
    endpoint, _ = _endpoint(org_admin, receiver.url)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    assert deliveries_for_event(_ticket(org_admin.organization).record(EventKind.OPENED)) == []


def test_the_secret_is_encrypted_at_rest_and_shown_masked(
    org_admin: Persona, receiver: Receiver
) -> None:
    endpoint, secret = _endpoint(org_admin, receiver.url)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_store FROM webhooks_webhookendpoint WHERE id = %s", [endpoint.pk]
        )
        (stored,) = cursor.fetchone()
    assert secret not in stored and secret.startswith("whsec_")
    endpoint.refresh_from_db()
    assert endpoint.secret == secret
    assert endpoint.masked_secret == f"whsec_…{secret[-4:]}"
    rotated = endpoint_rotate_secret(endpoint=endpoint, by=org_admin.user)
    endpoint.refresh_from_db()
    assert rotated != secret and endpoint.secret == rotated
    audit = AuditEntry.objects.filter(action__in=["created", "secret rotated"])
    assert audit.count() == 2
    assert all(secret not in json.dumps([entry.before, entry.after]) for entry in audit)
    assert all(rotated not in json.dumps([entry.before, entry.after]) for entry in audit)


# --- No SSRF in production ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9200/hooks",
        "http://localhost/hooks",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
def test_private_and_loopback_addresses_are_refused_in_production(url: str, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    problem = address_problem(url)
    assert problem is not None and "public addresses only" in problem


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://example.com/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://user:pw@93.184.216.34/", "user name or password"),
        ("https:///nohost", "no host"),
    ],
)
def test_other_schemes_and_credentials_in_the_url_are_refused(url: str, words: str) -> None:
    problem = address_problem(url)
    assert problem is not None and words in problem


def test_a_public_address_is_allowed_in_production(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    assert address_problem("https://93.184.216.34/hooks") is None


def test_the_form_and_the_attempt_refuse_a_private_address_in_production(
    org_admin: Persona, receiver: Receiver, settings: Any
) -> None:
    endpoint, secret = _endpoint(org_admin, receiver.url)  # allowed while testing
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    form = WebhookEndpointForm(
        {"name": "Internal", "url": receiver.url, "events": ["ticket.created"], "enabled": "on"},
        organization=org_admin.organization,
    )
    assert not form.is_valid()
    assert "public addresses only" in form.errors["url"][0]
    result = post_signed(
        url=endpoint.url, secret=secret, body="{}", event_type="ping", event_id="e", delivery_id=1
    )
    assert not result.succeeded and not result.retryable
    assert receiver.received == []  # never called


# --- The settings section --------------------------------------------------------------------


def test_the_settings_pages_create_show_the_secret_once_and_log_deliveries(
    org_admin: Persona, agent: Persona, receiver: Receiver
) -> None:
    client = org_admin.client()
    response = client.post(
        reverse("webhooks:endpoint-new"),
        {
            "name": "CRM",
            "url": receiver.url,
            "events": ["ticket.created", "sla.breached"],
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(organization=org_admin.organization, name="CRM")
    assert endpoint.secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    page = client.get(reverse("webhooks:endpoint", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in page and endpoint.masked_secret in page
    assert "CRM" in client.get(reverse("webhooks:endpoints")).content.decode()

    # Test ping: queued, then sent (here by hand), in the log with its attempt.
    client.post(reverse("webhooks:endpoint-test", args=[endpoint.pk]))
    ping = WebhookDelivery.objects.get(endpoint=endpoint, event_type="ping")
    assert delivery_attempt(delivery_id=ping.pk) == "succeeded"
    assert json.loads(receiver.received[0].body)["type"] == "ping"
    page = client.get(reverse("webhooks:endpoint", args=[endpoint.pk])).content.decode()
    assert ping.event_id in page
    detail = client.get(reverse("webhooks:delivery", args=[ping.pk])).content.decode()
    assert "HTTP 200" in detail and "Redeliver" in detail
    client.post(reverse("webhooks:delivery-redeliver", args=[ping.pk]))
    ping.refresh_from_db()
    assert ping.state == DeliveryState.PENDING

    # Edit, disable, rotate.
    response = client.post(
        reverse("webhooks:endpoint", args=[endpoint.pk]),
        {"name": "CRM 2", "url": receiver.url, "events": ["ticket.closed"], "enabled": "on"},
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.events) == ("CRM 2", ["ticket.closed"])
    client.post(reverse("webhooks:endpoint-toggle", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert endpoint.enabled is False
    old = endpoint.secret
    response = client.post(reverse("webhooks:endpoint-rotate", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in response.content.decode()

    # A bad address is refused at its field, nothing saved.
    response = client.post(
        reverse("webhooks:endpoint-new"),
        {"name": "Bad", "url": "ftp://example.com/", "events": ["ticket.created"]},
    )
    assert response.status_code == 422 and "http:// or https://" in response.content.decode()
    assert not WebhookEndpoint.objects.filter(name="Bad").exists()

    # Agents do not see the section at all.
    assert agent.client().get(reverse("webhooks:endpoints")).status_code == 404
    client.post(reverse("webhooks:endpoint-delete", args=[endpoint.pk]))
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_a_ping_is_signed_like_any_event(org_admin: Persona, receiver: Receiver) -> None:
    endpoint, secret = _endpoint(org_admin, receiver.url)
    ping = endpoint_ping(endpoint=endpoint, by=org_admin.user)
    delivery_attempt(delivery_id=ping.pk)
    (request,) = receiver.received
    assert verify(
        secret,
        body=request.body,
        timestamp=request.headers["X-CareInbox-Timestamp"],
        header=request.headers["X-CareInbox-Signature"],
    )


def test_lost_and_stuck_deliveries_are_sent_again(org_admin: Persona, receiver: Receiver) -> None:
    from monitoring.webhooks.services import requeue_lost_deliveries

    _endpoint(org_admin, receiver.url)
    ticket = _ticket(org_admin.organization)
    (lost,) = deliveries_for_event(ticket.record(EventKind.OPENED))
    (stuck,) = deliveries_for_event(ticket.record(EventKind.ACKNOWLEDGE))
    (fresh,) = deliveries_for_event(ticket.record(EventKind.RESOLVE))
    long_ago = timezone.now() - timedelta(minutes=10)
    WebhookDelivery.objects.filter(pk=lost.pk).update(created_at=long_ago)
    WebhookDelivery.objects.filter(pk=stuck.pk).update(
        created_at=long_ago, state=DeliveryState.SENDING, claimed_at=long_ago
    )
    assert requeue_lost_deliveries() == 2  # the fresh one's own task is still on its way
    stuck.refresh_from_db()
    assert stuck.state == DeliveryState.PENDING and stuck.claimed_at is None
    fresh.refresh_from_db()
    assert fresh.state == DeliveryState.PENDING
    # Whichever task comes first sends it; the other finds nothing to do.
    assert delivery_attempt(delivery_id=stuck.pk) == "succeeded"
    assert delivery_attempt(delivery_id=stuck.pk) == "skipped"
