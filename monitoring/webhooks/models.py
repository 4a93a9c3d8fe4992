"""An organisation's webhook endpoints, each event's delivery to one of them, and every attempt."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from careinbox.accounts.models import Organization, User
from careinbox.crypto import EncryptedJSONField
from careinbox.tenancy import OrgQuerySet

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix, not a secret


class WebhookEventType(models.TextChoices):
    """What an endpoint can subscribe to (``ping`` is sent only when an admin asks)."""

    TICKET_CREATED = "ticket.created", "A ticket was opened"
    TICKET_STEP_CHANGED = "ticket.step_changed", "A ticket moved a care step (or went back one)"
    SLA_WARNING = "sla.warning", "An SLA target is at risk"
    SLA_BREACHED = "sla.breached", "An SLA target was breached"
    TICKET_CLOSED = "ticket.closed", "A ticket was closed"


PING = "ping"


class WebhookEndpoint(models.Model):
    """An address of the organisation's own system that receives the events it chose, signed
    with its secret (encrypted at rest like channel credentials; shown once, then masked)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="WebhookEventType values")
    enabled = models.BooleanField(default=True)
    # {"secret": "whsec_…"}: a Fernet token in the column, never the plain value.
    secret_store = EncryptedJSONField(default=dict)
    secret_last4 = models.CharField(max_length=4, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    # Set when a delivery gave up after every attempt; cleared by the next success.
    failing_since = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="webhook_name_per_org")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def secret(self) -> str:
        return str(self.secret_store.get("secret", ""))

    @property
    def masked_secret(self) -> str:
        return f"{SECRET_PREFIX}…{self.secret_last4}" if self.secret_last4 else "(none)"

    def set_new_secret(self) -> str:
        """A new random secret (returned: the one moment it is shown); the caller saves."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        self.secret_store = {"secret": secret}
        self.secret_last4 = secret[-4:]
        self.secret_rotated_at = timezone.now()
        return secret

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.events

    @property
    def is_failing(self) -> bool:
        return self.failing_since is not None


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Sending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Gave up"


class WebhookDeliveryQuerySet(OrgQuerySet["WebhookDelivery"]):
    pass


class WebhookDelivery(models.Model):
    """One event for one endpoint: the exact body (every attempt and every redelivery sends
    the same bytes, with the same event id, so receivers can dedupe), its state and its tries.

    ``(endpoint, event_id)`` is unique: the event seam delivers at least once, and a second
    delivery of the same ticket event finds the row and changes nothing."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=40)
    ticket_event = models.ForeignKey(
        "tickets.TicketEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="webhook_delivery_once_per_event"
            )
        ]
        indexes = [
            models.Index(
                fields=["state", "next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(state__in=["pending", "sending"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery, as the delivery log shows it."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    # A connection error, a timeout, an address refused; empty when the receiver answered.
    error = models.CharField(max_length=300, blank=True)
    # The first characters of the receiver's answer (never more, whatever it sent).
    response_excerpt = models.CharField(max_length=500, blank=True)
    will_retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
