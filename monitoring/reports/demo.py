"""A week of history for the demo organisation, so the dashboard has something to show in
``make run`` (``seed_demo`` calls ``seed_demo_week``).

The tickets are written as they would have happened, through the event seam: the customer's
post, replies delivered at their times, care steps, closes, promises; the SLA handlers start
and settle the timers from those events and the roll-up handler fills the report rows. Seeded
once: a second run finds the week's tickets (by their customer ids) and adds nothing. Random
but reproducible (a fixed seed), relative to when it runs.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from careinbox.accounts.models import Organization, Role, Team, User
from channels_social.models import SocialAccount
from monitoring.reports import rollups
from tickets.models import (
    STEP_RULES,
    Direction,
    EventKind,
    Message,
    MessageKind,
    Priority,
    Sentiment,
    Status,
    Step,
    Ticket,
)

DEMO_WEEK_PREFIX = "demo-week-"
DEMO_WEEK_TICKETS = 30
COMPLAINTS = (
    "My parcel is a week late and nobody answers the phone",
    "Charged twice for the same order?!",
    "The app logs me out every five minutes",
    "Where is my refund? It has been ten days",
    "Great service today, thanks to the driver",
    "Wrong size delivered, how do I swap it?",
    "Your chat bot keeps looping, I need a human",
    "Is the store on the high street open on Sunday?",
)

REPLY_TEXT: dict[str, str] = {
    Step.ACKNOWLEDGE: "Sorry to hear that, we are on it.",
    Step.TAKE_OFFLINE: "Could you send us your order number here?",
    Step.RESOLVE: "All sorted: the replacement ships today.",
    Step.CLOSE_OUT: "Glad we could sort it, thanks for your patience!",
}


def _busy_time(rng: random.Random, now: datetime) -> datetime:
    """A post time in the last 7 days, mostly in waking hours (the heat map has a shape)."""
    day = rng.randint(0, 6)
    hour = rng.choices(
        range(24), weights=[1] * 7 + [4, 6, 8, 8, 7, 9, 8, 7, 7, 6, 6, 5, 4, 3, 2, 1, 1]
    )[0]
    local = timezone.localtime(now) - timedelta(days=day)
    at = local.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59))
    return min(at, now - timedelta(minutes=rng.randint(20, 90)))


def _reply(ticket: Ticket, at: datetime, step: str, *, public: bool, by: User, n: int) -> None:
    message = Message.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.REPLY if public else MessageKind.DM,
        direction=Direction.OUTBOUND,
        is_public=public,
        step=step,
        sent_by=by,
        text=REPLY_TEXT[step],
        created_at=at,
        external_id=f"{DEMO_WEEK_PREFIX}out-{ticket.pk}-{n}",
    )
    ticket.refresh_last_message_direction()
    ticket.status = STEP_RULES[step].leads_to
    fields = ["status", "updated_at"]
    if ticket.status == Status.CLOSED:
        ticket.closed_at = at
        fields.append("closed_at")
    ticket.save(update_fields=fields)
    ticket.record(step, actor=by, message=message, at=at)
    ticket.record(EventKind.REPLY_SENT, message=message, at=at)


def seed_demo_week(org: Organization, accounts: list[SocialAccount]) -> int:
    """Seed the week once; returns the number of tickets created (0 when already there).

    One transaction; its events are handled once it commits, the report rows refreshed once
    per ticket after that (``rollups.deferred``)."""
    with rollups.deferred(), transaction.atomic():
        return _seed_week(org, accounts)


def _seed_week(org: Organization, accounts: list[SocialAccount]) -> int:
    if Ticket.objects.filter(
        organization=org, customer_external_id__startswith=DEMO_WEEK_PREFIX
    ).exists():
        return 0
    rng = random.Random(10)  # noqa: S311 - demo data, not security
    now = timezone.now()
    people = list(
        User.objects.filter(
            memberships__organization=org, memberships__role__in=[Role.AGENT, Role.MANAGER]
        ).order_by("pk")
    ) or list(User.objects.filter(memberships__organization=org).order_by("pk"))
    team = Team.objects.filter(organization=org).order_by("pk").first()
    if not people or not accounts:
        return 0
    created = 0
    for n in range(DEMO_WEEK_TICKETS):
        account = accounts[n % len(accounts)]
        opened = _busy_time(rng, now)
        agent = rng.choice(people)
        ticket = Ticket.objects.create(
            organization=org,
            brand=account.brand,
            social_account=account,
            platform=account.platform,
            priority=rng.choices(list(Priority), weights=[1, 3, 8, 2])[0],
            sentiment=rng.choices(list(Sentiment), weights=[5, 4, 2])[0],
            customer_external_id=f"{DEMO_WEEK_PREFIX}{n}",
            customer_username=f"customer_{n:02d}",
            customer_display_name=f"Customer {n:02d}",
            customer_followers=rng.choice([40, 300, 1200, 8000, 52000]),
            opened_at=opened,
            assigned_to=agent,
            assigned_at=opened,
            team=team,
        )
        Message.objects.create(
            organization=org,
            ticket=ticket,
            platform=account.platform,
            kind=MessageKind.POST if account.platform == "x" else MessageKind.COMMENT,
            direction=Direction.INBOUND,
            is_public=True,
            external_id=f"{DEMO_WEEK_PREFIX}in-{n}",
            author_external_id=ticket.customer_external_id,
            author_username=ticket.customer_username,
            text=rng.choice(COMPLAINTS),
            created_at=opened,
        )
        ticket.refresh_last_message_direction()
        ticket.record(EventKind.OPENED, at=opened)
        created += 1
        fate = rng.random()
        if fate < 0.1:
            _end_history(ticket, opened + timedelta(hours=6), now, by=agent)
            continue  # never answered: breached once past due, then ended as history
        if fate < 0.16:
            ticket.status, ticket.closed_as, ticket.closed_at = Status.CLOSED, "spam", opened
            ticket.save(update_fields=["status", "closed_as", "closed_at", "updated_at"])
            ticket.record(
                EventKind.CLOSED_WITHOUT_CLOSE_OUT,
                actor=agent,
                at=opened,
                reason="spam",
                note="a bot",
                summary="Spam (a bot)",
            )
            continue
        at = opened + timedelta(minutes=rng.choice([2, 4, 6, 9, 12, 18, 25, 40, 75, 150]))
        steps = [Step.ACKNOWLEDGE, Step.TAKE_OFFLINE, Step.RESOLVE, Step.CLOSE_OUT]
        depth = rng.choices([1, 2, 3, 4], weights=[2, 2, 2, 5])[0]
        for k, step in enumerate(steps[:depth]):
            if at >= now:
                break
            _reply(ticket, at, step, public=STEP_RULES[step].public, by=agent, n=k)
            if step == Step.TAKE_OFFLINE and rng.random() < 0.3:
                promised = at + timedelta(minutes=30)
                kind = EventKind.PROMISE_KEPT if rng.random() < 0.75 else EventKind.PROMISE_BROKEN
                ticket.record(kind, actor=agent, at=promised, demo=True)
            at += timedelta(minutes=rng.randint(10, 300))
        _end_history(ticket, at, now, by=agent)
    return created


def _end_history(ticket: Ticket, at: datetime, now: datetime, *, by: User) -> None:
    """A history ticket that was not closed out ends closed (reason "other", said so): its
    posts are not on the platform, so an agent could never answer it; the demo's generator
    brings the tickets to work on."""
    if ticket.status == Status.CLOSED:
        return
    at = min(at, now - timedelta(minutes=1))
    note = "demo history: ended before the demo started"
    ticket.status, ticket.closed_as, ticket.closed_at = Status.CLOSED, "other", at
    ticket.save(update_fields=["status", "closed_as", "closed_at", "updated_at"])
    ticket.record(
        EventKind.CLOSED_WITHOUT_CLOSE_OUT,
        actor=by,
        at=at,
        reason="other",
        note=note,
        summary=f"Other ({note})",
    )
