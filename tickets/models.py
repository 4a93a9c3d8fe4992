"""Tickets, their messages, the outbox that sends replies, and the event log that is their history.

A ticket walks the four care steps in order: acknowledge (public reply), take offline (DM),
resolve (private resolution message), close out (public reply). Each step is a model method that
checks the current state and records a ``TicketEvent`` through ``Ticket.record``; the event log
is the single history from which SLA timers and reports are derived, and each event is published
after commit to the handlers other apps register (``tickets.events``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.db import models
from django.utils import timezone

from careinbox.accounts.models import Organization, Team
from careinbox.tenancy import OrgQuerySet
from channels_social.models import Brand, Platform, SocialAccount

# Customers are the tickets app's models too, kept in their own module (importable from here).
from tickets.customer_models import (  # noqa: F401
    CONTACT_FIELDS,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerIdentity,
    CustomerNote,
    ThreadingSettings,
)

if TYPE_CHECKING:
    from careinbox.accounts.models import User


class StepError(Exception):
    """A care step was asked for that the ticket's state does not allow; nothing changed."""


class Status(models.TextChoices):
    NEW = "new", "New"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    OFFLINE = "offline", "Taken offline"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed out"


OPEN_STATUSES = (Status.NEW, Status.ACKNOWLEDGED, Status.OFFLINE, Status.RESOLVED)


class Step(models.TextChoices):
    """The four care steps, in the order a ticket must take them."""

    ACKNOWLEDGE = "acknowledge", "Acknowledge"
    TAKE_OFFLINE = "take_offline", "Take offline"
    RESOLVE = "resolve", "Resolve"
    CLOSE_OUT = "close_out", "Close out"


class StepRule(NamedTuple):
    requires: str  # the status the ticket must be in
    leads_to: str  # the status it is in once the step is taken
    public: bool  # the step's reply goes on the public thread (else privately)


STEP_RULES: dict[str, StepRule] = {
    Step.ACKNOWLEDGE: StepRule(Status.NEW, Status.ACKNOWLEDGED, public=True),
    Step.TAKE_OFFLINE: StepRule(Status.ACKNOWLEDGED, Status.OFFLINE, public=False),
    Step.RESOLVE: StepRule(Status.OFFLINE, Status.RESOLVED, public=False),
    Step.CLOSE_OUT: StepRule(Status.RESOLVED, Status.CLOSED, public=True),
}
NEXT_STEP: dict[str, str] = {rule.requires: step for step, rule in STEP_RULES.items()}


class Priority(models.IntegerChoices):
    URGENT = 1, "Urgent"
    HIGH = 2, "High"
    NORMAL = 3, "Normal"
    LOW = 4, "Low"


# The inbox ranks open tickets by SLA risk: the due time of the soonest running target, moved
# earlier by the priority's head start (later for Low). An Urgent ticket due in 56 minutes ranks
# as if due in -4, so a High one breached a minute ago (-31) sits above it; a ticket long past
# due rises above everything still in time. Tickets with no running target come last.
INBOX_HEAD_START: dict[int, timedelta] = {
    Priority.URGENT: timedelta(minutes=60),
    Priority.HIGH: timedelta(minutes=30),
    Priority.NORMAL: timedelta(0),
    Priority.LOW: timedelta(minutes=-30),
}


def sla_risk_at(due_at: datetime | None, priority: int) -> datetime | None:
    """The instant the inbox orders a ticket by, soonest first: its due time less its head start."""
    return None if due_at is None else due_at - INBOX_HEAD_START.get(priority, timedelta(0))


class MessageKind(models.TextChoices):
    POST = "post", "Public post"
    REPLY = "reply", "Public reply"
    QUOTE = "quote", "Quote post"
    DM = "dm", "Direct message"
    COMMENT = "comment", "Comment"
    VISITOR_POST = "visitor_post", "Visitor post"
    MESSENGER = "messenger", "Messenger"
    PRIVATE_REPLY = "private_reply", "Private reply"


class Direction(models.TextChoices):
    INBOUND = "in", "From the customer"
    OUTBOUND = "out", "From the brand"


class TicketQuerySet(OrgQuerySet["Ticket"]):
    def open(self) -> TicketQuerySet:
        return self.filter(status__in=OPEN_STATUSES)

    def inbox_order(self) -> TicketQuerySet:
        """Most at risk first: priority and time to breach both count (``INBOX_HEAD_START``);
        tickets with no running SLA target last, by priority."""
        return self.order_by(
            models.F("sla_risk_at").asc(nulls_last=True), "priority", "opened_at", "pk"
        )


class Ticket(models.Model):
    """One customer's case, from their first public post to the public close-out."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tickets")
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, related_name="tickets")
    social_account = models.ForeignKey(
        SocialAccount, on_delete=models.PROTECT, related_name="tickets"
    )
    platform = models.CharField(max_length=16, choices=Platform.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    priority_reasons = models.JSONField(default=list, blank=True)

    # The person (``Customer``: their identities, contact details, notes), set by ingest.
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    # The customer's identity on this ticket's platform, as it was when the ticket opened.
    customer_external_id = models.CharField(max_length=64)
    customer_username = models.CharField(max_length=100)
    customer_display_name = models.CharField(max_length=200, blank=True)
    customer_followers = models.PositiveIntegerField(default=0)

    # The public thread the ticket started in: replies go under this post. A private ticket
    # (opened by a direct message, with no public post) keeps its DM conversation here.
    conversation_id = models.CharField(max_length=64, blank=True)
    is_public = models.BooleanField(
        default=True,
        help_text="Opened from a public post. A private ticket (opened by a direct message) "
        "takes every care step by direct message.",
    )
    # Pure reposts open no ticket: each raises the reach of the ticket whose post it reposts.
    reposts = models.PositiveIntegerField(default=0)
    repost_reach = models.PositiveIntegerField(
        default=0, help_text="The followers of everyone who reposted the ticket's posts."
    )
    root_message = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The soonest due time of the ticket's running SLA timers, for the inbox order. Kept by
    # the app that owns the timers (monitoring), through ``set_sla_due``.
    sla_due_at = models.DateTimeField(null=True, blank=True)
    # ``sla_due_at`` less the priority's head start: the inbox order (``INBOX_HEAD_START``).
    sla_risk_at = models.DateTimeField(null=True, blank=True)

    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The team that owns the ticket (routing, escalation); a person within it is ``assigned_to``.
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    tags: models.ManyToManyField[Tag, Any] = models.ManyToManyField(
        "Tag", blank=True, related_name="tickets"
    )
    # Replies on this ticket go to a manager's approval queue first (an escalation or a rule).
    approval_required = models.BooleanField(default=False, db_default=False)
    approval_reason = models.CharField(max_length=200, blank=True, db_default="")
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Closed because an agent merged it into another ticket (its messages moved there).
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_tickets"
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = TicketQuerySet.as_manager()

    class Meta:
        indexes = [
            # The inbox: an organisation's open tickets, most at risk first.
            models.Index(
                fields=["organization", "sla_risk_at"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="ticket_inbox_risk_idx",
            ),
            models.Index(
                fields=["organization", "platform", "conversation_id"], name="ticket_thread_idx"
            ),
            # Threading a new post: the customer's open tickets on any of the org's handles.
            models.Index(
                fields=["organization", "platform", "customer_external_id", "status"],
                name="ticket_customer_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} @{self.customer_username}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def next_step(self) -> str | None:
        return NEXT_STEP.get(self.status)

    def record(
        self,
        kind: str,
        *,
        actor: User | None = None,
        message: Message | None = None,
        at: datetime | None = None,
        **data: Any,
    ) -> TicketEvent:
        """Append one event to the ticket's history; it is published once the transaction
        commits (``tickets.events``)."""
        from tickets.events import record_event

        return record_event(self, kind, actor=actor, message=message, at=at, data=data)

    def set_sla_due(self, due_at: datetime | None) -> None:
        """The soonest due time of the ticket's running SLA targets (monitoring keeps it), and
        with it the inbox's risk order."""
        risk_at = sla_risk_at(due_at, self.priority)
        if self.sla_due_at != due_at or self.sla_risk_at != risk_at:
            self.sla_due_at, self.sla_risk_at = due_at, risk_at
            Ticket.objects.filter(pk=self.pk).update(sla_due_at=due_at, sla_risk_at=risk_at)

    @property
    def sla_risk_note(self) -> str:
        """Why the ticket sits where it does in the inbox, for the row's tooltip."""
        if self.sla_due_at is None:
            return "No SLA target running: ranked after every ticket with one, by priority."
        head_start = INBOX_HEAD_START.get(self.priority, timedelta(0))
        minutes = round(head_start.total_seconds() / 60)
        label = Priority(self.priority).label
        if minutes > 0:
            shift = f"{label}: ranked as if due {minutes} min sooner"
        elif minutes < 0:
            shift = f"{label}: ranked as if due {-minutes} min later"
        else:
            shift = f"{label}: ranked by its due time"
        return f"{shift} (most at risk first)."

    def change_priority(self, level: int, *, by: User | None, reason: str) -> TicketEvent | None:
        """An agent overrides the priority; recorded (monitoring recomputes the SLA due times).
        The same priority again changes nothing and returns None."""
        level = Priority(level)
        if level == self.priority:
            return None
        before = self.priority
        self.priority = level
        self.sla_risk_at = sla_risk_at(self.sla_due_at, level)
        self.save(update_fields=["priority", "sla_risk_at", "updated_at"])
        return self.record(
            EventKind.PRIORITY_CHANGED,
            actor=by,
            before=int(before),
            after=int(level),
            reason=reason,
        )

    def assign(
        self,
        user: User | None = None,
        *,
        team: Team | object | None = ...,
        by: User | None,
        reason: str = "",
    ) -> TicketEvent | None:
        """Give the ticket to ``user`` (None: unassigned) and, if named, ``team``; recorded.
        The same assignment again changes nothing and returns None."""
        new_team = self.team if team is ... else team
        if user is not None and user.pk == self.assigned_to_id and new_team == self.team:
            return None
        if user is None and self.assigned_to_id is None and new_team == self.team:
            return None
        before = {"user": self.assigned_to_id, "team": self.team_id}
        self.assigned_to = user
        self.team = new_team  # type: ignore[assignment]
        self.assigned_at = timezone.now() if user is not None else None
        self.save(update_fields=["assigned_to", "team", "assigned_at", "updated_at"])
        return self.record(
            EventKind.ASSIGNED,
            actor=by,
            before=before,
            after={"user": self.assigned_to_id, "team": self.team_id},
            assignee=str(user) if user is not None else "",
            team_name=str(self.team) if self.team is not None else "",
            reason=reason,
        )

    def add_tag(self, name: str, *, by: User | None) -> TicketEvent | None:
        """Tag the ticket (the tag is made for the organisation on first use); recorded once."""
        name = Tag.normalise(name)
        tag, _ = Tag.objects.get_or_create(organization_id=self.organization_id, name=name)
        if self.tags.filter(pk=tag.pk).exists():
            return None
        self.tags.add(tag)
        return self.record(EventKind.TAGGED, actor=by, tag=name)

    def remove_tag(self, name: str, *, by: User | None) -> TicketEvent | None:
        tag = Tag.objects.filter(
            organization_id=self.organization_id, name=Tag.normalise(name)
        ).first()
        if tag is None or not self.tags.filter(pk=tag.pk).exists():
            return None
        self.tags.remove(tag)
        return self.record(EventKind.UNTAGGED, actor=by, tag=tag.name)

    def require_approval(self, reason: str, *, by: User | None) -> TicketEvent | None:
        """From now on replies on this ticket wait for a manager's approval; recorded once."""
        if self.approval_required:
            return None
        self.approval_required, self.approval_reason = True, reason[:200]
        self.save(update_fields=["approval_required", "approval_reason", "updated_at"])
        return self.record(EventKind.APPROVAL_REQUIRED, actor=by, reason=reason)

    def check_step(self, step: str) -> bool:
        """Raise StepError unless ``step`` is the next one; return whether its reply is public.

        A private ticket has no public thread to answer on: each of its steps is a direct
        message (the same four steps, so its figures read like every other ticket's).
        """
        try:
            rule = STEP_RULES[step]
        except KeyError:
            raise StepError(f"There is no care step called {step!r}.") from None
        if self.status != rule.requires:
            if self.next_step is None:
                raise StepError("This ticket is closed out; there is no step left.")
            raise StepError(
                f"This ticket is {self.get_status_display().lower()}: "
                f"the next step is {Step(self.next_step).label}, not {Step(step).label}."
            )
        return rule.public and self.is_public

    def take_step(self, step: str, *, by: User, message: Message | None) -> TicketEvent:
        """Move the ticket one care step forward; refuse (StepError) a step out of order."""
        self.check_step(step)
        target = STEP_RULES[step].leads_to
        self.status = target
        fields = ["status", "updated_at"]
        if target == Status.CLOSED:
            self.closed_at = timezone.now()
            fields.append("closed_at")
        self.save(update_fields=fields)
        return self.record(step, actor=by, message=message)

    def reopen_step(
        self, step: str, *, message: Message, reason: str, cause: str
    ) -> TicketEvent | None:
        """The step's reply did not go out: go back to before the step, and say why.

        The agent sees the step's form again with the reason (and their text), and can send a
        new reply; ``cause`` is the kind of the event that made it go back. Only the latest step
        can reopen (a step waits for its reply's delivery); if the ticket has moved on, nothing
        changes and None is returned.
        """
        rule = STEP_RULES[step]
        if self.status != rule.leads_to:
            return None
        self.status = rule.requires
        self.closed_at = None
        self.save(update_fields=["status", "closed_at", "updated_at"])
        return self.record(
            EventKind.STEP_REOPENED, message=message, step=step, reason=reason, cause=cause
        )

    def reopen(self, *, message: Message, window_days: int) -> TicketEvent:
        """The customer wrote again within ``window_days`` of the close-out: the ticket opens
        again, recorded as ``reopened`` (monitoring starts resolution and close-out anew). A
        public message starts the steps over (it needs a public acknowledgement); a private
        one resumes where the brand takes it offline: resolve, then close out."""
        if self.is_open:
            raise StepError("This ticket is open already.")
        closed_at = self.closed_at
        self.status = Status.NEW if message.is_public else Status.OFFLINE
        self.closed_at = None
        self.save(update_fields=["status", "closed_at", "updated_at"])
        return self.record(
            EventKind.REOPENED,
            message=message,
            at=message.created_at,
            status=self.status,
            closed_at=closed_at.isoformat() if closed_at else None,
            window_days=window_days,
        )

    def close_as_merged(self, into: Ticket, *, by: User | None, moved: int) -> TicketEvent:
        """Close this ticket because it was merged into ``into``; recorded (monitoring stops
        its SLA timers). The merge itself is ``tickets.services.merge.ticket_merge``."""
        if self.merged_into_id is not None:
            raise StepError(f"Ticket #{self.pk} is merged into #{self.merged_into_id} already.")
        self.merged_into = into
        self.status = Status.CLOSED
        self.closed_at = timezone.now()
        self.save(update_fields=["merged_into", "status", "closed_at", "updated_at"])
        return self.record(EventKind.MERGED_INTO, actor=by, into=into.pk, moved=moved)

    def acknowledge(self, *, by: User, message: Message) -> TicketEvent:
        return self.take_step(Step.ACKNOWLEDGE, by=by, message=message)

    def take_offline(self, *, by: User, message: Message) -> TicketEvent:
        return self.take_step(Step.TAKE_OFFLINE, by=by, message=message)

    def resolve(self, *, by: User, message: Message) -> TicketEvent:
        return self.take_step(Step.RESOLVE, by=by, message=message)

    def close_out(self, *, by: User, message: Message) -> TicketEvent:
        return self.take_step(Step.CLOSE_OUT, by=by, message=message)


class MessageQuerySet(OrgQuerySet["Message"]):
    pass


class Message(models.Model):
    """A post, reply or DM in a ticket, from the customer (inbound) or the brand (outbound).

    Inbound messages are stored once per platform and external id within an organisation; a
    re-delivered post hits the unique constraint and changes nothing.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="messages"
    )
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    kind = models.CharField(max_length=16, choices=MessageKind.choices)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    is_public = models.BooleanField(default=True)

    # Empty for an outbound message until the platform has accepted it.
    external_id = models.CharField(max_length=64, blank=True)
    conversation_id = models.CharField(max_length=64, blank=True)
    in_reply_to_external_id = models.CharField(max_length=64, blank=True)

    author_external_id = models.CharField(max_length=64, blank=True)
    author_username = models.CharField(max_length=100, blank=True)
    author_display_name = models.CharField(max_length=200, blank=True)
    author_followers = models.PositiveIntegerField(default=0)
    author_verified = models.BooleanField(default=False)
    found_by = models.CharField(
        max_length=200, blank=True, help_text="How intake found it: 'listening:<query>'."
    )
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    step = models.CharField(
        max_length=16, choices=Step.choices, blank=True, help_text="The care step it was sent for."
    )

    text = models.TextField()
    created_at = models.DateTimeField(help_text="When the platform says it was posted.")
    received_at = models.DateTimeField(auto_now_add=True)
    raw = models.JSONField(default=dict, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "platform", "external_id"],
                condition=~models.Q(external_id=""),
                name="message_once_per_platform_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()}: {self.text[:40]}"


class OutboxState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    UNCERTAIN = "uncertain", "Interrupted — check before resending"


class OutboxItem(models.Model):
    """An outbound message waiting to be sent, sent, or failed: the only way a reply leaves.

    A sender claims an item by moving it from queued to sending in one UPDATE that also sets a
    fresh ``claim_token``; only the claimant calls the platform, and only it may record the
    outcome. An item found still ``sending`` after a crash is marked ``uncertain`` and never
    re-sent blindly, so a crash never posts twice.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="outbox")
    state = models.CharField(max_length=16, choices=OutboxState.choices, default=OutboxState.QUEUED)
    # A new token with every claim: only the sender holding the current one records an outcome.
    claim_token = models.UUIDField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["state", "claimed_at"], name="outbox_state_idx")]

    def __str__(self) -> str:
        return f"Outbox {self.pk} ({self.state})"


class EventKind(models.TextChoices):
    """The kinds of fact tickets records, one kind per fact, so the timeline and every report
    read them without guessing. Other apps record kinds of their own (monitoring's ``sla_met``)
    and register their labels with ``tickets.events.register_kinds``; the column itself is an
    open set, so a new kind needs no migration here."""

    OPENED = "opened", "Opened"
    MESSAGE_RECEIVED = "message_received", "Customer wrote"
    ACKNOWLEDGE = "acknowledge", "Acknowledged"
    TAKE_OFFLINE = "take_offline", "Taken offline"
    RESOLVE = "resolve", "Resolved"
    CLOSE_OUT = "close_out", "Closed out"
    REPLY_SENT = "reply_sent", "Reply delivered"
    # The platform said no, for good (a 4xx such as X's duplicate-content refusal).
    REPLY_REFUSED = "reply_refused", "Reply refused by the platform"
    # Retryable failures went on until the outbox gave up.
    REPLY_FAILED = "reply_failed", "Reply failed after retries"
    # The request went out and no answer came back: it may or may not be on the platform.
    REPLY_UNCERTAIN = "reply_uncertain", "Reply may not have been posted"
    # Housekeeping found a send that a stopped worker left half done.
    SEND_INTERRUPTED = "send_interrupted", "Sending was interrupted"
    SETTLED_NOT_POSTED = "settled_not_posted", "Checked: the reply was not posted"
    STEP_REOPENED = "step_reopened", "Step reopened"
    # A send whose claim was taken away (it stalled) finished anyway; nothing else changes.
    LATE_RESULT = "late_result", "Late answer from the platform"
    PRIORITY_CHANGED = "priority_changed", "Priority changed"
    # A pure repost of one of the ticket's posts: no message, a wider reach.
    REPOSTED = "reposted", "Reposted"
    ASSIGNED = "assigned", "Assigned"
    TAGGED = "tagged", "Tagged"
    UNTAGGED = "untagged", "Tag removed"
    APPROVAL_REQUIRED = "approval_required", "Replies need approval"
    # A customer message on a recently closed ticket opened it again (monitoring restarts the
    # resolution and close-out targets on this kind).
    REOPENED = "reopened", "Reopened by the customer"
    # Merge and split: one kind on each side, so both timelines say what happened.
    MERGED = "merged", "Another ticket merged in"
    MERGED_INTO = "merged_into", "Merged into another ticket"
    SPLIT = "split", "Messages split out"
    SPLIT_FROM = "split_from", "Split from another ticket"
    # Ingest found an open ticket of the same customer about the same thing, but not surely.
    MERGE_OFFERED = "merge_offered", "Offered for merge"
    MERGE_OFFER_DISMISSED = "merge_offer_dismissed", "Merge offer dismissed"


class Tag(models.Model):
    """A label an organisation puts on tickets ("outage", "refund"), lower case, unique."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=60)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="tag_name_per_org")
        ]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def normalise(name: str) -> str:
        return " ".join(name.strip().lstrip("#").lower().split())[:60]


class TicketEventQuerySet(OrgQuerySet["TicketEvent"]):
    pass


class TicketEvent(models.Model):
    """One thing that happened to a ticket: who, what, when. Append-only."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    at = models.DateTimeField(default=timezone.now, help_text="When it happened.")
    data = models.JSONField(default=dict, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now, help_text="When it was written.")
    # Set once every handler has run; events left unset are delivered again by a sweep.
    dispatched_at = models.DateTimeField(null=True, blank=True)

    objects = TicketEventQuerySet.as_manager()

    class Meta:
        ordering = ["at", "pk"]
        indexes = [
            models.Index(fields=["ticket", "at"], name="event_ticket_at_idx"),
            models.Index(
                fields=["recorded_at"],
                condition=models.Q(dispatched_at__isnull=True),
                name="event_undispatched_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} at {self.at:%Y-%m-%d %H:%M}"

    @property
    def label(self) -> str:
        """What the kind is called in the timeline ("Reply delivered", "SLA met")."""
        from tickets.events import label_for

        return label_for(self.kind)
