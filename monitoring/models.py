"""SLA policies and timers.

An organisation has an ordered list of policies; a ticket follows the first one whose brand,
platform and priority match (``monitoring.policies.policy_for``). A policy names up to five
targets, in business minutes of its calendar, and a warning threshold.

A timer is a row per target per ticket: it starts from an event (the customer's post, a
customer message awaiting a reply, a reopen), runs on the policy's business calendar, may pause
while the brand waits on the customer, and ends met or breached. Ended rows are kept, so a
ticket has one row per customer message for the next response and one per reopen for the
resolution and close-out, and reports see each one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from careinbox.accounts.models import Organization
from careinbox.tenancy import OrgQuerySet
from channels_social.models import Brand, Platform, SocialAccount
from monitoring.calendars import WEEKDAYS, BusinessCalendar, CalendarError
from tickets.models import Priority

DEFAULT_FIRST_RESPONSE_MINUTES = 60
DEFAULT_WARNING_PERCENT = 75
RESPONSE_MAX_MINUTES = 60 * 24 * 14
CASE_MAX_MINUTES = 60 * 24 * 90


def always_open_config() -> dict[str, Any]:
    return BusinessCalendar.always_open("UTC").to_config()


class Metric(models.TextChoices):
    """The five targets, in the order a ticket meets them."""

    FIRST_RESPONSE = "first_response", "First response"
    NEXT_RESPONSE = "next_response", "Next response"
    TAKE_OFFLINE = "take_offline", "Take offline"
    RESOLUTION = "resolution", "Resolution"
    CLOSE_OUT = "close_out", "Public close-out"


def _target_field(help_text: str, maximum: int) -> models.PositiveIntegerField[Any, Any]:
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(maximum)],
        help_text=f"{help_text} In business minutes; empty: no target.",
    )


class SlaPolicy(models.Model):
    """A set of SLA targets for the tickets it matches (brand, platform, handle, priority; empty
    is any), counted on a business calendar. An organisation's policies are tried in
    ``position`` order and the first that matches wins; the list must end in a catch-all."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="sla_policies"
    )
    position = models.PositiveIntegerField(default=0, help_text="Lower is tried first.")
    name = models.CharField(max_length=100, default="Default")
    brand = models.ForeignKey(
        Brand, null=True, blank=True, on_delete=models.CASCADE, help_text="Empty: any brand."
    )
    platform = models.CharField(
        max_length=16, choices=Platform.choices, blank=True, help_text="Empty: any platform."
    )
    social_account = models.ForeignKey(
        SocialAccount,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name="handle",
        help_text="Empty: any handle. One handle narrows further than its platform.",
    )
    priority = models.PositiveSmallIntegerField(
        choices=Priority.choices, null=True, blank=True, help_text="Empty: any priority."
    )

    first_response_minutes = _target_field(
        "From the customer's post to the brand's first public reply the platform accepted.",
        RESPONSE_MAX_MINUTES,
    )
    next_response_minutes = _target_field(
        "From each later customer message to the brand's next reply.", RESPONSE_MAX_MINUTES
    )
    take_offline_minutes = _target_field(
        "From the acknowledgement to the direct message that takes the case offline.",
        RESPONSE_MAX_MINUTES,
    )
    resolution_minutes = _target_field(
        "From the customer's post (or a reopen) to the resolution message.", CASE_MAX_MINUTES
    )
    close_out_minutes = _target_field(
        "From the customer's post (or a reopen) to the public close-out.", CASE_MAX_MINUTES
    )
    warning_percent = models.PositiveSmallIntegerField(
        default=DEFAULT_WARNING_PERCENT,
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="Warn when this share of a target's business time has passed.",
    )
    time_zone = models.CharField(
        max_length=64, default="UTC", help_text="The zone of the opening hours, e.g. Europe/London."
    )
    calendar = models.JSONField(
        default=always_open_config,
        help_text='Opening hours as BusinessCalendar.to_config() writes them: "hours" per '
        'weekday ("mon": "08:00-20:00", or "closed"), "holiday_country" / '
        '"holiday_subdivision" (e.g. "GB" / "ENG"), "closed_dates" ["2026-12-24"], '
        '"special_hours" {"2026-12-31": "08:00-12:00"}.',
    )
    apply_to_running = models.BooleanField(
        default=True,
        help_text="A change of targets or hours recomputes the due times of running timers "
        "(recorded on each ticket); otherwise it applies to timers started afterwards.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        ordering = ["organization", "position", "pk"]
        indexes = [models.Index(fields=["organization", "position"], name="sla_policy_order_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The stored calendar is always exactly what to_config() wrote, in the policy's zone.
        self.calendar = self.calendar_config()
        self.__dict__.pop("business_calendar", None)
        super().save(*args, **kwargs)

    # The calendar -----------------------------------------------------------------------------

    def calendar_config(self) -> dict[str, Any]:
        return {**(self.calendar or {}), "time_zone": self.time_zone}

    @cached_property
    def business_calendar(self) -> BusinessCalendar:
        return BusinessCalendar.from_config(self.calendar_config())

    @property
    def hours_summary(self) -> str:
        """The calendar in a line: "24/7, Europe/London" or "mon-fri 09:00-17:00, Europe/Berlin,
        holidays DE-BY, 2 other closed dates"."""
        config = self.calendar_config()
        hours = config.get("hours", {})
        if all(hours.get(day) == "00:00-24:00" for day in WEEKDAYS):
            parts = ["24/7"]
        else:
            runs: list[tuple[list[str], str]] = []
            for day in WEEKDAYS:
                text = hours.get(day, "closed")
                if runs and runs[-1][1] == text:
                    runs[-1][0].append(day)
                else:
                    runs.append(([day], text))
            parts = [
                f"{days[0]}-{days[-1]} {text}" if len(days) > 1 else f"{days[0]} {text}"
                for days, text in runs
                if text != "closed"
            ]
        parts.append(self.time_zone)
        if config.get("holiday_country"):
            region = config.get("holiday_subdivision")
            parts.append(f"holidays {config['holiday_country']}{f'-{region}' if region else ''}")
        if closed := len(config.get("closed_dates", [])):
            parts.append(f"{closed} other closed date{'s' if closed > 1 else ''}")
        if special := len(config.get("special_hours", {})):
            parts.append(f"{special} date{'s' if special > 1 else ''} with special hours")
        return ", ".join(parts)

    def clean(self) -> None:
        try:
            calendar = BusinessCalendar.from_config(self.calendar_config())
        except (CalendarError, TypeError, AttributeError) as error:
            field = "time_zone" if "time zone" in str(error) else "calendar"
            raise ValidationError({field: str(error)}) from error
        self.calendar = calendar.to_config()
        self.__dict__.pop("business_calendar", None)
        brand = self.brand if self.brand_id else None
        if (
            brand is not None
            and self.organization_id
            and brand.organization_id != (self.organization_id)
        ):
            raise ValidationError({"brand": "That brand belongs to another organisation."})
        handle = self.social_account if self.social_account_id else None
        if handle is not None:
            if self.organization_id and handle.organization_id != self.organization_id:
                raise ValidationError(
                    {"social_account": "That handle belongs to another organisation."}
                )
            if brand is not None and handle.brand_id != brand.pk:
                raise ValidationError(
                    {"social_account": f"@{handle.username} is not a handle of {brand}."}
                )
            if self.platform and handle.platform != self.platform:
                raise ValidationError(
                    {
                        "social_account": f"@{handle.username} is not on "
                        f"{self.get_platform_display()}."
                    }
                )

    # Matching and targets -----------------------------------------------------------------

    @property
    def is_catch_all(self) -> bool:
        """Matches every ticket: no brand, platform, handle or priority narrows it."""
        return (
            self.brand_id is None
            and not self.platform
            and self.social_account_id is None
            and self.priority is None
        )

    def matches(
        self,
        *,
        brand_id: int,
        platform: str,
        priority: int,
        social_account_id: int | None = None,
    ) -> bool:
        return (
            (self.brand_id is None or self.brand_id == brand_id)
            and (not self.platform or self.platform == platform)
            and (self.social_account_id is None or self.social_account_id == social_account_id)
            and (self.priority is None or self.priority == priority)
        )

    def target_minutes(self, metric: str) -> int | None:
        value: int | None = getattr(self, f"{metric}_minutes")
        return value

    def due(self, started_at: datetime, minutes: int, *, paused: timedelta) -> datetime:
        """The instant ``minutes`` of business time (plus the time spent paused) have passed."""
        return self.business_calendar.add_business_time(
            started_at, timedelta(minutes=minutes) + paused
        )

    def warn(self, started_at: datetime, minutes: int, *, paused: timedelta) -> datetime:
        share = timedelta(minutes=minutes) * self.warning_percent / 100
        return self.business_calendar.add_business_time(started_at, share + paused)

    def first_response_due(self, started_at: datetime) -> datetime:
        return self.due(started_at, self.first_response_minutes or 0, paused=timedelta(0))

    @classmethod
    def default_for_id(cls, organization_id: int) -> SlaPolicy:
        """The policy of an organisation that has none yet (unsaved): 24/7 in UTC, a 60-minute
        first response, nothing else."""
        return cls(
            organization_id=organization_id,
            name="Default",
            first_response_minutes=DEFAULT_FIRST_RESPONSE_MINUTES,
        )

    @classmethod
    def for_org(cls, organization: Organization) -> SlaPolicy:
        """The organisation's first policy, the default one made if it has none."""
        from monitoring.policies import org_policies

        return org_policies(organization.pk)[0]


class SlaEventKind(models.TextChoices):
    """The ticket events monitoring records (registered with ``tickets.events``)."""

    SLA_MET = "sla_met", "SLA met"
    SLA_BREACHED = "sla_breached", "SLA breached"
    SLA_WARNING = "sla_warning", "SLA at risk"
    SLA_PAUSED = "sla_paused", "SLA paused: waiting on the customer"
    SLA_RESUMED = "sla_resumed", "SLA resumed"
    SLA_DUE_CHANGED = "sla_due_changed", "SLA due time changed"
    SLA_STOPPED = "sla_stopped", "SLA target dropped"
    SLA_STARTED = "sla_started", "SLA target added"
    SLA_MOVED = "sla_moved", "SLA moved to another policy"


class TimerState(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    MET = "met", "Met"
    BREACHED = "breached", "Breached"
    # The policy no longer has the target (a priority or policy change): kept, never reported.
    STOPPED = "stopped", "Stopped"


# The one-metric engine called a running timer "active"; the name stays for its callers.
TimerState.ACTIVE = TimerState.RUNNING  # type: ignore[attr-defined]


# A timer still waiting for the event that fulfils it. A breached timer waits too: its reply
# is still owed (and it still ranks the ticket in the inbox).
LIVE_STATES = (TimerState.RUNNING, TimerState.PAUSED, TimerState.BREACHED)


class SlaTimerQuerySet(OrgQuerySet["SlaTimer"]):
    def active(self) -> SlaTimerQuerySet:
        return self.filter(state=TimerState.RUNNING)

    running = active

    def live(self) -> SlaTimerQuerySet:
        """Waiting for their fulfilment: running, paused, or breached and still owed."""
        return self.filter(state__in=LIVE_STATES, fulfilled_at__isnull=True)

    def overdue(self, now: datetime) -> SlaTimerQuerySet:
        return self.active().filter(due_at__lt=now)

    def to_warn(self, now: datetime) -> SlaTimerQuerySet:
        return self.active().filter(warn_at__lte=now, warned_at__isnull=True, due_at__gte=now)


class SlaTimer(models.Model):
    """One SLA target on one ticket: when it started, when it is due, how it ended."""

    # Both are served by the composite indexes below: a timer row the sweep updates touches
    # as few indexes as it can.
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    ticket = models.ForeignKey(
        "tickets.Ticket", on_delete=models.CASCADE, related_name="sla_timers", db_index=False
    )
    policy = models.ForeignKey(
        SlaPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="timers"
    )
    # The customer message a next-response timer waits to answer.
    message = models.ForeignKey(
        "tickets.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    target_minutes = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    due_at = models.DateTimeField()
    warn_at = models.DateTimeField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=TimerState.choices, default=TimerState.RUNNING)
    paused_at = models.DateTimeField(null=True, blank=True)
    # Business time spent paused (waiting on the customer): the due time moves on by as much.
    paused_for = models.DurationField(default=timedelta(0))
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    # Business time from start to fulfilment, pauses excluded: the figure reports count.
    business_time = models.DurationField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)

    objects = SlaTimerQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ticket", "metric"],
                condition=models.Q(state__in=LIVE_STATES, fulfilled_at__isnull=True),
                name="one_live_timer_per_metric",
            )
        ]
        indexes = [
            # The sweep: running timers past due, and running timers past their warning.
            models.Index(
                fields=["due_at"],
                condition=models.Q(state="running"),
                name="sla_timer_running_due_idx",
            ),
            models.Index(
                fields=["warn_at"],
                condition=models.Q(state="running", warned_at__isnull=True),
                name="sla_timer_to_warn_idx",
            ),
            models.Index(fields=["ticket", "metric"], name="sla_timer_ticket_idx"),
            models.Index(fields=["organization", "metric", "state"], name="sla_timer_report_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_metric_display()} on ticket {self.ticket_id}: {self.state}"

    @property
    def elapsed(self) -> timedelta | None:
        """Calendar time from start to fulfilment (first reply time, as Zendesk counts it)."""
        return self.fulfilled_at - self.started_at if self.fulfilled_at else None


# --- Escalation rules (monitoring.escalation) ---------------------------------------------------
# Rules admins write in the app: conditions that must all hold on an open ticket, and levels
# that act once each after the conditions have held for a number of minutes. The engine
# (``monitoring.escalation.engine``) keeps one live EscalationMatch per rule and ticket while the
# conditions hold, and one EscalationFiring per match and level, so a level fires once per
# episode however many workers sweep at the same time.


class EscalationEventKind(models.TextChoices):
    """The ticket events escalation records (registered with ``tickets.events``)."""

    ESCALATED = "escalated", "Escalated"
    ESCALATION_CLEARED = "escalation_cleared", "Escalation cleared"


class EscalationRule(models.Model):
    """An admin's rule: when every condition holds on an open ticket, its levels act in turn.

    ``conditions`` is a list of ``{"kind": <registered kind>, ...params}`` (the kinds live in
    ``monitoring.escalation.conditions``); ``levels`` a list of ``{"after_minutes": int,
    "actions": {...}}``, level 1 first, each acting once the conditions have held that long."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="escalation_rules"
    )
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0, help_text="Lower is evaluated first.")
    conditions = models.JSONField(default=list, blank=True)
    levels = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "position", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="escalation_rule_name_per_org"
            )
        ]

    def __str__(self) -> str:
        return self.name


class EscalationMatch(models.Model):
    """One episode of a rule's conditions holding on a ticket: from ``since`` (when the engine
    first saw them hold) until ``cleared_at`` (when it first saw them not hold). Only one is
    live per rule and ticket; a later episode starts a new row, and its levels may fire again."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(EscalationRule, on_delete=models.CASCADE, related_name="matches")
    ticket = models.ForeignKey(
        "tickets.Ticket", on_delete=models.CASCADE, related_name="escalation_matches"
    )
    since = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "ticket"],
                condition=models.Q(cleared_at__isnull=True),
                name="one_live_escalation_match",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} on ticket {self.ticket_id} since {self.since:%Y-%m-%d %H:%M}"


class EscalationFiring(models.Model):
    """A level of a rule fired on a ticket, once per match (the unique constraint is what keeps
    two sweeping workers from both firing it). ``actions_done_at`` is set once its actions ran;
    each action is idempotent, so running them again after a crash changes nothing twice."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    match = models.ForeignKey(EscalationMatch, on_delete=models.CASCADE, related_name="firings")
    rule = models.ForeignKey(EscalationRule, on_delete=models.CASCADE, related_name="firings")
    ticket = models.ForeignKey(
        "tickets.Ticket", on_delete=models.CASCADE, related_name="escalation_firings"
    )
    level = models.PositiveSmallIntegerField()
    fired_at = models.DateTimeField()
    # The level's actions as they were when it fired (a later edit of the rule changes none).
    actions = models.JSONField(default=dict, blank=True)
    actions_done_at = models.DateTimeField(null=True, blank=True)
    # What each action did, in words, for the timeline and the rule's page.
    outcome = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["match", "level"], name="escalation_fires_once")
        ]
        indexes = [
            models.Index(
                fields=["fired_at"],
                condition=models.Q(actions_done_at__isnull=True),
                name="escalation_actions_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Level {self.level} of rule {self.rule_id} on ticket {self.ticket_id}"


# --- Reporting roll-ups (monitoring.reports) ----------------------------------------------------
# The manager dashboard reads only these two tables, never tickets or timers. Each row is kept
# up to date from the ticket event log by a handler (``monitoring.reports.rollups``) and can be
# recomputed from the events with ``manage.py rebuild_rollups``. The grain is one ticket and one
# timer (not one day): a median or percentile over a week cannot be made from daily medians, so
# the rows keep each duration, indexed by the organisation-local day they are counted on.


class TicketFact(models.Model):
    """One ticket as reports count it: its dimensions as they are now, its day and hour in the
    organisation's zone, and the times its events say it took."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    ticket = models.OneToOneField(
        "tickets.Ticket", on_delete=models.CASCADE, related_name="report_fact"
    )
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account = models.ForeignKey(
        SocialAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    platform = models.CharField(max_length=16, choices=Platform.choices)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    sentiment = models.CharField(max_length=16, blank=True)
    opened_at = models.DateTimeField()
    opened_day = models.DateField(help_text="The day it opened, in the organisation's zone.")
    opened_hour = models.PositiveSmallIntegerField(help_text="0-23, organisation's zone.")
    opened_weekday = models.PositiveSmallIntegerField(help_text="0 Monday .. 6 Sunday.")
    first_response_at = models.DateTimeField(null=True, blank=True)
    first_response_seconds = models.PositiveIntegerField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_seconds = models.PositiveIntegerField(null=True, blank=True)
    is_open = models.BooleanField(default=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_day = models.DateField(null=True, blank=True)
    closed_publicly = models.BooleanField(null=True, blank=True)
    # The kind of the event that closed it (close_out, closed_as_spam, ...), empty while open.
    closed_kind = models.CharField(max_length=32, blank=True)
    # Why it closed with no public close-out (a ``SkipReason``: spam, duplicate, dms_closed, ...;
    # "merged" for a merge), empty when closed out publicly or open.
    closed_reason = models.CharField(max_length=32, blank=True, default="")
    promises_kept = models.PositiveSmallIntegerField(default=0)
    promises_broken = models.PositiveSmallIntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        # Covering (PostgreSQL ``INCLUDE``; SQLite builds the same index without it): every
        # figure over the period's tickets, and the open backlog, is an index-only scan that
        # never visits the table (docs/benchmarks.md, "The dashboard at 1,000,000 tickets").
        indexes = [
            models.Index(
                fields=["organization", "opened_day"],
                include=[
                    "id",  # Count("pk"): without it, no index-only scan
                    "brand",
                    "social_account",
                    "team",
                    "agent",
                    "platform",
                    "opened_hour",
                    "opened_weekday",
                    "sentiment",
                    "first_response_seconds",
                    "resolution_seconds",
                    "promises_kept",
                    "promises_broken",
                    # The responsiveness badge's last 7 days (read with their days too).
                    "opened_at",
                    "closed_reason",
                ],
                name="ticket_fact_period_idx",
            ),
            models.Index(
                fields=["organization", "closed_day"],
                include=[
                    "id",
                    "brand",
                    "social_account",
                    "team",
                    "closed_publicly",
                    "closed_reason",
                ],
                name="ticket_fact_closed_idx",
            ),
            models.Index(
                fields=["organization", "opened_at"],
                include=["id", "brand", "social_account", "team", "agent"],
                condition=models.Q(is_open=True),
                name="ticket_fact_backlog_idx",
            ),
            # The facts of one bucket of a time histogram (``TimeDayStat``): the dashboard's
            # exact percentiles read a time range on each day of the period, for the whole
            # period or some agents or teams, index-only (``Report._read_buckets``).
            # With the closing reason: the responsiveness badge's p90 bucket, read index-only
            # too, leaves out the tickets closed as not owed (``monitoring.reports.
            # responsiveness``).
            models.Index(
                fields=["organization", "opened_day", "first_response_seconds"],
                include=["id", "brand", "social_account", "team", "agent", "closed_reason"],
                condition=models.Q(first_response_seconds__isnull=False),
                name="ticket_fact_first_response_idx",
            ),
            models.Index(
                fields=["organization", "opened_day", "resolution_seconds"],
                include=["id", "brand", "social_account", "team", "agent"],
                condition=models.Q(resolution_seconds__isnull=False),
                name="ticket_fact_resolution_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Report row of ticket {self.ticket_id}"


class SlaOutcome(models.TextChoices):
    MET = "met", "Met"
    BREACHED = "breached", "Breached"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"


class SlaFact(models.Model):
    """One SLA timer as reports count it, on the organisation-local day it *started* (the
    ticket's day), with the ticket's dimensions. A stopped timer has no row (it is not owed)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="sla_facts")
    timer = models.OneToOneField(SlaTimer, on_delete=models.CASCADE, related_name="report_fact")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account = models.ForeignKey(
        SocialAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    started_at = models.DateTimeField()
    started_day = models.DateField()
    due_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=SlaOutcome.choices)
    # Still owed: no reply yet (a breached timer can still be owed).
    owed = models.BooleanField(default=True)
    elapsed_seconds = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        # Covering, as on TicketFact: compliance by target, priority, day, agent and team is
        # an index-only scan of the period's timers. The breach list reads the newest due
        # first from its own partial index and stops at its 25 rows.
        indexes = [
            models.Index(
                fields=["organization", "started_day", "metric"],
                include=[
                    "id",
                    "outcome",
                    "due_at",
                    "priority",
                    "brand",
                    "social_account",
                    "team",
                    "agent",
                ],
                name="sla_fact_period_idx",
            ),
            models.Index(
                fields=["organization", "metric"],
                include=["id", "due_at", "brand", "social_account", "team"],
                condition=models.Q(owed=True),
                name="sla_fact_owed_idx",
            ),
            # The breach list: the period's 25 newest due among the timers breached (this
            # index) and among those still running past their due time (the next), each read
            # newest due first and stopped at 25; the period and filters are in the index, so
            # neither visits the table (docs/benchmarks.md, "percentiles from day histograms").
            models.Index(
                fields=["organization", "-due_at", "-id"],
                include=["started_day", "brand", "social_account", "team"],
                condition=models.Q(outcome="breached"),
                name="sla_fact_breached_idx",
            ),
            models.Index(
                fields=["organization", "-due_at", "-id"],
                include=["started_day", "brand", "social_account", "team"],
                condition=models.Q(outcome="running"),
                name="sla_fact_running_due_idx",
            ),
            # The timers still running: the daily sums (``SlaDayStat``) cannot know which of
            # them are past due at the time of a request, so the report counts those here.
            models.Index(
                fields=["organization", "started_day"],
                include=[
                    "id",
                    "due_at",
                    "priority",
                    "metric",
                    "brand",
                    "social_account",
                    "team",
                    "agent",
                ],
                condition=models.Q(outcome="running"),
                name="sla_fact_running_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Report row of timer {self.timer_id}: {self.outcome}"


class TicketDayDimension(models.TextChoices):
    """What a ``TicketDayStat`` row is split by besides its filters (brand, handle, team)."""

    OPENED = "opened", "Opened (platform)"  # value: "" (the ticket's platform is a column)
    HOUR = "hour", "Opened, by local hour"  # value: "0".."23"
    SENTIMENT = "sentiment", "Opened, by sentiment"  # value: the sentiment ("" none)
    AGENT = "agent", "Opened, by assignee"  # value: the user id ("" unassigned)
    CLOSED = "closed", "Closed, by reason"  # day: the closed day; value: the closed reason


class TicketDayStat(models.Model):
    """Additive sums of the ``TicketFact`` rows of one organisation, per organisation-local day
    and dimension (``TicketDayDimension``), kept by the roll-up handler in the transaction that
    changes the facts (the old fact subtracted, the new one added:
    ``monitoring.reports.daily``). The dashboard's counts read these, not the facts. The
    handle and team are plain ids (0: none) so that a row's key is never NULL."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    dimension = models.CharField(max_length=16, choices=TicketDayDimension.choices)
    day = models.DateField()
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    platform = models.CharField(max_length=16, blank=True, default="")
    value = models.CharField(max_length=32, blank=True, default="")
    tickets = models.IntegerField(default=0)
    answered = models.IntegerField(default=0)  # with a first response
    resolved = models.IntegerField(default=0)  # with a delivered resolution
    promises_kept = models.IntegerField(default=0)
    promises_broken = models.IntegerField(default=0)
    closed_publicly = models.IntegerField(default=0)  # CLOSED rows: of ``tickets``

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "dimension",
                    "day",
                    "brand",
                    "social_account_id",
                    "team_id",
                    "platform",
                    "value",
                ],
                name="ticket_day_stat_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.dimension} {self.day} {self.value}: {self.tickets}"


class SlaDayDimension(models.TextChoices):
    TARGET = "target", "By priority and target"  # value: ""
    AGENT = "agent", "By assignee"  # value: the user id ("" unassigned); priority 0, metric ""


class SlaDayStat(models.Model):
    """Additive sums of the ``SlaFact`` rows of one organisation, per organisation-local day a
    timer started and dimension (``SlaDayDimension``). ``breached`` counts the timers the sweep
    marked breached; a timer still running past its due time is breached too, as of the
    request, so the report counts those few from the facts (``monitoring.reports.daily``)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    dimension = models.CharField(max_length=16, choices=SlaDayDimension.choices)
    day = models.DateField()
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    value = models.CharField(max_length=32, blank=True, default="")
    priority = models.PositiveSmallIntegerField(default=0)
    metric = models.CharField(max_length=32, blank=True, default="")
    total = models.IntegerField(default=0)
    met = models.IntegerField(default=0)
    breached = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "dimension",
                    "day",
                    "brand",
                    "social_account_id",
                    "team_id",
                    "value",
                    "priority",
                    "metric",
                ],
                name="sla_day_stat_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.dimension} {self.day} {self.metric}: {self.met}/{self.total}"


class TimeMetric(models.TextChoices):
    """The times a ``TimeDayStat`` row counts (``TicketFact`` columns, in seconds)."""

    FIRST_RESPONSE = "first_response", "First response"
    RESOLUTION = "resolution", "Resolution"


class TimeDayStat(models.Model):
    """A histogram of the ``TicketFact`` times (first response, resolution) of one
    organisation, per organisation-local day a ticket opened, filter dimensions (brand, handle,
    team) and assignee: how many tickets took a time in ``bucket``
    (``monitoring.reports.histograms``: one bucket per second below 16 s, then 8 per
    doubling). Kept with the daily sums (the same upsert of new - old per batch); the
    dashboard finds the bucket that holds a percentile's rank here and reads only that
    bucket's facts for the exact value. Plain ids, 0 for none, so no key is NULL."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    metric = models.CharField(max_length=16, choices=TimeMetric.choices)
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    agent_id = models.BigIntegerField(default=0)
    bucket = models.PositiveSmallIntegerField()
    tickets = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "day",
                    "metric",
                    "brand",
                    "social_account_id",
                    "team_id",
                    "agent_id",
                    "bucket",
                ],
                name="time_day_stat_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.day} bucket {self.bucket}: {self.tickets}"


class ResponseDayStat(models.Model):
    """The responsiveness badge's counts (``FactReport.responsiveness``: the tickets on a
    handle, less those closed as not owed: spam, duplicate, merged), per organisation-local day
    a ticket opened, brand and handle: how many had their first response in ``bucket``
    (``monitoring.reports.histograms``; ``UNANSWERED``, -1: none yet) and the sum of those
    times in seconds. Kept with the daily sums (the same upsert of new - old per batch of
    facts: ``monitoring.reports.responsiveness``). The dashboard reads the whole days of its
    rolling 7 days here and only the partial first day, and the facts of the bucket that holds
    the p90 cut-off, from the facts. No team or assignee in the key: the figure has neither."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account_id = models.BigIntegerField()
    bucket = models.SmallIntegerField()
    tickets = models.IntegerField(default=0)
    seconds = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "brand", "social_account_id", "bucket"],
                name="response_day_stat_key",
            )
        ]

    def __str__(self) -> str:
        return f"@{self.social_account_id} {self.day} bucket {self.bucket}: {self.tickets}"


class OpenHourStat(models.Model):
    """The open backlog, counted: how many of one organisation's tickets are open now, per
    hour they opened in (``hour``: whole hours since the epoch, UTC), brand, handle, team and
    assignee (plain ids, 0 for none). Kept with the daily sums (the same upsert of new - old
    per batch of facts: ``monitoring.reports.backlog``). The dashboard's backlog ages are as of
    the request, so it reads these rows for every hour that falls wholly in one age bucket and
    the facts only for the few hours a bucket's edge cuts (``Report._open_groups``)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    hour = models.BigIntegerField()
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    agent_id = models.BigIntegerField(default=0)
    tickets = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "hour",
                    "brand",
                    "social_account_id",
                    "team_id",
                    "agent_id",
                ],
                name="open_hour_stat_key",
            )
        ]
        # Only the hours with open tickets (most hours' rows fall to 0 as tickets close).
        indexes = [
            models.Index(
                fields=["organization", "hour"],
                include=["brand", "social_account_id", "team_id", "agent_id", "tickets"],
                condition=models.Q(tickets__gt=0),
                name="open_hour_stat_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"hour {self.hour}: {self.tickets} open"


class RunningDueStat(models.Model):
    """The SLA timers still running, counted: per organisation, UTC day they fall due
    (``due_day``: whole days since the epoch), local day they started, priority, target,
    brand, handle, team and assignee (plain ids, 0 for none). Kept with the daily sums (the
    same upsert of new - old per batch of facts: ``monitoring.reports.running``). A timer
    still running past its due time is breached as of the request: the dashboard counts the
    days before today's from here and only today's from the facts (``Report._running_late``)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    due_day = models.BigIntegerField()
    started_day = models.DateField()
    priority = models.PositiveSmallIntegerField()
    metric = models.CharField(max_length=32)
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="+")
    social_account_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    agent_id = models.BigIntegerField(default=0)
    timers = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "due_day",
                    "started_day",
                    "priority",
                    "metric",
                    "brand",
                    "social_account_id",
                    "team_id",
                    "agent_id",
                ],
                name="running_due_stat_key",
            )
        ]
        # Only the rows with running timers (most fall to 0 as the sweep and replies stop them).
        indexes = [
            models.Index(
                fields=["organization", "started_day"],
                include=[
                    "due_day",
                    "priority",
                    "metric",
                    "brand",
                    "social_account_id",
                    "team_id",
                    "agent_id",
                    "timers",
                ],
                condition=models.Q(timers__gt=0),
                name="running_due_stat_live_idx",
            )
        ]

    def __str__(self) -> str:
        return f"due day {self.due_day} {self.metric}: {self.timers} running"
