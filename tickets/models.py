"""Tickets, their messages, the outbox that sends replies, and the event log that is their history.

A ticket walks the four care steps in order: acknowledge (public reply), take offline (DM),
resolve (private resolution message), close out (public reply). Each step is a model method that
checks the current state and records a ``TicketEvent`` through ``Ticket.record``; the event log
is the single history from which SLA timers and reports are derived, and each event is published
after commit to the handlers other apps register (``tickets.events``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from careinbox.accounts.models import Organization, Team
from careinbox.tenancy import OrgQuerySet
from channels_social.models import Brand, Platform, SocialAccount
from channels_social.text import clean_text

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


class Sentiment(models.TextChoices):
    """How the customer's opening post reads (``tickets.sentiment``)."""

    NEGATIVE = "negative", "Negative"
    NEUTRAL = "neutral", "Neutral"
    POSITIVE = "positive", "Positive"


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
    # Moderation going out through the outbox: hiding the customer's post (no text is sent).
    HIDE = "hide", "Hide (moderation)"
    # Deleting the customer's post (Facebook; managers only, for a community-guideline reason).
    DELETE = "delete", "Delete (moderation)"


#: The message kinds that moderate a customer's post (no text goes out; never a care step).
MODERATION_MESSAGE_KINDS: tuple[str, ...] = (MessageKind.HIDE, MessageKind.DELETE)


class Direction(models.TextChoices):
    INBOUND = "in", "From the customer"
    OUTBOUND = "out", "From the brand"


class TicketQuerySet(OrgQuerySet["Ticket"]):
    def open(self) -> TicketQuerySet:
        return self.filter(status__in=OPEN_STATUSES)

    def lock_in_order(self) -> list[int]:
        """Lock these tickets' rows (``FOR UPDATE``), in id order, in one statement, until the
        transaction ends; return their ids. Nothing on SQLite (no row locks: it runs one
        writing transaction at a time), which returns no ids.

        Whoever adds a message to a ticket someone else may hold takes the ticket first: the
        message's insert trigger then locks the ticket's search document (migration 0024's
        upsert), and an agent's close locks the ticket, then the document (0026's status
        trigger). A document taken before its ticket deadlocks against that close."""
        if not connection.features.has_select_for_update:
            return []
        locked = self.order_by("pk").values_list("pk", flat=True).select_for_update(of=("self",))
        return list(locked)

    def refresh_whose_turn(self, *, locked: bool = False) -> int:
        """``Ticket.refresh_last_message_direction`` for every ticket here (a poll's batch): on
        PostgreSQL the rows locked in id order, then one UPDATE from each ticket's latest
        message, read after the locks so it sees what committed before them; on SQLite, which
        runs one writing transaction at a time, the UPDATE alone. ``locked``: the caller holds
        every one of them already (``lock_in_order`` before it inserted their messages, or
        made them in this transaction), so the UPDATE alone; it is a later statement than the
        locks, so it still sees what committed before them."""
        latest = Coalesce(
            models.Subquery(
                Message.objects.filter(ticket_id=models.OuterRef("pk"))
                .order_by("-created_at", "-pk")
                .values("direction")[:1]
            ),
            models.Value(""),
        )
        # No new counts token here (``InboxCountsStamp``): its one caller, set-based ingest,
        # records a message's event for every ticket it passes, in the same transaction, and
        # ``record_events`` gives the token; reading the tickets' organisations here would
        # read the batch's tickets a second time.
        if locked or not connection.features.has_select_for_update:
            return self.update(last_message_direction=latest)  # SQLite: one writer at a time
        ids = self.lock_in_order()
        if not ids:
            return 0
        return Ticket.objects.filter(pk__in=ids).update(last_message_direction=latest)

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
    # The score the level came from and its factors, largest first: [{"factor", "points",
    # "reason"}] (``tickets.priority``); ``priority_reasons`` holds their reasons, in order.
    priority_score = models.IntegerField(default=0, db_default=0)
    priority_factors = models.JSONField(default=list, blank=True, db_default=[])
    sentiment = models.CharField(
        max_length=8, choices=Sentiment.choices, default=Sentiment.NEUTRAL, db_default="neutral"
    )
    # -1 (angriest) .. 1 (happiest); the label is cut from it.
    sentiment_score = models.FloatField(default=0.0, db_default=0.0)

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
    # Whose turn it is: the direction of the ticket's latest message (by ``created_at``, then
    # id), "" while it has none. "Waiting on customer" is an open ticket past its first step
    # whose latest message is the brand's; kept here so the inbox counts it from an index
    # instead of looking up each open ticket's latest message. Only
    # ``Ticket.refresh_last_message_direction`` writes it, wherever a ticket's messages change.
    last_message_direction = models.CharField(
        max_length=3, choices=Direction.choices, blank=True, default="", db_default=""
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
    # Closed without the public close-out: the ``SkipReason`` (``Ticket.close_without_reply``).
    closed_as = models.CharField(max_length=16, blank=True, db_default="")
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
            # The inbox's Mine view (an agent's open tickets, most at risk first) and its
            # counts: every view's count over open tickets reads this index alone (no heap).
            models.Index(
                fields=["organization", "assigned_to", "sla_risk_at"],
                include=[
                    "id",
                    "status",
                    "sla_due_at",
                    "approval_required",
                    "last_message_direction",
                ],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="ticket_inbox_assignee_idx",
            ),
            # "Breaching soon": the due times about to enter its window, read with the cached
            # inbox counts (``tickets.inbox.view_counts``).
            models.Index(
                fields=["organization", "sla_due_at"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="ticket_open_due_idx",
            ),
            # The Closed view, most recently closed first, and its count.
            models.Index(
                fields=["organization", "-closed_at", "-id"],
                condition=models.Q(status="closed"),
                name="ticket_closed_idx",
            ),
            # Escalation's "sentiment is negative" condition over open tickets.
            models.Index(
                fields=["organization", "sentiment"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="ticket_open_sentiment_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} @{self.customer_username}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def main_priority_reason(self) -> str:
        """The factor that weighed most in the priority, for the inbox row."""
        return str(self.priority_reasons[0]) if self.priority_reasons else ""

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

    def unsaved_event(
        self,
        kind: str,
        *,
        message: Message | None = None,
        at: datetime | None = None,
        **data: Any,
    ) -> TicketEvent:
        """An event of this ticket not yet written, for writers that record many at once
        (``tickets.events.record_events``, one INSERT): set-based ingest. The ticket and the
        message may be unsaved still; they must be saved before the events are."""
        return TicketEvent(
            organization_id=self.organization_id,
            ticket=self,
            kind=kind,
            message=message,
            at=at or timezone.now(),
            data=data,
        )

    def set_sla_due(self, due_at: datetime | None) -> None:
        """The soonest due time of the ticket's running SLA targets (monitoring keeps it), and
        with it the inbox's risk order."""
        risk_at = sla_risk_at(due_at, self.priority)
        if self.sla_due_at != due_at or self.sla_risk_at != risk_at:
            self.sla_due_at, self.sla_risk_at = due_at, risk_at
            Ticket.objects.filter(pk=self.pk).update(sla_due_at=due_at, sla_risk_at=risk_at)
            InboxCountsStamp.counts_changed(self.organization_id)  # "Breaching soon"

    @staticmethod
    def set_sla_dues(dues: Sequence[tuple[Ticket, datetime | None]]) -> None:
        """``set_sla_due`` for several tickets in one UPDATE (those whose due time changed)."""
        changed: dict[int, Ticket] = {}
        for ticket, due_at in dues:
            risk_at = sla_risk_at(due_at, ticket.priority)
            if ticket.sla_due_at != due_at or ticket.sla_risk_at != risk_at:
                ticket.sla_due_at, ticket.sla_risk_at = due_at, risk_at
                changed[ticket.pk] = ticket
        if len(changed) == 1:
            (ticket,) = changed.values()
            Ticket.objects.filter(pk=ticket.pk).update(
                sla_due_at=ticket.sla_due_at, sla_risk_at=ticket.sla_risk_at
            )
        elif changed:
            Ticket.objects.bulk_update(list(changed.values()), ["sla_due_at", "sla_risk_at"])
        for organization_id in {ticket.organization_id for ticket in changed.values()}:
            InboxCountsStamp.counts_changed(organization_id)  # "Breaching soon"

    def refresh_last_message_direction(self, *, locked: bool = False) -> str:
        """Store whose turn it is (``last_message_direction``) from the messages as they are
        now, and return it. Called wherever the ticket's messages change: a message stored or
        sent, messages moved in or out by a merge or a split. It is a fact about the
        messages, each of which is recorded already, so it records no event of its own.

        The ticket's row is locked first (until the transaction ends), so two transactions
        adding messages to one ticket take turns: the second reads the latest message once
        the first has committed its own, and what is stored is the true latest direction
        (SQLite has no row locks: it runs one writing transaction at a time anyway).
        ``locked``: the caller locked the row already (``lock_row``), before it inserted the
        message, as it must (``TicketQuerySet.lock_in_order``)."""
        with transaction.atomic(savepoint=False):
            if not locked and connection.features.has_select_for_update:
                Ticket.objects.select_for_update(of=("self",)).filter(pk=self.pk).values_list(
                    "pk", flat=True
                ).first()
            latest = (
                Message.objects.filter(ticket_id=self.pk)
                .order_by("-created_at", "-pk")
                .values_list("direction", flat=True)
                .first()
            ) or ""
            changed = (
                Ticket.objects.filter(pk=self.pk)
                .exclude(last_message_direction=latest)
                .update(last_message_direction=latest)
            )
            if changed:
                InboxCountsStamp.counts_changed(self.organization_id)  # "Waiting on customer"
        self.last_message_direction = latest
        return latest

    def lock_row(self) -> None:
        """Lock this ticket's row until the transaction ends (``TicketQuerySet.lock_in_order``:
        before a message is added to it); nothing on SQLite."""
        Ticket.objects.filter(pk=self.pk).lock_in_order()

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

    def change_sentiment(
        self, label: str, score: float, *, message: Message | None
    ) -> TicketEvent | None:
        """The customer's latest message reads differently (a negative follow-up on a neutral
        ticket): keep the new reading; recorded when the label moves (a score that moves
        within the same label is kept quietly). Returns None when the label stays."""
        label = Sentiment(label)
        before, before_score = self.sentiment, self.sentiment_score
        if label == before and abs(score - before_score) < 1e-9:
            return None
        self.sentiment, self.sentiment_score = label, round(float(score), 4)
        self.save(update_fields=["sentiment", "sentiment_score", "updated_at"])
        if label == before:
            return None
        return self.record(
            EventKind.SENTIMENT_CHANGED,
            message=message,
            before=str(before),
            after=str(label),
            score=self.sentiment_score,
            summary=f"{Sentiment(before).label} \u2192 {label.label}",
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
            organization_id=self.organization_id, name=Tag.normalise(clean_text(name))
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
        if rule.leads_to == Status.CLOSED:
            self.check_no_open_promise()
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
        closed_at = self.open_again(is_public=message.is_public)
        return self.save_reopened(message=message, closed_at=closed_at, window_days=window_days)

    def open_again(self, *, is_public: bool) -> datetime | None:
        """``reopen``'s change in memory only (nothing saved, nothing recorded): for set-based
        ingest, which threads a whole batch before it writes, then calls ``save_reopened``.
        Returns when the ticket had been closed."""
        if self.is_open:
            raise StepError("This ticket is open already.")
        closed_at = self.closed_at
        self.status = Status.NEW if is_public else Status.OFFLINE
        self.closed_at, self.closed_as = None, ""
        return closed_at

    def save_reopened(
        self, *, message: Message, closed_at: datetime | None, window_days: int
    ) -> TicketEvent:
        """Save and record a reopening made by ``open_again``."""
        self.save(update_fields=["status", "closed_at", "closed_as", "updated_at"])
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

    def check_no_open_promise(self) -> None:
        """A ticket cannot close while a promise made on it is open (kept or broken: it can)."""
        promise = self.promises.filter(state=PromiseState.OPEN).order_by("due_at").first()
        if promise is not None:
            raise StepError(
                f"A promise is still open: \u201c{promise.text}\u201d (due "
                f"{when(promise.due_at, self.organization)}). Keep it before closing."
            )

    def skip_step(self, step: str, *, reason: str, by: User, note: str = "") -> TicketEvent:
        """Skip the next care step, only with a reason (``SkipReason``); recorded. Skipping the
        close-out closes the ticket without a public close-out (its own kind of event)."""
        self.check_step(step)
        reason = SkipReason.check(reason, note)
        if step == Step.CLOSE_OUT:
            closed = self.close_without_reply(reason=reason, by=by, note=note)
            assert closed is not None  # check_step: the ticket is open
            return closed
        self.status = STEP_RULES[step].leads_to
        self.save(update_fields=["status", "updated_at"])
        return self.record(
            EventKind.STEP_SKIPPED,
            actor=by,
            step=step,
            reason=reason,
            note=note,
            summary=f"{Step(step).label}: {SkipReason(reason).label}"
            + (f" ({note})" if note else ""),
        )

    def close_without_reply(
        self, *, reason: str, by: User | None, note: str = ""
    ) -> TicketEvent | None:
        """Close an open ticket from any step with no public close-out, only with a reason
        (``SkipReason``: spam, a duplicate, DMs closed, the post deleted, the customer never
        answered, or "other" with a note). The one way a ticket closes without replying: the
        inbox's bulk "close as spam / duplicate", the ticket's "close without a public
        close-out" and skipping the close-out step all come here. Recorded as one kind,
        ``closed_without_close_out`` (the reason in its data), so reports count every such
        close by reason; ``closed_as`` keeps the reason on the ticket. A closed ticket changes
        nothing and returns None; an open promise holds it (StepError)."""
        note = " ".join(note.split())[:200]
        reason = SkipReason.check(reason, note)
        if not self.is_open:
            return None
        self.check_no_open_promise()
        before = self.status
        self.status, self.closed_as, self.closed_at = Status.CLOSED, reason, timezone.now()
        self.save(update_fields=["status", "closed_as", "closed_at", "updated_at"])
        return self.record(
            EventKind.CLOSED_WITHOUT_CLOSE_OUT,
            actor=by,
            from_status=before,
            reason=reason,
            note=note,
            summary=SkipReason(reason).label + (f" ({note})" if note else ""),
        )

    @property
    def closed_without_reply_label(self) -> str:
        """Why it closed with no public close-out ("Spam"), or "" (closed out, or open)."""
        if self.status != Status.CLOSED or not self.closed_as:
            return ""
        return str(SkipReason(self.closed_as).label) if self.closed_as in SkipReason.values else ""


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
    # Indexed by ``message_ticket_latest_idx`` (ticket first), not by an index of its own.
    ticket = models.ForeignKey(
        Ticket, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
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
        indexes = [
            # A ticket's conversation in order, and its latest message's direction (the
            # inbox's "Waiting on customer") from the index alone.
            models.Index(
                fields=["ticket", "-created_at", "-id"],
                include=["direction"],
                name="message_ticket_latest_idx",
            ),
        ]
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
    # PostgreSQL: the claimant's database backend (careinbox.liveness). A sender killed
    # mid-send is flagged uncertain at the next housekeeping, not minutes later.
    claim_holder = models.IntegerField(null=True, blank=True)
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
    # A customer's follow-up reads differently from before (tickets.priority).
    SENTIMENT_CHANGED = "sentiment_changed", "Sentiment changed"
    # A pure repost of one of the ticket's posts: no message, a wider reach.
    REPOSTED = "reposted", "Reposted"
    ASSIGNED = "assigned", "Assigned"
    TAGGED = "tagged", "Tagged"
    UNTAGGED = "untagged", "Tag removed"
    APPROVAL_REQUIRED = "approval_required", "Replies need approval"
    # Team work, notes, promises, skipped steps and moderation (issue #8).
    NOTE_ADDED = "note_added", "Internal note"
    STEP_SKIPPED = "step_skipped", "Step skipped"
    # Closed with no public close-out: its own kind, so reports count it without guessing.
    CLOSED_WITHOUT_CLOSE_OUT = "closed_without_close_out", "Closed without a public close-out"
    PROMISE_MADE = "promise_made", "Promise made"
    PROMISE_REMINDER = "promise_reminder", "Promise reminder sent"
    PROMISE_KEPT = "promise_kept", "Promise kept"
    PROMISE_BROKEN = "promise_broken", "Promise broken"
    MODERATION_REQUESTED = "moderation_requested", "Hiding a post"
    POST_HIDDEN = "post_hidden", "Post hidden"
    MODERATION_FAILED = "moderation_failed", "Hiding refused by the platform"
    DELETION_REQUESTED = "deletion_requested", "Deleting a post"
    POST_DELETED = "post_deleted", "Post deleted"
    DELETION_FAILED = "deletion_failed", "Deleting refused by the platform"
    # Replying well (tickets.reply_guard, tickets.services.approval).
    REPLY_HELD = "reply_held", "Reply held for approval"
    REPLY_APPROVED = "reply_approved", "Reply approved"
    REPLY_REJECTED = "reply_rejected", "Reply rejected"
    GUARD_OVERRIDDEN = "guard_overridden", "Reply guard overridden"
    GUARD_WARNINGS_SENT = "guard_warnings_sent", "Sent despite reply-guard warnings"
    # History only: before closing without a reply became one kind (``closed_without_close_out``
    # with its reason), bulk closes were recorded as these. Kept for the labels of old events.
    CLOSED_AS_SPAM = "closed_as_spam", "Closed as spam"
    CLOSED_AS_DUPLICATE = "closed_as_duplicate", "Closed as a duplicate"

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


def lock_search_documents(ticket_ids: Iterable[int]) -> None:
    """Lock the search documents of ``ticket_ids`` (``tickets_ticketsearch``, PostgreSQL), in
    ticket order, in the caller's transaction: for a statement about to change the text or the
    ticket of many messages. Migration 0026's message update trigger is row-level: each row's
    call locks its documents as the statement meets the row, in no set order, so without this
    such a statement can deadlock with a batch ingest locking documents in ticket order."""
    ids = sorted(set(ticket_ids))
    if not ids or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM tickets_ticketsearch WHERE ticket_id = ANY(%s) "
            "ORDER BY ticket_id FOR UPDATE",
            [ids],
        )


# --- Team work, notes, promises, skipped steps and moderation (issue #8) ---------------------


def when(moment: datetime, organization: Organization) -> str:
    """A time as the organisation's people read it: "Dec 1, 17:00" in its time zone."""
    return f"{timezone.localtime(moment, ZoneInfo(organization.time_zone)):%b %-d, %H:%M}"


class SkipReason(models.TextChoices):
    """Why a care step was skipped, or a ticket closed without a public close-out."""

    NO_ANSWER = "no_answer", "The customer never answered the DM"
    DMS_CLOSED = "dms_closed", "The customer's DMs are closed"
    POST_DELETED = "post_deleted", "The customer deleted the post"
    SPAM = "spam", "Spam"
    DUPLICATE = "duplicate", "A duplicate of another ticket"
    OTHER = "other", "Other (say why)"

    @classmethod
    def check(cls, reason: str, note: str) -> str:
        """The reason, valid; else StepError saying what is missing."""
        if reason not in cls.values:
            raise StepError("Choose a reason: " + ", ".join(str(r.label) for r in cls) + ".")
        if reason == cls.OTHER and not note.strip():
            raise StepError("Say why, in a few words, when the reason is \u201cother\u201d.")
        return reason


class ModerationReason(models.TextChoices):
    """The community guidelines a post may be hidden or deleted for; nothing else does."""

    HARASSING = "harassing", "Harassing someone"
    DEROGATORY = "derogatory", "Derogatory or hateful"
    VULGAR = "vulgar", "Vulgar or obscene"
    SPAM = "spam", "Spam"


class TeamRouting(models.Model):
    """How a team hands out tickets: round-robin on or off, whether new tickets come to it, and
    the round-robin's place (the member who was given the last ticket)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    team = models.OneToOneField(Team, on_delete=models.CASCADE, related_name="routing")
    auto_assign = models.BooleanField(
        default=False, help_text="Hand each ticket that comes to the team to the next member."
    )
    takes_new_tickets = models.BooleanField(
        default=False, help_text="Every newly opened ticket comes to this team."
    )
    last_assigned = models.ForeignKey(
        "accounts.Membership", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(takes_new_tickets=True),
                name="one_intake_team_per_org",
            )
        ]

    def __str__(self) -> str:
        return f"Routing of {self.team}"


class Note(models.Model):
    """An internal note on a ticket: for colleagues only, never sent anywhere. Never edited."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    mentions: models.ManyToManyField[User, Any] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["ticket", "created_at"], name="note_ticket_idx")]

    def __str__(self) -> str:
        return f"Note on #{self.ticket_id}: {self.body[:40]}"


class PromiseState(models.TextChoices):
    OPEN = "open", "Open"
    KEPT = "kept", "Kept"
    BROKEN = "broken", "Broken"


class PromiseQuerySet(OrgQuerySet["Promise"]):
    def open(self) -> PromiseQuerySet:
        return self.filter(state=PromiseState.OPEN)


class Promise(models.Model):
    """Something an agent promised the customer ("call back by 17:00"), with its due time.

    Open until kept; the sweep reminds before ``remind_at`` and marks it broken once ``due_at``
    has passed (``broken_at``). A broken promise can still be kept, late (``kept_at`` after
    ``due_at``). Escalation rules read ``state``, ``due_at``, ``broken_at``.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="promises")
    text = models.CharField(max_length=300)
    made_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    remind_at = models.DateTimeField(help_text="When the reminder goes out (before due_at).")
    reminded_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=PromiseState.choices, default=PromiseState.OPEN)
    kept_at = models.DateTimeField(null=True, blank=True)
    kept_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    broken_at = models.DateTimeField(null=True, blank=True)

    objects = PromiseQuerySet.as_manager()

    class Meta:
        ordering = ["due_at", "pk"]
        indexes = [
            # The sweep and escalation: open promises by due time, and reminders not yet sent.
            models.Index(
                fields=["due_at"],
                condition=models.Q(state="open"),
                name="promise_open_due_idx",
            ),
            models.Index(
                fields=["remind_at"],
                condition=models.Q(state="open", reminded_at__isnull=True),
                name="promise_reminder_due_idx",
            ),
            models.Index(fields=["ticket", "state"], name="promise_ticket_idx"),
        ]

    def __str__(self) -> str:
        return self.text

    @property
    def kept_late(self) -> bool:
        """Kept after it was due (it had been marked broken, or was kept past its time)."""
        return self.kept_at is not None and (
            self.broken_at is not None or self.kept_at > self.due_at
        )

    def keep(self, *, by: User) -> TicketEvent:
        """The agent kept the promise (late if it was broken); recorded."""
        if self.state == PromiseState.KEPT:
            raise StepError("This promise was kept already.")
        self.state, self.kept_at, self.kept_by = PromiseState.KEPT, timezone.now(), by
        self.save(update_fields=["state", "kept_at", "kept_by"])
        late = " (late)" if self.kept_late else ""
        return self.ticket.record(
            EventKind.PROMISE_KEPT,
            actor=by,
            promise_id=self.pk,
            late=bool(late),
            summary=f"\u201c{self.text}\u201d{late}",
        )

    def mark_broken(self, *, at: datetime | None = None) -> TicketEvent | None:
        """The due time passed and it is not kept; recorded once (None if it was not open)."""
        moment = at or timezone.now()
        changed = Promise.objects.filter(pk=self.pk, state=PromiseState.OPEN).update(
            state=PromiseState.BROKEN, broken_at=moment
        )
        if not changed:
            return None
        self.state, self.broken_at = PromiseState.BROKEN, moment
        return self.ticket.record(
            EventKind.PROMISE_BROKEN,
            at=moment,
            promise_id=self.pk,
            due_at=self.due_at.isoformat(),
            summary=f"\u201c{self.text}\u201d, due {when(self.due_at, self.ticket.organization)}",
        )

    def mark_reminded(self, *, at: datetime | None = None) -> TicketEvent | None:
        """The reminder went out; recorded once (None if already reminded or not open)."""
        moment = at or timezone.now()
        changed = Promise.objects.filter(
            pk=self.pk, state=PromiseState.OPEN, reminded_at__isnull=True
        ).update(reminded_at=moment)
        if not changed:
            return None
        self.reminded_at = moment
        return self.ticket.record(
            EventKind.PROMISE_REMINDER,
            at=moment,
            promise_id=self.pk,
            summary=f"\u201c{self.text}\u201d is due {when(self.due_at, self.ticket.organization)}",
        )


# --- Replying well: priority rules, canned responses, approvals ---------------------------------


def _clean_list(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


class PriorityRules(models.Model):
    """An organisation's priority settings: its own keywords and hashtags, and its VIPs.

    One row per organisation, made on first use (``for_organization``); the built-in factors
    (reach, virality, sentiment, repeat complaints) need no settings.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="priority_rules"
    )
    keywords = models.JSONField(
        default=list, blank=True, help_text="Words or phrases that raise a ticket ('refund')."
    )
    hashtags = models.JSONField(
        default=list, blank=True, help_text="Hashtags that raise a ticket, without the #."
    )
    vip_handles = models.JSONField(
        default=list, blank=True, help_text="Customers' handles (without @) treated as VIPs."
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Priority rules of {self.organization}"

    @classmethod
    def for_organization(cls, organization_id: int) -> PriorityRules:
        rules, _ = cls.objects.get_or_create(organization_id=organization_id)
        return rules

    def clean_values(self) -> None:
        self.keywords = _clean_list([k.lower() for k in self.keywords])
        self.hashtags = _clean_list([h.lstrip("#").lower() for h in self.hashtags])
        self.vip_handles = _clean_list([v.lstrip("@").lower() for v in self.vip_handles])


DEFAULT_LEGAL_KEYWORDS = [
    "lawyer",
    "lawsuit",
    "solicitor",
    "attorney",
    "legal action",
    "sue",
    "court",
    "ombudsman",
    "trading standards",
    "compensation claim",
]


class ApprovalRules(models.Model):
    """When a reply goes to a manager's approval queue before it is sent.

    Any rule that matches holds the reply: a legal keyword in the reply or in the customer's
    messages, a VIP author, a high-reach author, one of the listed brands; and always a ticket
    with ``Ticket.approval_required`` (set by escalation).
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="approval_rules"
    )
    legal_keywords = models.JSONField(default=list, blank=True)
    vip_authors = models.BooleanField(
        default=True, help_text="Hold replies to customers on the VIP list."
    )
    min_followers = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Hold replies to authors with at least this many followers.",
    )
    brands = models.ManyToManyField(Brand, blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Approval rules of {self.organization}"

    @classmethod
    def for_organization(cls, organization_id: int) -> ApprovalRules:
        rules, _ = cls.objects.get_or_create(
            organization_id=organization_id,
            defaults={"legal_keywords": list(DEFAULT_LEGAL_KEYWORDS)},
        )
        return rules


class CannedResponse(models.Model):
    """A saved reply with placeholders and variants, so no two customers get the same bytes.

    Placeholders: ``{name}`` (the customer's name, else their handle), ``{handle}``
    (``@handle``), ``{dm_link}`` (a link that opens a private conversation with the brand),
    ``{agent}`` (the agent's first name), ``{brand}``.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="canned_responses"
    )
    title = models.CharField(max_length=100)
    step = models.CharField(
        max_length=16, choices=Step.choices, blank=True, help_text="The step it is for (any)."
    )
    variants = models.JSONField(default=list)
    uses = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["title", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "title"], name="canned_title_per_org")
        ]

    def __str__(self) -> str:
        return self.title


class ApprovalState(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved and sent"
    REJECTED = "rejected", "Rejected"


class ApprovalRequestQuerySet(OrgQuerySet["ApprovalRequest"]):
    def pending(self) -> ApprovalRequestQuerySet:
        return self.filter(state=ApprovalState.PENDING)

    def waiting_longer_than(self, wait: timedelta) -> ApprovalRequestQuerySet:
        """Pending replies held for more than ``wait`` (escalation's "awaiting approval for N
        minutes"; served by ``approval_pending_idx``)."""
        return self.pending().filter(requested_at__lt=timezone.now() - wait)


class ApprovalRequest(models.Model):
    """A reply held for a manager: approved (as written or edited) it goes out through the
    outbox once; rejected it goes back to the agent with the manager's comment.

    At most one is pending per ticket. ``requested_at`` with ``state`` serves the queue and
    escalation's "reply awaiting approval for N minutes".
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="approvals")
    step = models.CharField(max_length=16, choices=Step.choices)
    text = models.TextField(help_text="The reply as the agent wrote it.")
    reasons = models.JSONField(default=list, help_text="Why it needs approval.")
    guard_flags = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(
        max_length=10, choices=ApprovalState.choices, default=ApprovalState.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    sent_text = models.TextField(blank=True, help_text="What went out, if a manager edited it.")
    message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="approval"
    )

    objects = ApprovalRequestQuerySet.as_manager()

    class Meta:
        ordering = ["requested_at", "pk"]
        indexes = [
            models.Index(
                fields=["organization", "requested_at"],
                condition=models.Q(state="pending"),
                name="approval_pending_idx",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["ticket"],
                condition=models.Q(state="pending"),
                name="approval_one_pending_per_ticket",
            )
        ]

    def __str__(self) -> str:
        return f"Approval {self.pk} for ticket {self.ticket_id} ({self.state})"

    @property
    def edited(self) -> bool:
        return bool(self.sent_text) and self.sent_text != self.text


# --- The agent inbox: saved views ------------------------------------------------------------


class SavedView(models.Model):
    """An agent's own inbox view: filters and a sort, kept by name (``tickets.inbox``).

    ``filters`` holds the cleaned data of ``tickets.inbox.ViewFilterForm`` (ids and choice
    values only), so a view saved today reads the same after a brand or tag is renamed.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="saved_views"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=60)
    filters = models.JSONField(default=dict, blank=True)
    sort = models.CharField(max_length=16, default="risk")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "owner", "name"], name="saved_view_name_per_owner"
            )
        ]

    def __str__(self) -> str:
        return self.name


class InboxCountsStamp(models.Model):
    """A token per organisation that changes after every committed write that can change an
    inbox count (``tickets.inbox.view_counts`` caches the counts under it).

    It lives in the database, not the cache: ``make run``'s web process and Celery worker each
    have their own local-memory cache, and a write in one must be seen by the other. The token
    is written after the writing transaction commits, by one statement outside any transaction
    (``counts_changed``): no writer ever holds its row, so it adds no lock order to the
    writes. A count read after the new token was read reflects every write before it."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    token = models.CharField(max_length=16)

    def __str__(self) -> str:
        return f"inbox counts of organisation {self.organization_id}: {self.token}"

    @classmethod
    def counts_changed(cls, organization_id: int) -> None:
        """After the current transaction commits (at once outside one), give the
        organisation's counts a new token. One statement per commit and organisation: every
        write registers its callback (a savepoint rolled back takes its own away), and the
        callbacks registered in one transaction share one ``_TokenGroup``, whose first
        callback to run writes the token and whose others then do nothing."""
        conn = transaction.get_connection()
        group: _TokenGroup | None = None
        if conn.in_atomic_block:
            group = next(
                (
                    func.group
                    for _sids, func, _robust in reversed(conn.run_on_commit)
                    if isinstance(func, _NewCountsToken)
                    and func.organization_id == organization_id
                    and not func.group.done  # (a test's transaction that never commits)
                ),
                None,
            )
        transaction.on_commit(_NewCountsToken(organization_id, group or _TokenGroup()), robust=True)

    @classmethod
    def token_for(cls, organization_id: int) -> str:
        """The organisation's current token (one primary-key read); an organisation that has
        none yet gets one, so counts cached for an earlier organisation of the same id
        (SQLite reuses ids) are never taken for its own."""
        current = cls.objects.filter(organization_id=organization_id).values_list(
            "token", flat=True
        )
        token = current.first()
        if token is None:
            import secrets

            InboxCountsStamp.objects.bulk_create(
                [InboxCountsStamp(organization_id=organization_id, token=secrets.token_hex(8))],
                ignore_conflicts=True,
            )
            token = current.first() or ""
        return token


class _TokenGroup:
    """The callbacks of one transaction for one organisation (``counts_changed``)."""

    done = False


class _NewCountsToken:
    """The callback of ``InboxCountsStamp.counts_changed`` (a class, so a pending one is found)."""

    def __init__(self, organization_id: int, group: _TokenGroup) -> None:
        self.organization_id = organization_id
        self.group = group

    def __call__(self) -> None:
        import secrets

        if self.group.done:
            return
        self.group.done = True
        InboxCountsStamp.objects.bulk_create(
            [InboxCountsStamp(organization_id=self.organization_id, token=secrets.token_hex(8))],
            update_conflicts=True,
            unique_fields=["organization"],
            update_fields=["token"],
        )
