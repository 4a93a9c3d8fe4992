"""Outbound webhooks: the events they carry, the admin's changes to endpoints, and delivery.

A ticket event is turned into deliveries by ``deliveries_for_event`` (subscribed on the event
seam, so it runs after the event's transaction committed, at least once: the unique
``(endpoint, event_id)`` makes a repeat a no-op). Each delivery is enqueued after commit and
sent by a thin task (``tasks.deliver_webhook_event``) that calls ``delivery_attempt``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Organization, User
from careinbox.audit import record_change
from careinbox.notifications.services import notify_admins
from careinbox.notifications.webhooks import describe_url
from monitoring.models import SlaEventKind
from monitoring.webhooks.delivery import post_signed
from monitoring.webhooks.models import (
    PING,
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)
from tickets.closing import CLOSING_KINDS, closing_of
from tickets.models import STEP_RULES, EventKind, Ticket, TicketEvent

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d1b52-3f0c-4c55-9a0e-6c0a6a3f7e21")

# Which ticket events are which webhook events (a close-out is a step change and a close).
STEP_KINDS = {
    EventKind.ACKNOWLEDGE,
    EventKind.TAKE_OFFLINE,
    EventKind.RESOLVE,
    EventKind.CLOSE_OUT,
    EventKind.STEP_SKIPPED,
    EventKind.STEP_REOPENED,
    EventKind.REOPENED,
}


def webhook_types(kind: str) -> list[str]:
    types = []
    if kind == EventKind.OPENED:
        types.append(WebhookEventType.TICKET_CREATED)
    if kind in STEP_KINDS:
        types.append(WebhookEventType.TICKET_STEP_CHANGED)
    if kind in CLOSING_KINDS:
        types.append(WebhookEventType.TICKET_CLOSED)
    if kind == SlaEventKind.SLA_WARNING:
        types.append(WebhookEventType.SLA_WARNING)
    if kind == SlaEventKind.SLA_BREACHED:
        types.append(WebhookEventType.SLA_BREACHED)
    return [str(value) for value in types]


SUBSCRIBED_KINDS = [
    EventKind.OPENED,
    *STEP_KINDS,
    *CLOSING_KINDS,
    SlaEventKind.SLA_WARNING,
    SlaEventKind.SLA_BREACHED,
]


def event_id_for(event: TicketEvent, event_type: str) -> str:
    """The same ticket event gives the same id for the same type, however often it is handled."""
    return "evt_" + uuid.uuid5(_NAMESPACE, f"{event.pk}:{event_type}").hex


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_data(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.pk,
        "url": reverse("tickets:detail", args=[ticket.pk]),
        "status": ticket.status,
        "priority": ticket.priority,
        "platform": ticket.platform,
        "is_public": ticket.is_public,
        "brand_id": ticket.brand_id,
        "channel_id": ticket.social_account_id,
        "customer": {
            "external_id": ticket.customer_external_id,
            "username": ticket.customer_username,
            "display_name": ticket.customer_display_name,
            "followers": ticket.customer_followers,
        },
        "assigned_to_id": ticket.assigned_to_id,
        "team_id": ticket.team_id,
        "opened_at": _iso(ticket.opened_at),
        "closed_at": _iso(ticket.closed_at),
    }


def _event_data(event: TicketEvent, event_type: str) -> dict[str, Any]:
    data = event.data or {}
    details: dict[str, Any] = {"kind": event.kind, "at": _iso(event.at)}
    details["actor"] = event.actor.username if event.actor_id and event.actor else None
    if event_type == WebhookEventType.TICKET_STEP_CHANGED:
        if event.kind == EventKind.STEP_REOPENED:
            step = data.get("step", "")
            details.update(change="reopened", step=step, cause=data.get("cause", ""))
            details["status"] = STEP_RULES[step].requires if step in STEP_RULES else None
        elif event.kind == EventKind.REOPENED:
            details.update(change="reopened_by_customer", step=None, status=data.get("status"))
        elif event.kind == EventKind.STEP_SKIPPED:
            step = data.get("step", "")
            details.update(change="skipped", step=step, reason=data.get("reason", ""))
            details["status"] = STEP_RULES[step].leads_to if step in STEP_RULES else None
        else:
            details.update(change="taken", step=event.kind, status=STEP_RULES[event.kind].leads_to)
    elif event_type == WebhookEventType.TICKET_CLOSED:
        closing = closing_of(event.kind, data)
        # ``reason`` is what the close recorded (a merge records none), as it always was.
        details.update(how=closing.how if closing else "", reason=data.get("reason", ""))
    elif event_type in (WebhookEventType.SLA_WARNING, WebhookEventType.SLA_BREACHED):
        details.update(metric=data.get("metric"), due_at=data.get("due_at"))
    return details


def _body(event_id: str, event_type: str, organization_id: int, data: dict[str, Any]) -> str:
    envelope = {
        "id": event_id,
        "type": event_type,
        "created_at": timezone.now().isoformat(),
        "organization_id": organization_id,
        "data": data,
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _enqueue(delivery_id: int, *, countdown: float = 0) -> None:
    from monitoring.webhooks.tasks import deliver_webhook_event

    def send() -> None:
        deliver_webhook_event.apply_async((delivery_id,), countdown=countdown)

    transaction.on_commit(send, robust=True)


def deliveries_for_event(event: TicketEvent) -> list[WebhookDelivery]:
    """The event seam's handler: one delivery per endpoint of the event's organisation that
    chose one of its webhook types (none for another organisation's endpoints)."""
    types = webhook_types(event.kind)
    if not types:
        return []
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(
            organization_id=event.organization_id, enabled=True
        )
        if any(endpoint.wants(event_type) for event_type in types)
    ]
    if not endpoints:
        return []
    ticket = event.ticket
    created = []
    for event_type in types:
        wanting = [endpoint for endpoint in endpoints if endpoint.wants(event_type)]
        if not wanting:
            continue
        event_id = event_id_for(event, event_type)
        already = set(
            WebhookDelivery.objects.filter(endpoint__in=wanting, event_id=event_id).values_list(
                "endpoint_id", flat=True
            )
        )
        data = {"ticket": ticket_data(ticket), "event": _event_data(event, event_type)}
        body = _body(event_id, event_type, event.organization_id, data)
        for endpoint in wanting:
            if endpoint.pk in already:
                continue
            try:
                with transaction.atomic():
                    delivery = WebhookDelivery.objects.create(
                        organization_id=event.organization_id,
                        endpoint=endpoint,
                        event_id=event_id,
                        event_type=event_type,
                        ticket_event=event,
                        body=body,
                    )
            except IntegrityError:
                continue  # handled concurrently: that delivery stands
            created.append(delivery)
            _enqueue(delivery.pk)
    return created


def deliveries_for_events(events: Iterable[TicketEvent]) -> int:
    """``deliveries_for_event`` for a delivery's events at once (an SLA sweep's hundreds of
    breaches and warnings, a poll's batch), set-based: one read of the enabled endpoints of
    their organisations, one of the deliveries already made, one insert of the rest, one read
    of their ids to enqueue; the same rows as one event at a time. Returns how many it made."""
    wanted = [event for event in events if webhook_types(event.kind)]
    if not wanted:
        return 0
    endpoints_of: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(
        organization_id__in={event.organization_id for event in wanted}, enabled=True
    ).order_by("pk"):
        endpoints_of.setdefault(endpoint.organization_id, []).append(endpoint)
    candidates: list[tuple[TicketEvent, str, str, list[WebhookEndpoint]]] = []
    for event in wanted:
        endpoints = endpoints_of.get(event.organization_id, [])
        for event_type in webhook_types(event.kind):
            wanting = [endpoint for endpoint in endpoints if endpoint.wants(event_type)]
            if wanting:
                candidates.append((event, event_type, event_id_for(event, event_type), wanting))
    if not candidates:
        return 0
    event_ids = [event_id for _e, _t, event_id, _w in candidates]
    already = set(
        WebhookDelivery.objects.filter(event_id__in=event_ids).values_list(
            "endpoint_id", "event_id"
        )
    )
    actors = {
        user.pk: user
        for user in User.objects.filter(
            pk__in={event.actor_id for event, *_ in candidates if event.actor_id}
        )
    }
    rows: list[WebhookDelivery] = []
    for event, event_type, event_id, wanting in candidates:
        todo = [endpoint for endpoint in wanting if (endpoint.pk, event_id) not in already]
        if not todo:
            continue
        if event.actor_id:
            event.actor = actors.get(event.actor_id)
        data = {"ticket": ticket_data(event.ticket), "event": _event_data(event, event_type)}
        body = _body(event_id, event_type, event.organization_id, data)
        rows += [
            WebhookDelivery(
                organization_id=event.organization_id,
                endpoint=endpoint,
                event_id=event_id,
                event_type=event_type,
                ticket_event=event,
                body=body,
            )
            for endpoint in todo
        ]
    if not rows:
        return 0
    # A delivery made concurrently for the same endpoint and event stands (the unique
    # constraint); both are enqueued then, and the delivery's claim sends it once.
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    made = WebhookDelivery.objects.filter(
        event_id__in=[row.event_id for row in rows], state=DeliveryState.PENDING, attempts=0
    ).values_list("pk", flat=True)
    made_ids = sorted(made)
    for delivery_id in made_ids:
        _enqueue(delivery_id)
    return len(rows)


# --- Delivery --------------------------------------------------------------------------------


def retry_delay(attempt_number: int) -> int:
    """Seconds before the attempt after ``attempt_number``: exponential, full jitter."""
    return int(
        get_exponential_backoff_interval(
            factor=settings.WEBHOOK_RETRY_BASE_SECONDS,
            retries=attempt_number - 1,
            maximum=3600,
            full_jitter=True,
        )
    )


def delivery_attempt(*, delivery_id: int) -> str:
    """Claim a due delivery, send it once, and record what happened; returns the outcome
    (``skipped`` when it was not due: already sent, being sent, or waiting for its retry)."""
    now = timezone.now()
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING)
        .exclude(next_attempt_at__gt=now + timedelta(seconds=1))
        .update(state=DeliveryState.SENDING, claimed_at=now)
    )
    if not claimed:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled and delivery.event_type != PING:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            state=DeliveryState.FAILED, last_error="The endpoint is disabled."
        )
        return "disabled"
    result = post_signed(
        url=endpoint.url,
        secret=endpoint.secret,
        body=delivery.body,
        event_type=delivery.event_type,
        event_id=delivery.event_id,
        delivery_id=delivery.pk,
    )
    number = delivery.attempts + 1
    finished = timezone.now()
    retry_at = None
    if not result.succeeded and result.retryable and number < settings.WEBHOOK_MAX_ATTEMPTS:
        retry_at = finished + timedelta(seconds=retry_delay(number))
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=now,
            duration_ms=result.duration_ms,
            status_code=result.status_code,
            succeeded=result.succeeded,
            error=result.error,
            response_excerpt=result.response_excerpt,
            will_retry_at=retry_at,
        )
        update: dict[str, Any] = {
            "attempts": number,
            "last_status_code": result.status_code,
            "last_error": result.error,
            "claimed_at": None,
        }
        if result.succeeded:
            update.update(state=DeliveryState.SUCCEEDED, delivered_at=finished)
            outcome = "succeeded"
        elif retry_at is not None:
            update.update(state=DeliveryState.PENDING, next_attempt_at=retry_at)
            outcome = "retrying"
        else:
            update.update(state=DeliveryState.FAILED, next_attempt_at=None)
            outcome = "failed"
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**update)
        if result.succeeded and endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                failing_since=None, failure_reason=""
            )
        elif outcome == "failed":
            _mark_failing(endpoint, delivery, result.status_code, result.error, number)
        elif retry_at is not None:
            _enqueue(delivery.pk, countdown=(retry_at - finished).total_seconds())
    return outcome


def _mark_failing(
    endpoint: WebhookEndpoint,
    delivery: WebhookDelivery,
    status_code: int | None,
    error: str,
    attempts: int,
) -> None:
    said = f"answered {status_code}" if status_code is not None else (error or "no answer")
    reason = f"{delivery.event_type} {delivery.event_id}: {said} (attempt {attempts})"[:300]
    since = endpoint.failing_since or timezone.now()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=since, failure_reason=reason
    )
    log.warning("webhook endpoint %s gave up on %s: %s", endpoint.pk, delivery.event_id, said)
    notify_admins(
        endpoint.organization,
        f"Webhook “{endpoint.name}” is failing",
        body=f"A delivery to {describe_url(endpoint.url)} gave up after {attempts} "
        f"attempt(s): {said}. See the delivery log; redeliver once the receiver is fixed.",
        url=reverse("webhooks:endpoint", args=[endpoint.pk]),
        kind="webhook",
        dedupe_key=f"webhook-failing:{endpoint.pk}:{since.timestamp():.0f}",
    )


def requeue_lost_deliveries(*, now: Any = None) -> int:
    """Beat's safety net: a delivery whose task was lost (broker restart) or whose worker died
    mid-attempt is sent again (receivers dedupe by event id, so a repeat is harmless)."""
    now = now or timezone.now()
    stuck_before = now - timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 3 + 60)
    WebhookDelivery.objects.filter(state=DeliveryState.SENDING, claimed_at__lt=stuck_before).update(
        state=DeliveryState.PENDING, claimed_at=None, next_attempt_at=None
    )
    lost = list(
        WebhookDelivery.objects.filter(
            state=DeliveryState.PENDING, created_at__lt=now - timedelta(seconds=60)
        )
        .exclude(next_attempt_at__gt=now - timedelta(seconds=60))
        .values_list("pk", flat=True)[:500]
    )
    for pk in lost:
        _enqueue(pk)
    return len(lost)


# --- The admin's changes (settings page and API alike) ---------------------------------------

AUDITED = ("name", "url", "events", "enabled")


def _audit_values(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "url": describe_url(endpoint.url),  # a path may be the receiver's own secret
        "events": sorted(endpoint.events),
        "enabled": endpoint.enabled,
    }


def endpoint_create(
    *,
    organization: Organization,
    by: User,
    name: str,
    url: str,
    events: Iterable[str],
    enabled: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (shown once, by the caller, never again)."""
    with transaction.atomic():
        endpoint = WebhookEndpoint(
            organization=organization,
            name=name,
            url=url,
            events=sorted(set(events)),
            enabled=enabled,
            created_by=by,
        )
        secret = endpoint.set_new_secret()
        endpoint.save()
        record_change(
            organization,
            by,
            "created",
            endpoint,
            object_type="webhook endpoint",
            after=_audit_values(endpoint),
        )
    return endpoint, secret


def endpoint_update(
    *, endpoint: WebhookEndpoint, by: User, changes: dict[str, Any]
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _audit_values(endpoint)
        for field in AUDITED:
            if field in changes:
                value = changes[field]
                setattr(endpoint, field, sorted(set(value)) if field == "events" else value)
        if changes.get("enabled") and not before["enabled"]:
            endpoint.failing_since, endpoint.failure_reason = None, ""
        endpoint.save()
        record_change(
            endpoint.organization,
            by,
            "updated",
            endpoint,
            object_type="webhook endpoint",
            before=before,
            after=_audit_values(endpoint),
        )
    return endpoint


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, by: User) -> str:
    """A new secret at once (the old one stops being used); returns it, to be shown once."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        secret = endpoint.set_new_secret()
        endpoint.save(update_fields=["secret_store", "secret_last4", "secret_rotated_at"])
        record_change(
            endpoint.organization,
            by,
            "secret rotated",
            endpoint,
            object_type="webhook endpoint",
            after={"secret": endpoint.masked_secret},
        )
    return secret


def endpoint_delete(*, endpoint: WebhookEndpoint, by: User) -> None:
    with transaction.atomic():
        record_change(
            endpoint.organization,
            by,
            "deleted",
            endpoint,
            object_type="webhook endpoint",
            before=_audit_values(endpoint),
        )
        endpoint.delete()


def endpoint_ping(*, endpoint: WebhookEndpoint, by: User) -> WebhookDelivery:
    """A ``ping`` event to the endpoint, signed like every other (to test the receiver)."""
    event_id = "evt_" + uuid.uuid4().hex
    body = _body(
        event_id,
        PING,
        endpoint.organization_id,
        {"endpoint_id": endpoint.pk, "message": "A test from CareInbox.", "sent_by": by.username},
    )
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            organization_id=endpoint.organization_id,
            endpoint=endpoint,
            event_id=event_id,
            event_type=PING,
            body=body,
        )
        _enqueue(delivery.pk)
    return delivery


class RedeliverError(Exception):
    pass


def delivery_redeliver(*, delivery: WebhookDelivery, by: User) -> WebhookDelivery:
    """Send a finished delivery again: the same body and event id (receivers that saw it
    dedupe), as a new attempt in the same log."""
    with transaction.atomic():
        changed = WebhookDelivery.objects.filter(
            pk=delivery.pk, state__in=[DeliveryState.SUCCEEDED, DeliveryState.FAILED]
        ).update(state=DeliveryState.PENDING, next_attempt_at=None, last_error="")
        if not changed:
            raise RedeliverError("This delivery is still on its way; wait for it to finish.")
        record_change(
            delivery.organization,
            by,
            "redelivered",
            delivery.endpoint,
            object_type="webhook endpoint",
            after={"event_id": delivery.event_id, "event_type": delivery.event_type},
        )
        _enqueue(delivery.pk)
    delivery.refresh_from_db()
    return delivery
