"""SLA policies and timers.

A timer is a row per target per ticket (today only the first response; next response, take
offline, resolution and close-out targets come later as further ``Metric`` values). It starts
when the ticket opens, is fulfilled by the event that meets the target, and is met or breached.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from careinbox.accounts.models import Organization
from careinbox.tenancy import OrgQuerySet

DEFAULT_FIRST_RESPONSE_MINUTES = 60


class SlaPolicy(models.Model):
    """An organisation's SLA targets, in calendar minutes."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="sla_policy"
    )
    first_response_minutes = models.PositiveIntegerField(
        default=DEFAULT_FIRST_RESPONSE_MINUTES,
        validators=[MinValueValidator(1), MaxValueValidator(60 * 24 * 14)],
        help_text="Time from the customer's first post to the brand's first public reply.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"

    def __str__(self) -> str:
        return f"SLA policy of {self.organization}"

    def first_response_due(self, started_at: datetime) -> datetime:
        return started_at + timedelta(minutes=self.first_response_minutes)

    @classmethod
    def for_org(cls, organization: Organization) -> SlaPolicy:
        policy, _ = cls.objects.get_or_create(organization=organization)
        return policy


class SlaEventKind(models.TextChoices):
    """The ticket events monitoring records (registered with ``tickets.events``)."""

    SLA_MET = "sla_met", "SLA met"
    SLA_BREACHED = "sla_breached", "SLA breached"


class Metric(models.TextChoices):
    FIRST_RESPONSE = "first_response", "First response"


class TimerState(models.TextChoices):
    ACTIVE = "active", "Running"
    MET = "met", "Met"
    BREACHED = "breached", "Breached"


class SlaTimerQuerySet(OrgQuerySet["SlaTimer"]):
    def active(self) -> SlaTimerQuerySet:
        return self.filter(state=TimerState.ACTIVE)

    def overdue(self, now: datetime) -> SlaTimerQuerySet:
        return self.active().filter(due_at__lt=now)


class SlaTimer(models.Model):
    """One SLA target on one ticket: when it started, when it is due, and how it ended."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(
        "tickets.Ticket", on_delete=models.CASCADE, related_name="sla_timers"
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    target_minutes = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    due_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=TimerState.choices, default=TimerState.ACTIVE)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)

    objects = SlaTimerQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ticket", "metric"], name="one_timer_per_metric")
        ]
        indexes = [models.Index(fields=["state", "due_at"], name="sla_timer_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_metric_display()} on ticket {self.ticket_id}: {self.state}"

    @property
    def elapsed(self) -> timedelta | None:
        return self.fulfilled_at - self.started_at if self.fulfilled_at else None
