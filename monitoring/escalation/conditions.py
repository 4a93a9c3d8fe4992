"""Condition kinds: each narrows a queryset of open tickets, set-based (no query per ticket).

A rule stores its conditions as ``[{"kind": "<key>", ...params}]``; all must hold. A kind is a
``ConditionKind`` registered here with ``register_condition``; it contributes its own form
fields (the rule form is built from the registry), turns what the admin typed into params, says
in words what it checks, and filters tickets. Kinds another app's data enables later (sentiment,
a promise overdue, a reply awaiting approval) plug in the same way.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any, ClassVar

from django import forms
from django.db.models import Exists, OuterRef, Q

from careinbox.accounts.models import Organization
from channels_social.base import ChannelAdapter, PostFact, ReplyFacts
from channels_social.models import Brand, Platform
from channels_social.registry import adapter_class, platforms_with_adapters
from monitoring.models import Metric, SlaTimer, TimerState
from tickets.models import (
    ApprovalRequest,
    ApprovalState,
    Direction,
    EventKind,
    Message,
    MessageKind,
    OutboxState,
    Priority,
    Promise,
    PromiseState,
    Sentiment,
    Status,
    TicketEvent,
    TicketQuerySet,
)

log = logging.getLogger(__name__)

Params = dict[str, Any]


class ConditionKind(ABC):
    """One kind of condition. ``cost`` orders evaluation: cheap SQL filters first, kinds that
    read rows into Python (``reply_window``) last, over what the others left."""

    key: ClassVar[str]
    label: ClassVar[str]
    cost: ClassVar[int] = 0

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        """This kind's fields on the rule form (short names; the form prefixes them)."""
        return {}

    @abstractmethod
    def params(self, data: dict[str, Any]) -> Params | None:
        """The params of what the admin typed (cleaned values of this kind's fields); None
        when this kind is not used by the rule."""

    def initial(self, params: Params) -> dict[str, Any]:
        """The form's initial values for stored params."""
        return {name: value for name, value in params.items() if name != "kind"}

    @abstractmethod
    def describe(self, params: Params) -> str:
        """What the condition checks, in words, for the rule list."""

    @abstractmethod
    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        """``tickets`` narrowed to those the condition holds for at ``now``."""


_kinds: dict[str, ConditionKind] = {}


def register_condition(kind: ConditionKind) -> ConditionKind:
    _kinds[kind.key] = kind
    return kind


def condition_kinds() -> list[ConditionKind]:
    return list(_kinds.values())


def condition_kind(key: str) -> ConditionKind | None:
    return _kinds.get(key)


class UnknownCondition(Exception):
    """A stored condition names a kind no app registers (any more): the rule matches nothing."""


def apply_conditions(
    tickets: TicketQuerySet, conditions: list[Params], now: datetime
) -> TicketQuerySet:
    """``tickets`` narrowed by every condition. No conditions match nothing (a rule without
    any would otherwise escalate every open ticket); nor does a kind that is not registered."""
    if not conditions:
        return tickets.none()
    resolved: list[tuple[ConditionKind, Params]] = []
    for params in conditions:
        kind = condition_kind(str(params.get("kind", "")))
        if kind is None:
            raise UnknownCondition(f"There is no condition kind {params.get('kind')!r}.")
        resolved.append((kind, params))
    for kind, params in sorted(resolved, key=lambda pair: pair[0].cost):
        try:
            tickets = kind.filter(tickets, params, now)
        except (KeyError, TypeError, ValueError) as error:
            # Stored params this kind cannot read (edited by hand, or an older shape): the
            # rule matches nothing, with the reason logged, rather than stopping the sweep.
            raise UnknownCondition(
                f"The {kind.key!r} condition has params it cannot read: {params!r} ({error!r})."
            ) from None
    return tickets


def describe_conditions(conditions: list[Params]) -> list[str]:
    words = []
    for params in conditions:
        kind = condition_kind(str(params.get("kind", "")))
        words.append(kind.describe(params) if kind else f"unknown condition {params.get('kind')!r}")
    return words


# The kinds ---------------------------------------------------------------------------------------

SLA_STATES = [("warning", "at risk (warned, or breached)"), ("breach", "breached")]


class SlaCondition(ConditionKind):
    """A target of the ticket's SLA at risk or breached and still owed (monitoring's timers)."""

    key = "sla"
    label = "SLA at risk or breached"

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "metric": forms.ChoiceField(
                label="SLA target",
                choices=[("", "—"), *Metric.choices],
                required=False,
            ),
            "state": forms.ChoiceField(label="is", choices=SLA_STATES, initial="warning"),
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        if not data.get("metric"):
            return None
        return {"metric": data["metric"], "state": data.get("state") or "warning"}

    def describe(self, params: Params) -> str:
        metric = Metric(params["metric"]).label
        state = dict(SLA_STATES).get(params.get("state", "warning"), params.get("state"))
        return f"{metric} SLA {state}"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        owed = SlaTimer.objects.filter(
            ticket_id=OuterRef("pk"), metric=params["metric"], fulfilled_at__isnull=True
        )
        if params.get("state") == "breach":
            owed = owed.filter(state=TimerState.BREACHED)
        else:
            owed = owed.filter(
                Q(state=TimerState.RUNNING, warned_at__isnull=False) | Q(state=TimerState.BREACHED)
            )
        return tickets.filter(Exists(owed))


class PriorityCondition(ConditionKind):
    key = "priority"
    label = "Priority at least"

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "at_least": forms.TypedChoiceField(
                label="Priority at least",
                choices=[("", "—"), *Priority.choices],
                coerce=int,
                empty_value=None,
                required=False,
            )
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        return None if data.get("at_least") is None else {"at_least": int(data["at_least"])}

    def describe(self, params: Params) -> str:
        return f"priority {Priority(params['at_least']).label} or higher"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        return tickets.filter(priority__lte=params["at_least"])  # 1 is Urgent


class FollowersCondition(ConditionKind):
    key = "followers"
    label = "Author followers at least"

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "at_least": forms.IntegerField(
                label="Author followers at least", min_value=0, required=False
            )
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        return None if data.get("at_least") is None else {"at_least": data["at_least"]}

    def describe(self, params: Params) -> str:
        return f"author has at least {params['at_least']:,} followers"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        return tickets.filter(customer_followers__gte=params["at_least"])


def split_words(text: str) -> list[str]:
    """Keywords and hashtags as typed: separated by commas or new lines, blanks dropped, each
    once (case-insensitively), in the order given."""
    seen: dict[str, str] = {}
    for word in re.split(r"[,\n]", text or ""):
        word = " ".join(word.split())
        if word and word.lower() not in seen:
            seen[word.lower()] = word[:100]
    return list(seen.values())


class KeywordCondition(ConditionKind):
    """Any of the words (or #hashtags) in any of the customer's messages on the ticket."""

    key = "keyword"
    label = "Keyword or hashtag"

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "words": forms.CharField(
                label="Customer wrote any of",
                required=False,
                max_length=1000,
                help_text="Words, phrases or #hashtags, separated by commas; any case.",
            )
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        words = split_words(data.get("words") or "")
        return {"words": words} if words else None

    def initial(self, params: Params) -> dict[str, Any]:
        return {"words": ", ".join(params.get("words", []))}

    def describe(self, params: Params) -> str:
        return "customer wrote " + " or ".join(f"“{word}”" for word in params["words"])

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        words = params.get("words") or []
        if not words:
            return tickets.none()
        said = reduce(or_, (Q(text__icontains=word) for word in words))
        inbound = Message.objects.filter(
            ticket_id=OuterRef("pk"), direction=Direction.INBOUND
        ).filter(said)
        return tickets.filter(Exists(inbound))


class ChannelCondition(ConditionKind):
    """The ticket's brand and/or platform among those chosen."""

    key = "channel"
    label = "Channel or brand"

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "brands": forms.ModelMultipleChoiceField(
                label="Brand is any of",
                queryset=Brand.objects.filter(organization=organization).order_by("name"),
                required=False,
                widget=forms.CheckboxSelectMultiple,
            ),
            "platforms": forms.MultipleChoiceField(
                label="Platform is any of",
                choices=platforms_with_adapters(),
                required=False,
                widget=forms.CheckboxSelectMultiple,
            ),
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        brands = sorted(brand.pk for brand in data.get("brands") or [])
        platforms = sorted(data.get("platforms") or [])
        if not brands and not platforms:
            return None
        return {"brands": brands, "platforms": platforms}

    def describe(self, params: Params) -> str:
        parts = []
        if params.get("brands"):
            names = Brand.objects.filter(pk__in=params["brands"]).values_list("name", flat=True)
            parts.append("brand " + " or ".join(sorted(names)))
        if params.get("platforms"):
            labels = dict(Platform.choices)
            parts.append("on " + " or ".join(labels.get(p, p) for p in params["platforms"]))
        return ", ".join(parts)

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        if params.get("brands"):
            tickets = tickets.filter(brand_id__in=params["brands"])
        if params.get("platforms"):
            tickets = tickets.filter(platform__in=params["platforms"])
        return tickets


class MinutesCondition(ConditionKind):
    """A kind whose one parameter is a number of minutes (how long something has held): its
    field, params and wording come from ``field_label`` and ``wording``."""

    field_label: ClassVar[str]
    wording: ClassVar[str]  # e.g. "unassigned for {minutes} min"

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "minutes": forms.IntegerField(
                label=self.field_label, min_value=0, max_value=60 * 24 * 30, required=False
            )
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        return None if data.get("minutes") is None else {"minutes": data["minutes"]}

    def describe(self, params: Params) -> str:
        return self.wording.format(minutes=params["minutes"])


class UnassignedCondition(MinutesCondition):
    """No person assigned for at least N minutes: since the last assignment change (an
    unassignment), or since the ticket opened if it never had one."""

    key = "unassigned"
    label = "Unassigned for"

    field_label = "Unassigned for at least (minutes)"
    wording = "unassigned for {minutes} min"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        # Unassigned since max(the last assignment change, opening) <= cutoff, written as an
        # anti-join (no assignment change after the cutoff), which the database runs as one
        # pass over the events instead of a sub-select per ticket.
        cutoff = now - timedelta(minutes=params["minutes"])
        changed_since = TicketEvent.objects.filter(
            ticket_id=OuterRef("pk"), kind=EventKind.ASSIGNED, at__gt=cutoff
        )
        return tickets.filter(assigned_to__isnull=True, opened_at__lte=cutoff).exclude(
            Exists(changed_since)
        )


class PromiseOverdueCondition(MinutesCondition):
    """A promise made to the customer is overdue by at least N minutes and still not kept
    (open past its due time, or marked broken by the promise sweep)."""

    key = "promise_overdue"
    label = "Promise overdue"

    field_label = "A promise overdue by at least (minutes)"
    wording = "a promise overdue by {minutes} min"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        cutoff = now - timedelta(minutes=params["minutes"])
        overdue = Promise.objects.filter(
            ticket_id=OuterRef("pk"),
            state__in=(PromiseState.OPEN, PromiseState.BROKEN),
            kept_at__isnull=True,
            due_at__lte=cutoff,
        )
        return tickets.filter(Exists(overdue))


class SentimentCondition(ConditionKind):
    """The customer's post reads as the chosen sentiment (``Ticket.sentiment``, scored at
    ingest by ``tickets.sentiment``)."""

    key = "sentiment"
    label = "Sentiment"

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "is": forms.ChoiceField(
                label="Sentiment is",
                choices=[("", "(any)"), *Sentiment.choices],
                required=False,
            )
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        return {"is": data["is"]} if data.get("is") else None

    def describe(self, params: Params) -> str:
        return f"sentiment is {params['is']}"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        return tickets.filter(sentiment=params["is"])


class AwaitingApprovalCondition(MinutesCondition):
    """A reply has waited in the approval queue for at least N minutes."""

    key = "awaiting_approval"
    label = "Reply awaiting approval"

    field_label = "A reply awaiting approval for at least (minutes)"
    wording = "a reply awaiting approval for {minutes} min"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        waiting = ApprovalRequest.objects.filter(
            ticket_id=OuterRef("pk"),
            state=ApprovalState.PENDING,
            requested_at__lte=now - timedelta(minutes=params["minutes"]),
        )
        return tickets.filter(Exists(waiting))


# The statuses with a private step still ahead (take offline, resolve): the ones a closing
# private window can still hurt.
PRIVATE_STEP_AHEAD = (Status.NEW, Status.ACKNOWLEDGED, Status.OFFLINE)


def _has_reply_windows(platform: str) -> bool:
    cls = adapter_class(platform)
    return cls.reply_window.__func__ is not ChannelAdapter.reply_window.__func__  # type: ignore[attr-defined]


def bulk_reply_facts(tickets: TicketQuerySet, now: datetime) -> dict[int, tuple[str, ReplyFacts]]:
    """``tickets.services.outbox.reply_facts`` for many tickets in three queries: per ticket its
    platform and the facts its platform's reply windows read (the customer's last private
    message, their latest public post, the posts already answered privately). The customers'
    messages are read once, in order, and folded here: cheaper than sub-selects per ticket.
    A test holds the two to the same answers."""
    rows = list(tickets.values_list("pk", "platform", "customer_display_name", "customer_username"))
    if not rows:
        return {}
    candidates = tickets.values("pk")
    last_private: dict[int, datetime] = {}
    latest_public: dict[int, PostFact] = {}
    inbound = (
        Message.objects.filter(ticket__in=candidates, direction=Direction.INBOUND)
        .exclude(external_id="")
        .order_by("ticket_id", "created_at", "pk")
        .values_list("ticket_id", "is_public", "external_id", "created_at", "kind")
    )
    for ticket_id, is_public, external_id, created_at, kind in inbound:
        if is_public:  # in order: the last one seen is the latest (created_at, then pk)
            latest_public[ticket_id] = PostFact(external_id, created_at, kind)
        else:
            last_private[ticket_id] = created_at
    answered: dict[int, set[str]] = {}
    replies = (
        Message.objects.filter(
            ticket__in=candidates, direction=Direction.OUTBOUND, kind=MessageKind.PRIVATE_REPLY
        )
        .exclude(outbox__state=OutboxState.FAILED)
        .values_list("ticket_id", "in_reply_to_external_id")
    )
    for ticket_id, external_id in replies:
        answered.setdefault(ticket_id, set()).add(external_id)
    return {
        pk: (
            platform,
            ReplyFacts(
                now=now,
                customer_name=display or username,
                last_private_from_customer_at=last_private.get(pk),
                reply_to=latest_public.get(pk),
                privately_answered=frozenset(answered.get(pk, set())),
            ),
        )
        for pk, platform, display, username in rows
    }


class ReplyWindowCondition(ConditionKind):
    """The platform's window for the ticket's private steps (the adapter's ``private_kind`` and
    ``reply_window``: Facebook's 24-hour and 7-day Messenger windows, the one private reply per
    comment within 7 days) is open now and closes within N minutes. Platforms without reply
    windows (X) never match. The facts are read in three queries for all candidates, the
    adapter's rules applied to each row in Python."""

    key = "reply_window"
    label = "Reply window closing"
    cost = 100

    def form_fields(self, organization: Organization) -> dict[str, forms.Field]:
        return {
            "within_minutes": forms.IntegerField(
                label="Platform reply window closes within (minutes)",
                min_value=1,
                max_value=60 * 24 * 7,
                required=False,
            )
        }

    def params(self, data: dict[str, Any]) -> Params | None:
        minutes = data.get("within_minutes")
        return None if minutes is None else {"within_minutes": minutes}

    def describe(self, params: Params) -> str:
        return f"the platform's reply window closes within {params['within_minutes']} min"

    def filter(self, tickets: TicketQuerySet, params: Params, now: datetime) -> TicketQuerySet:
        platforms = [value for value, _ in platforms_with_adapters() if _has_reply_windows(value)]
        candidates = tickets.filter(platform__in=platforms, status__in=PRIVATE_STEP_AHEAD)
        horizon = now + timedelta(minutes=params["within_minutes"])
        closing = []
        for pk, (platform, facts) in bulk_reply_facts(candidates, now).items():
            adapter = adapter_class(platform)
            window = adapter.reply_window(adapter.private_kind(facts), facts)
            if window.open and window.closes_at is not None and window.closes_at <= horizon:
                closing.append(pk)
        return tickets.filter(pk__in=closing)


for _kind in (
    SlaCondition(),
    PriorityCondition(),
    FollowersCondition(),
    KeywordCondition(),
    ChannelCondition(),
    UnassignedCondition(),
    PromiseOverdueCondition(),
    SentimentCondition(),
    AwaitingApprovalCondition(),
    ReplyWindowCondition(),
):
    register_condition(_kind)
