"""Priority a manager can read: a score from named factors, each with its points and reason.

Factors: reach (the author's followers and the reach of those who reposted), virality (reposts,
quotes and likes per hour since the post), sentiment (``tickets.sentiment``), legal or safety
risk, the organisation's own keywords and hashtags, repeat complaints by the same customer, and
VIPs (the organisation's list, or a verified author). The level is cut from the sum; the
factors are stored on the ticket largest first (``Ticket.priority_factors``), their reasons in
``Ticket.priority_reasons``, the first being ``Ticket.main_priority_reason``.

Cheap at ingest (issue #11): pure arithmetic and a few compiled regular expressions per post;
the caller fetches the organisation's rules and the repeat count (two indexed queries).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from django.utils import timezone

from tickets import sentiment as sentiment_module
from tickets.models import (
    Direction,
    EventKind,
    Message,
    Priority,
    PriorityRules,
    Ticket,
    TicketEvent,
)

if TYPE_CHECKING:
    from channels_social.base import InboundPost

LARGE_AUDIENCE = 10_000
MEDIUM_AUDIENCE = 1_000

RISK_WORDS = re.compile(
    r"\b(lawsuit|lawyer|solicitor|sue|suing|injur\w*|unsafe|dangerous|fire|smoke|burn\w*|"
    r"fraud|scam|police|poison\w*|allerg\w*)\b",
    re.I,
)
SPREADING_HASHTAGS = ("thissucks", "boycott", "fail", "neveragain", "worst")

# The level from the score: Urgent from 50, High from 25, Low at -5 or under (praise, little
# reach), Normal between; legal or safety risk is Urgent whatever the score.
URGENT_FROM = 50
HIGH_FROM = 25
LOW_UNDER = -5


@dataclass(frozen=True)
class Factor:
    factor: str  # "reach", "virality", "sentiment", "risk", "keyword", "hashtag", "repeat", "vip"
    points: int
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"factor": self.factor, "points": self.points, "reason": self.reason}


@dataclass(frozen=True)
class Signals:
    """What is known about a post when it is scored (at ingest, or again on a repost)."""

    text: str
    followers: int
    author_handle: str = ""
    author_verified: bool = False
    metrics: dict[str, int] = field(default_factory=dict)  # reposts, quotes, likes so far
    posted_at: datetime | None = None
    now: datetime | None = None
    repost_reach: int = 0  # followers of those who reposted it (recorded by ingest)
    earlier_tickets: int = 0  # the customer's other tickets in the last 30 days
    keywords: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    vip_handles: frozenset[str] = frozenset()
    #: The text sentiment is read from, when not ``text`` (a follow-up: the customer's mood now).
    mood_text: str | None = None


@dataclass(frozen=True)
class Assessment:
    level: int
    score: int
    factors: tuple[Factor, ...]
    sentiment: str
    sentiment_score: float

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.factors]

    @property
    def factors_json(self) -> list[dict[str, object]]:
        return [f.as_json() for f in self.factors]


@lru_cache(maxsize=256)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    if not phrases:
        return None
    return re.compile(
        r"(?<!\w)("
        + "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        + r")(?!\w)",
        re.I,
    )


@lru_cache(maxsize=256)
def _hashtag_pattern(tags: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(t.lstrip("#")) for t in (*SPREADING_HASHTAGS, *tags))
    return re.compile(r"#(" + names + r")\w*", re.I)


def _reach(followers: int, repost_reach: int) -> Factor | None:
    total = followers + repost_reach
    if total < MEDIUM_AUDIENCE:
        return None
    # 1,000 followers: 8 points; 10,000: 20; 100,000: 32; a million: 44.
    points = round(8 + 12 * math.log10(total / MEDIUM_AUDIENCE))
    reason = (
        f"{followers:,} followers can see this"
        if followers >= LARGE_AUDIENCE
        else (f"{followers:,} followers")
    )
    if repost_reach:
        reason += f", {repost_reach:,} more through reposts"
    return Factor("reach", points, reason)


def _virality(signals: Signals) -> Factor | None:
    counts = signals.metrics
    shares = counts.get("retweet_count", 0) + counts.get("quote_count", 0)
    likes = counts.get("like_count", 0)
    engagement = shares * 2 + likes  # a share spreads the post; a like only shows it
    if engagement < 3 or signals.posted_at is None or signals.now is None:
        return None
    hours = max((signals.now - signals.posted_at).total_seconds() / 3600, 0.25)
    per_hour = engagement / hours
    if per_hour < 4:
        return None
    points = min(round(6 * math.log2(per_hour / 2)), 30)
    return Factor(
        "virality",
        points,
        f"spreading: {shares} reposts and quotes, {likes} likes in {_age(hours)}",
    )


def _age(hours: float) -> str:
    minutes = round(hours * 60)
    return f"{minutes} min" if minutes < 120 else f"{round(hours)} h"


def assess_signals(signals: Signals) -> Assessment:
    """Score one post: the level, the score and the factors, largest first."""
    mood = sentiment_module.analyse(
        signals.text if signals.mood_text is None else signals.mood_text
    )
    factors: list[Factor] = []
    for found in (_reach(signals.followers, signals.repost_reach), _virality(signals)):
        if found is not None:
            factors.append(found)
    risk = RISK_WORDS.search(signals.text)
    if risk:
        factors.append(Factor("risk", 45, f'mentions legal or safety risk ("{risk.group(0)}")'))
    tag = _hashtag_pattern(signals.hashtags).search(signals.text)
    if tag:
        factors.append(Factor("hashtag", 18, f"uses {tag.group(0)}, which spreads"))
    keyword = _phrase_pattern(signals.keywords)
    keyword_hit = keyword.search(signals.text) if keyword else None
    if keyword_hit:
        factors.append(Factor("keyword", 15, f'mentions "{keyword_hit.group(0).lower()}"'))
    if mood.label == sentiment_module.NEGATIVE:
        points = 30 if mood.score <= -0.6 else 25
        why = (mood.reasons[0] if mood.reasons else "").removeprefix("complaint: ")
        factors.append(Factor("sentiment", points, f"reads as a complaint ({why})"))
    elif mood.label == sentiment_module.POSITIVE:
        factors.append(Factor("sentiment", -20, "reads as praise"))
    if signals.earlier_tickets:
        n = signals.earlier_tickets
        factors.append(
            Factor(
                "repeat",
                min(10 * n, 25),
                f"complained {n} time{'s' if n > 1 else ''} before in the last 30 days",
            )
        )
    handle = signals.author_handle.lstrip("@").lower()
    if handle and handle in signals.vip_handles:
        factors.append(Factor("vip", 40, f"@{signals.author_handle} is on the VIP list"))
    elif signals.author_verified:
        factors.append(Factor("vip", 10, "verified account"))

    score = sum(f.points for f in factors)
    if score >= URGENT_FROM or risk:
        level = Priority.URGENT
    elif score >= HIGH_FROM:
        level = Priority.HIGH
    elif score <= LOW_UNDER:
        level = Priority.LOW
    else:
        level = Priority.NORMAL
    factors.sort(key=lambda f: -abs(f.points))
    if not factors:
        factors.append(Factor("none", 0, "a question or comment"))
    return Assessment(int(level), score, tuple(factors), mood.label, mood.score)


def assess(*, text: str, followers: int) -> tuple[int, list[str]]:
    """The level and reasons from the text and reach alone (no organisation rules)."""
    result = assess_signals(Signals(text=text, followers=followers))
    return result.level, result.reasons


REPEAT_WINDOW = timedelta(days=30)


def rules_signals(organization_id: int) -> dict[str, object]:
    # No row yet is the default: nothing configured (no write at ingest).
    rules = PriorityRules.objects.filter(organization_id=organization_id).first()
    if rules is None:
        return {}
    return {
        "keywords": tuple(rules.keywords),
        "hashtags": tuple(rules.hashtags),
        "vip_handles": frozenset(rules.vip_handles),
    }


def _earlier_tickets(
    organization_id: int,
    platform: str,
    customer_id: str,
    before: datetime,
    exclude_pk: int | None = None,
) -> int:
    earlier = Ticket.objects.filter(
        organization_id=organization_id,
        platform=platform,
        customer_external_id=customer_id,
        opened_at__gte=before - REPEAT_WINDOW,
        opened_at__lt=before,
    )
    if exclude_pk is not None:
        earlier = earlier.exclude(pk=exclude_pk)
    return earlier.count()


def assess_new_post(
    *,
    organization_id: int,
    platform: str,
    post: InboundPost,
    rules: dict[str, object] | None = None,
    earlier_tickets: int | None = None,
) -> Assessment:
    """Score the post that opens a ticket (ingest): two indexed queries, then arithmetic.
    Set-based ingest reads both once per batch and passes them: the organisation's ``rules``
    (``rules_signals``) and the customer's ``earlier_tickets`` in the last 30 days."""
    now = timezone.now()
    if earlier_tickets is None:
        earlier_tickets = _earlier_tickets(
            organization_id, platform, post.author.external_id, post.created_at
        )
    if rules is None:
        rules = rules_signals(organization_id)
    return assess_signals(
        Signals(
            text=post.text,
            followers=post.author.followers_count,
            author_handle=post.author.username,
            author_verified=post.author.verified,
            metrics=dict(post.metrics),
            posted_at=post.created_at,
            now=max(now, post.created_at),
            earlier_tickets=earlier_tickets,
            **rules,  # type: ignore[arg-type]
        )
    )


@dataclass
class Rescoring:
    """What rescoring several tickets at once reads once for all of them (the many form of
    ``on_customer_message``): their organisations' rules, each one's repeat count (the
    customer's other tickets opened in the 30 days before it) and which have a priority an
    agent set. Three statements for a delivery's follow-ups instead of three for each."""

    earlier: dict[int, int]
    overridden: set[int]
    rules: dict[int, dict[str, object]] = field(default_factory=dict)

    @classmethod
    def load(cls, tickets: list[Ticket]) -> Rescoring:
        earlier = dict.fromkeys((ticket.pk for ticket in tickets), 0)
        if tickets:
            candidates = Ticket.objects.filter(
                organization_id__in={ticket.organization_id for ticket in tickets},
                customer_external_id__in={ticket.customer_external_id for ticket in tickets},
                opened_at__gte=min(ticket.opened_at for ticket in tickets) - REPEAT_WINDOW,
                opened_at__lt=max(ticket.opened_at for ticket in tickets),
            ).values_list("pk", "organization_id", "platform", "customer_external_id", "opened_at")
            theirs: dict[tuple[int, str, str], list[tuple[int, datetime]]] = {}
            for pk, organization_id, platform, customer, opened_at in candidates:
                theirs.setdefault((organization_id, platform, customer), []).append((pk, opened_at))
            for ticket in tickets:
                key = (ticket.organization_id, ticket.platform, ticket.customer_external_id)
                earlier[ticket.pk] = sum(
                    1
                    for pk, opened_at in theirs.get(key, [])
                    if pk != ticket.pk
                    and ticket.opened_at - REPEAT_WINDOW <= opened_at < ticket.opened_at
                )
        overridden = set(
            TicketEvent.objects.filter(
                ticket_id__in=[ticket.pk for ticket in tickets],
                kind=EventKind.PRIORITY_CHANGED,
                actor__isnull=False,
            ).values_list("ticket_id", flat=True)
        )
        return cls(earlier, overridden)

    def rules_of(self, organization_id: int) -> dict[str, object]:
        if organization_id not in self.rules:
            self.rules[organization_id] = rules_signals(organization_id)
        return self.rules[organization_id]


def assess_ticket(
    ticket: Ticket, *, follow_up: Message | None = None, rescoring: Rescoring | None = None
) -> Assessment:
    """Score a ticket again from what is stored now (its reposts, its post's counts). With a
    customer's ``follow_up``, its words count too (a legal threat, a keyword) and the sentiment
    is the follow-up's: how the customer feels now. ``rescoring``: what was read already for
    several tickets at once."""
    root = ticket.root_message
    if root is None:
        root = ticket.messages.filter(direction=Direction.INBOUND).order_by("created_at").first()
    text = root.text if root is not None else ""
    if follow_up is not None and (root is None or follow_up.pk != root.pk):
        text = f"{text}\n{follow_up.text}" if text else follow_up.text
    else:
        follow_up = None
    rules = (
        rescoring.rules_of(ticket.organization_id)
        if rescoring is not None
        else rules_signals(ticket.organization_id)
    )
    raw_metrics = ((root.raw or {}).get("public_metrics") or {}) if root is not None else {}
    metrics = {k: int(v or 0) for k, v in raw_metrics.items() if isinstance(v, int | float)}
    # Reposts CareInbox saw itself count too, when the platform's count is older.
    metrics["retweet_count"] = max(metrics.get("retweet_count", 0), ticket.reposts)
    posted_at = root.created_at if root is not None else ticket.opened_at
    return assess_signals(
        Signals(
            text=text,
            followers=ticket.customer_followers,
            author_handle=ticket.customer_username,
            author_verified=bool(root and root.author_verified),
            metrics=metrics,
            posted_at=posted_at,
            now=max(timezone.now(), posted_at),
            repost_reach=ticket.repost_reach,
            mood_text=follow_up.text if follow_up is not None else None,
            earlier_tickets=(
                rescoring.earlier[ticket.pk]
                if rescoring is not None
                else _earlier_tickets(
                    ticket.organization_id,
                    ticket.platform,
                    ticket.customer_external_id,
                    ticket.opened_at,
                    exclude_pk=ticket.pk,
                )
            ),
            **rules,  # type: ignore[arg-type]
        )
    )


def rescore_ticket(
    ticket: Ticket, *, follow_up: Message | None = None, rescoring: Rescoring | None = None
) -> bool:
    """Store a fresh score and factors; raise the level if it rose (never lower it by itself,
    and never touch a level an agent set). With a customer's ``follow_up``, the ticket's
    sentiment becomes the follow-up's (``sentiment_changed`` when it moves). Returns whether
    anything changed."""
    result = assess_ticket(ticket, follow_up=follow_up, rescoring=rescoring)
    moved = False
    if follow_up is not None:
        moved = (
            ticket.change_sentiment(result.sentiment, result.sentiment_score, message=follow_up)
            is not None
        )
    if result.factors_json == ticket.priority_factors and result.score == ticket.priority_score:
        return moved
    ticket.priority_score = result.score
    ticket.priority_factors = result.factors_json
    ticket.priority_reasons = result.reasons
    ticket.save(update_fields=["priority_score", "priority_factors", "priority_reasons"])
    overridden = (
        ticket.pk in rescoring.overridden
        if rescoring is not None
        else ticket.events.filter(kind=EventKind.PRIORITY_CHANGED, actor__isnull=False).exists()
    )
    if not overridden and result.level < ticket.priority:  # a lower number is more urgent
        ticket.change_priority(result.level, by=None, reason=f"Rescored: {result.reasons[0]}")
    return True


def on_customer_message(event: TicketEvent) -> None:
    """Event handler (``message_received``): a customer's follow-up on an open ticket (not the
    post that opened it) re-reads the sentiment and re-scores the priority. Idempotent: the
    same message again changes nothing."""
    if event.message_id is None or event.message_id == event.ticket.root_message_id:
        # The post that opened the ticket, scored at ingest: the delivery loaded the event's
        # ticket already, so most messages (a poll's new tickets) cost no query here.
        return
    ticket = Ticket.objects.select_related("root_message").filter(pk=event.ticket_id).first()
    if ticket is None or not ticket.is_open or ticket.root_message_id == event.message_id:
        return
    message = Message.objects.filter(
        pk=event.message_id, ticket_id=ticket.pk, direction=Direction.INBOUND
    ).first()
    if message is not None:
        rescore_ticket(ticket, follow_up=message)


def on_customer_messages(batch: list[TicketEvent]) -> None:
    """``on_customer_message`` for several messages, one per ticket (its many form on the event
    seam): the follow-ups' tickets, messages, rules, repeat counts and agent overrides read
    once for all of them; then each ticket rescored, in order."""
    follow_ups = [
        event
        for event in batch
        if event.message_id is not None and event.message_id != event.ticket.root_message_id
    ]
    if not follow_ups:
        return  # a poll's new tickets: their first posts were scored at ingest
    tickets = {
        ticket.pk: ticket
        for ticket in Ticket.objects.select_related("root_message").filter(
            pk__in={event.ticket_id for event in follow_ups}
        )
    }
    messages = {
        message.pk: message
        for message in Message.objects.filter(
            pk__in={event.message_id for event in follow_ups}, direction=Direction.INBOUND
        )
    }
    wanted: list[tuple[Ticket, Message]] = []
    for event in follow_ups:
        ticket = tickets.get(event.ticket_id)
        message = messages.get(event.message_id or 0)
        if ticket is None or not ticket.is_open or ticket.root_message_id == event.message_id:
            continue
        if message is not None and message.ticket_id == ticket.pk:
            wanted.append((ticket, message))
    if not wanted:
        return
    rescoring = Rescoring.load([ticket for ticket, _ in wanted])
    for ticket, message in wanted:
        rescore_ticket(ticket, follow_up=message, rescoring=rescoring)


def on_reposted(event: TicketEvent) -> None:
    """Event handler (``reposted``): the ticket's reach and virality grew; score it again."""
    ticket = Ticket.objects.select_related("root_message").filter(pk=event.ticket_id).first()
    if ticket is not None and ticket.is_open:
        rescore_ticket(ticket)


def on_reposted_many(batch: list[TicketEvent]) -> None:
    """``on_reposted`` for several tickets, one event each (its many form on the event seam): a
    poll's reposts rescore their tickets with the tickets, rules, repeat counts and agent
    overrides read once for all of them, not four statements for each."""
    tickets = {
        ticket.pk: ticket
        for ticket in Ticket.objects.select_related("root_message").filter(
            pk__in={event.ticket_id for event in batch}
        )
    }
    wanted = [
        ticket
        for event in batch
        if (ticket := tickets.get(event.ticket_id)) is not None and ticket.is_open
    ]
    if not wanted:
        return
    rescoring = Rescoring.load(wanted)
    for ticket in wanted:
        rescore_ticket(ticket, rescoring=rescoring)
