"""Ingest: the post sink that ``channels_social`` hands every batch to (polling, webhooks).

Each post is stored once per organisation, platform and id (a unique constraint), in its own
savepoint, and threaded into the customer's open ticket whichever of the organisation's handles
fetched it; a new ticket is filed under the handle the customer addressed, so replies go out
from that handle. The sink neither locks the account nor touches a cursor: polling moves the
cursor in the same transaction, webhooks have none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import Case, F, Q, Value, When

from careinbox.locks import lock_organizations
from channels_social.base import InboundPost, PostUpdate
from channels_social.intake import StoreResult, UpdateResult
from channels_social.models import SocialAccount
from tickets import events, priority
from tickets.models import (
    OPEN_STATUSES,
    Customer,
    CustomerIdentity,
    Direction,
    EventKind,
    Message,
    OutboxItem,
    OutboxState,
    Status,
    ThreadingSettings,
    Ticket,
    TicketEvent,
)
from tickets.services.customers import (
    Sightings,
    customer_identity_seen,
    is_substantial,
    names_other_numbers,
    similarity,
)

log = logging.getLogger(__name__)


def ingest_posts(account: SocialAccount, posts: Sequence[InboundPost]) -> StoreResult:
    """Store each new post once and thread it into a ticket; return what happened.

    A post already stored, or a second copy of one in the batch, changes nothing. The batch
    is threaded in memory and written set-based (``_store_together``: a few INSERTs for all its
    customers, identities, tickets, messages and events); should the database refuse any of
    it, that savepoint rolls back and the batch is stored again one post at a time
    (``_store_one_by_one``), where a post that fails rolls back alone (its ticket included)
    and comes back in ``failed`` for the caller to set aside.
    """
    if not posts:
        return StoreResult()
    with transaction.atomic(), events.published_together():
        # One ingest per organisation at a time (careinbox.locks): concurrent polls of two of
        # its handles deadlocked on the posts and customers they share.
        lock_organizations([account.organization_id])
        known = _stored_ids(account, [post.external_id for post in posts])
        handles = {
            handle.external_id: handle
            for handle in SocialAccount.objects.filter(
                organization_id=account.organization_id, platform=account.platform, enabled=True
            )
        }
        fresh: dict[str, InboundPost] = {}
        duplicates = 0
        for post in posts:
            if post.external_id in known or post.external_id in fresh:
                duplicates += 1  # stored already, or a second copy in this batch
            else:
                fresh[post.external_id] = post
        batch = list(fresh.values())
        try:
            with transaction.atomic():
                result = _store_together(account, batch, handles)
        except Exception as exc:
            # A value the database refuses (or a row stored meanwhile): everything of the
            # batch rolled back; again, post by post, so only the bad one is set aside.
            log.warning(
                "batch of %d stored one by one: %s: %s", len(batch), type(exc).__name__, exc
            )
            result = _store_one_by_one(account, batch, handles)
    return StoreResult(
        result.stored, result.tickets_opened, duplicates + result.duplicates, result.failed
    )


@dataclass
class _Planned:
    """One customer post threaded in memory: its message, and what it does to its ticket."""

    post: InboundPost
    ticket: Ticket
    message: Message
    match: Match
    opened: bool
    reopened_from: datetime | None = None  # the ticket's close, when this post reopens it
    adopts_customer: bool = False  # a ticket from before customers gets this post's customer


def _store_together(
    account: SocialAccount, posts: list[InboundPost], handles: dict[str, SocialAccount]
) -> StoreResult:
    """The batch set-based: customers' posts threaded in memory, in order (a post sees the
    tickets and identities the batch's earlier posts made), then written in one statement
    per table; reposts and the brand's own posts after them, in their order (they read what
    was just written): each run of reposts at once, each brand post in a savepoint."""
    threads = Threads.load(account, posts, handles)
    theirs = [
        p for p in posts if not p.reposted_external_id and p.author.external_id not in handles
    ]
    sightings = Sightings(account.organization_id, account.platform)
    scoring: _BatchScoring | None = None  # read when the batch first opens a ticket
    planned: list[_Planned] = []
    for post in theirs:
        identity = sightings.seen(
            post.author,
            post.created_at,
            threads.identity_of(post.author.external_id, post.created_at),
        )
        match = threads.match(post)
        ticket = match.ticket
        opened = ticket is None
        reopened_from = None
        adopts = False
        if ticket is None:
            scoring = scoring or _BatchScoring.load(account, theirs)
            ticket = _new_ticket(
                _addressed_handle(account, post, handles), post, identity.customer, scoring
            )
        elif ticket.customer_id is None and ticket.customer is None:
            # A ticket from before customers (or made by hand).
            ticket.customer, adopts = identity.customer, True
        if match.reopens:
            reopened_from = ticket.open_again(is_public=post.is_public)
        planned.append(
            _Planned(
                post,
                ticket,
                _message_for(ticket, post),
                match,
                opened,
                reopened_from=reopened_from,
                adopts_customer=adopts,
            )
        )
        threads.stored(ticket, post, identity)
    if planned:
        _write(planned, sightings, threads.settings.reopen_window_days)
    stored = len(planned)
    tickets_opened = sum(item.opened for item in planned)
    # Reposts and brand posts, in their order: each run of reposts at once (they store no
    # message, only widen their tickets' reach), each brand post in its own savepoint.
    stored_rest = opened_rest = duplicates = 0
    failed: list[tuple[InboundPost, str]] = []
    reposts: list[InboundPost] = []
    for post in posts:
        if post.reposted_external_id:
            reposts.append(post)
        elif post.author.external_id in handles:
            _record_reposts(account, reposts, handles)
            reposts = []
            brand = _store_one_by_one(account, [post], handles, threads=threads)
            stored_rest += brand.stored
            opened_rest += brand.tickets_opened
            duplicates += brand.duplicates
            failed += brand.failed
    _record_reposts(account, reposts, handles)
    return StoreResult(stored + stored_rest, tickets_opened + opened_rest, duplicates, failed)


def _write(planned: list[_Planned], sightings: Sightings, reopen_window_days: int) -> None:
    """Write a threaded batch: a statement per table, not per post.

    The tickets the batch joins are locked (in id order, one statement) before their messages
    go in: a message's insert trigger locks its ticket's search document, and an agent closing
    the ticket holds the ticket, then wants the document (migration 0026's status trigger).
    Taking the documents first and the tickets after deadlocked against that close. The
    tickets it opens are its own until it commits: nothing to lock."""
    sightings.save()
    Ticket.objects.filter(
        pk__in={item.ticket.pk for item in planned if not item.opened}
    ).lock_in_order()
    new_tickets = [item.ticket for item in planned if item.opened]
    Ticket.objects.bulk_create(new_tickets)
    adopted = {item.ticket.pk: item.ticket for item in planned if item.adopts_customer}
    for ticket in adopted.values():
        ticket.save(update_fields=["customer", "updated_at"])
    Message.objects.bulk_create([item.message for item in planned])
    for item in planned:
        if item.opened:
            item.ticket.root_message = item.message
    if new_tickets:
        Ticket.objects.bulk_update(new_tickets, ["root_message"])
    Ticket.objects.filter(pk__in={item.ticket.pk for item in planned}).refresh_whose_turn(
        locked=True
    )
    recorded: list[TicketEvent] = []
    for item in planned:
        ticket, message, match, at = item.ticket, item.message, item.match, item.post.created_at
        if item.opened:
            recorded.append(
                ticket.unsaved_event(
                    EventKind.OPENED,
                    at=at,
                    priority=ticket.priority,
                    reasons=ticket.priority_reasons,
                )
            )
        if match.reopens:
            # Its own event, before the message's: monitoring restarts the clocks from it.
            ticket.save_reopened(
                message=message, closed_at=item.reopened_from, window_days=reopen_window_days
            )
        if match.ticket is not None and match.similarity is not None:
            # Joined by its text alone: the customer said the same thing again.
            recorded.append(
                ticket.unsaved_event(
                    EventKind.MESSAGE_RECEIVED,
                    message=message,
                    at=at,
                    near_duplicate=match.similarity,
                )
            )
        else:
            recorded.append(
                ticket.unsaved_event(EventKind.MESSAGE_RECEIVED, message=message, at=at)
            )
        if match.offer is not None:
            recorded.append(
                ticket.unsaved_event(
                    EventKind.MERGE_OFFERED,
                    message=message,
                    at=at,
                    candidate=match.offer.pk,
                    similarity=match.similarity,
                )
            )
    events.record_events(recorded)


def _store_one_by_one(
    account: SocialAccount,
    posts: list[InboundPost],
    handles: dict[str, SocialAccount],
    *,
    threads: Threads | None = None,
) -> StoreResult:
    """Each post in its own savepoint: one the database refuses rolls back alone."""
    stored = tickets_opened = duplicates = 0
    failed: list[tuple[InboundPost, str]] = []
    if threads is None:
        threads = Threads.load(account, posts, handles)
    for post in posts:
        try:
            # One savepoint per post: a post stored meanwhile through another handle of the
            # same organisation, or one the database refuses, rolls back alone.
            with transaction.atomic():
                opened = _store_post(account, post, handles, threads)
        except IntegrityError as exc:
            threads.forget(post.author.external_id)
            if _stored_ids(account, [post.external_id]):
                duplicates += 1
            else:
                failed.append((post, f"{type(exc).__name__}: {exc}"))
            continue
        except Exception as exc:
            # A value the database or its driver refuses: set this post aside, go on.
            threads.forget(post.author.external_id)
            log.warning("could not store post %s: %s", post.external_id, exc)
            failed.append((post, f"{type(exc).__name__}: {exc}"))
            continue
        if opened is None:  # a pure repost, or a brand post outside any ticket
            continue
        stored += 1
        tickets_opened += opened
    return StoreResult(stored, tickets_opened, duplicates, failed)


def _stored_ids(account: SocialAccount, external_ids: list[str]) -> set[str]:
    return set(
        Message.objects.filter(
            organization_id=account.organization_id,
            platform=account.platform,
            external_id__in=external_ids,
        )
        .exclude(external_id="")  # lets the partial unique index serve this lookup
        .values_list("external_id", flat=True)
    )


# Threading ------------------------------------------------------------------------------------

# A ticket in a batch's view: its pk, or for one the batch opened and has not written yet, a
# key of the object itself (unsaved model instances are unhashable).
TicketKey = int | tuple[str, int]
UNSAVED_RANK = 2**62  # unsaved tickets come after every saved one (they are opened later)


@dataclass
class Match:
    """Where a customer's post goes: ``ticket`` to join (None: a new ticket), whether joining
    reopens it, and a ticket to offer for merge with the new one."""

    ticket: Ticket | None = None
    reopens: bool = False
    similarity: int | None = None  # a near-duplicate join, or a merge offer: how similar
    offer: Ticket | None = None


@dataclass
class Threads:
    """What threading needs to know about a batch's customers, read in a few queries for the
    whole batch (not per post): their identities, their open and recently closed tickets, the
    tickets holding the posts they reply to, and their recent messages for near-duplicates.

    Posts stored during the batch update it as they go; an author whose post rolled back is
    dropped from it and read again on demand (``forget``), so it never holds a rolled-back row.
    Set-based ingest threads the whole batch before it writes, so a ticket the batch opens is
    here unsaved (no pk yet): such a ticket is known by the object itself (``_key``, ``_rank``).
    """

    organization_id: int
    platform: str
    settings: ThreadingSettings
    identities: dict[str, CustomerIdentity] = field(default_factory=dict)
    tickets: dict[str, list[Ticket]] = field(default_factory=dict)  # by customer external id
    # replied-to id -> ticket id (or the unsaved ticket a post of this batch went into)
    ticket_of_post: dict[str, int | Ticket] = field(default_factory=dict)
    recent_texts: dict[TicketKey, list[tuple[datetime, str]]] = field(default_factory=dict)
    merged_targets: dict[int, Ticket | None] = field(default_factory=dict)
    unsaved: list[Ticket] = field(default_factory=list)  # opened by this batch, in order

    @classmethod
    def load(
        cls,
        account: SocialAccount,
        posts: Sequence[InboundPost],
        handles: dict[str, SocialAccount],
    ) -> Threads:
        settings = (
            ThreadingSettings.for_org_id(account.organization_id)
            if posts
            else ThreadingSettings(organization_id=account.organization_id)  # nothing to thread
        )
        threads = cls(account.organization_id, account.platform, settings)
        customers = {
            p.author.external_id
            for p in posts
            if not p.reposted_external_id and p.author.external_id not in handles
        }
        if customers:
            earliest = min(p.created_at for p in posts)
            threads._read(customers, earliest=earliest)
        parents = [p.in_reply_to_external_id for p in posts if p.in_reply_to_external_id]
        if parents:
            threads.ticket_of_post.update(
                Message.objects.filter(
                    organization_id=account.organization_id,
                    platform=account.platform,
                    external_id__in=parents,
                )
                .exclude(external_id="")
                .values_list("external_id", "ticket_id")
            )
        return threads

    def _read(self, customers: set[str], *, earliest: datetime) -> None:
        for identity in CustomerIdentity.objects.filter(
            organization_id=self.organization_id,
            platform=self.platform,
            external_id__in=customers,
        ).select_related("customer"):
            self.identities[identity.external_id] = identity
        reopen_since = earliest - timedelta(days=self.settings.reopen_window_days)
        recent = Q(status__in=OPEN_STATUSES)
        if self.settings.reopen_window_days:
            recent |= Q(closed_at__gte=reopen_since)
        found = list(
            Ticket.objects.filter(
                recent,
                organization_id=self.organization_id,
                platform=self.platform,
                customer_external_id__in=customers,
            ).order_by("pk")
        )
        for customer in customers:
            self.tickets.setdefault(customer, [])
        for ticket in found:
            self.tickets[ticket.customer_external_id].append(ticket)
        window = self.settings.duplicate_window_hours
        open_ids = [t.pk for t in found if t.is_open]
        if window and open_ids:
            since = earliest - timedelta(hours=window)
            for ticket_id, created_at, text in Message.objects.filter(
                ticket_id__in=open_ids, direction=Direction.INBOUND, created_at__gte=since
            ).values_list("ticket_id", "created_at", "text"):
                self.recent_texts.setdefault(ticket_id, []).append((created_at, text))

    def forget(self, customer: str) -> None:
        self.identities.pop(customer, None)
        for ticket in self.tickets.pop(customer, []):
            self.recent_texts.pop(self._key(ticket), None)

    def _key(self, ticket: Ticket) -> TicketKey:
        return ticket.pk if ticket.pk is not None else ("unsaved", id(ticket))

    def _rank(self, ticket: Ticket) -> int:
        """The order tickets were opened in (their pk), unsaved ones last, in their order."""
        if ticket.pk is not None:
            return int(ticket.pk)
        return UNSAVED_RANK + next(i for i, t in enumerate(self.unsaved) if t is ticket)

    def tickets_of(self, customer: str, at: datetime) -> list[Ticket]:
        if customer not in self.tickets:  # forgotten after a rollback, or not in the batch
            self._read({customer}, earliest=at)
        return self.tickets[customer]

    def identity_of(self, customer: str, at: datetime) -> CustomerIdentity | None:
        if customer not in self.tickets:
            self._read({customer}, earliest=at)
        return self.identities.get(customer)

    def _reopenable(self, ticket: Ticket, at: datetime) -> bool:
        window = timedelta(days=self.settings.reopen_window_days)
        return (
            ticket.merged_into_id is None
            and ticket.closed_at is not None
            and bool(self.settings.reopen_window_days)
            and ticket.closed_at <= at <= ticket.closed_at + window
        )

    def _usable(self, ticket: Ticket, at: datetime) -> Match | None:
        """Join ``ticket`` if open, reopen it if closed within the window, else nothing; a
        ticket merged into another stands for the one it was merged into."""
        for _ in range(5):  # a merged ticket's target, and so on, a few hops at most
            if ticket.merged_into_id is None:
                break
            merged_into = ticket.merged_into_id
            if merged_into not in self.merged_targets:  # read once: the batch may reopen it
                self.merged_targets[merged_into] = Ticket.objects.filter(pk=merged_into).first()
            target = self.merged_targets[merged_into]
            if target is None:
                return None
            ticket = target
        if ticket.is_open:
            return Match(ticket)
        if self._reopenable(ticket, at):
            return Match(ticket, reopens=True)
        return None

    def match(self, post: InboundPost) -> Match:
        customer = post.author.external_id
        theirs = self.tickets_of(customer, post.created_at)
        # The same thread: a reply to one of their tickets' posts, or a post in its thread.
        parent = self.ticket_of_post.get(post.in_reply_to_external_id)
        by_parent = [
            t
            for t in theirs
            if parent is not None and (t is parent or (t.pk is not None and t.pk == parent))
        ]
        in_thread = sorted(
            (
                t
                for t in theirs
                if post.conversation_id and t.conversation_id == post.conversation_id
            ),
            # Open before closed (the oldest open one first), then the latest closed.
            key=lambda t: (not t.is_open, self._rank(t) if t.is_open else -self._rank(t)),
        )
        for ticket in [*by_parent, *in_thread]:
            found = self._usable(ticket, post.created_at)
            if found is not None:
                return found
        if not post.is_public:
            return self._private_match(theirs, post)
        return self._near_duplicate(theirs, post)

    def _private_match(self, theirs: list[Ticket], post: InboundPost) -> Match:
        """A direct message with no thread: their open ticket the brand took offline (latest
        first), else their latest open ticket, else the one closed most recently within the
        window (reopened)."""
        newest_first = sorted(theirs, key=lambda t: (t.opened_at, self._rank(t)), reverse=True)
        opened = [t for t in newest_first if t.is_open]
        offline = [t for t in opened if t.status in OFFLINE_FIRST]
        if offline or opened:
            return Match((offline or opened)[0])
        closed = sorted(
            (t for t in theirs if self._reopenable(t, post.created_at)),
            key=lambda t: (t.closed_at, self._rank(t)),
            reverse=True,
        )
        return Match(closed[0], reopens=True) if closed else Match()

    def _near_duplicate(self, theirs: list[Ticket], post: InboundPost) -> Match:
        """A new public post: the same customer saying the same thing again within the window
        joins their open ticket; a looser match opens a ticket offered for merge."""
        if not self.settings.duplicate_window_hours:
            return Match()  # switched off
        window = timedelta(hours=self.settings.duplicate_window_hours)
        best: tuple[int, Ticket, str] | None = None
        for ticket in theirs:
            if not ticket.is_open:
                continue
            for created_at, text in self.recent_texts.get(self._key(ticket), []):
                if abs(post.created_at - created_at) > window:
                    continue
                score = similarity(post.text, text)
                if best is None or score > best[0]:
                    best = (score, ticket, text)
        if best is None or best[0] < self.settings.offer_similarity:
            return Match()
        score, ticket, text = best
        sure = is_substantial(post.text) and not names_other_numbers(post.text, text)
        if score >= self.settings.join_similarity and sure:
            return Match(ticket, similarity=score)
        return Match(offer=ticket, similarity=score)

    def stored(self, ticket: Ticket, post: InboundPost, identity: CustomerIdentity) -> None:
        """Keep the batch's view current after a post was stored in ``ticket``."""
        customer = post.author.external_id
        self.identities[customer] = identity
        theirs = self.tickets.setdefault(customer, [])
        if all(t is not ticket and (ticket.pk is None or t.pk != ticket.pk) for t in theirs):
            theirs.append(ticket)
        if ticket.pk is None and all(t is not ticket for t in self.unsaved):
            self.unsaved.append(ticket)
        self.ticket_of_post[post.external_id] = ticket.pk if ticket.pk is not None else ticket
        if ticket.is_open and self.settings.duplicate_window_hours:
            self.recent_texts.setdefault(self._key(ticket), []).append((post.created_at, post.text))


def _addressed_handle(
    fetched_by: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> SocialAccount:
    """The organisation's handle the customer spoke to first (replied to, then mentioned)."""
    for external_id in post.addressed_account_ids:
        if external_id in handles:
            return handles[external_id]
    return fetched_by


@dataclass
class _BatchScoring:
    """What scoring a batch's new tickets reads, once per batch: the organisation's priority
    rules, and each customer's tickets of the last 30 days (``priority.REPEAT_WINDOW``), kept
    current as the batch opens more."""

    rules: dict[str, object]
    opened: dict[str, list[datetime]]  # customer external id -> their tickets' opened_at

    @classmethod
    def load(cls, account: SocialAccount, posts: Sequence[InboundPost]) -> _BatchScoring:
        since = min(p.created_at for p in posts) - priority.REPEAT_WINDOW
        opened: dict[str, list[datetime]] = {p.author.external_id: [] for p in posts}
        for customer, at in Ticket.objects.filter(
            organization_id=account.organization_id,
            platform=account.platform,
            customer_external_id__in=list(opened),
            opened_at__gte=since,
        ).values_list("customer_external_id", "opened_at"):
            opened[customer].append(at)
        return cls(priority.rules_signals(account.organization_id), opened)

    def earlier_tickets(self, post: InboundPost) -> int:
        since = post.created_at - priority.REPEAT_WINDOW
        return sum(since <= at < post.created_at for at in self.opened[post.author.external_id])


def _new_ticket(
    account: SocialAccount,
    post: InboundPost,
    customer: Customer,
    scoring: _BatchScoring | None = None,
) -> Ticket:
    """The ticket ``post`` opens, scored, not yet saved."""
    if scoring is None:
        scored = priority.assess_new_post(
            organization_id=account.organization_id, platform=account.platform, post=post
        )
    else:
        scored = priority.assess_new_post(
            organization_id=account.organization_id,
            platform=account.platform,
            post=post,
            rules=scoring.rules,
            earlier_tickets=scoring.earlier_tickets(post),
        )
        scoring.opened[post.author.external_id].append(post.created_at)
    return Ticket(
        organization_id=account.organization_id,
        brand_id=account.brand_id,
        social_account=account,
        platform=account.platform,
        priority=scored.level,
        priority_reasons=scored.reasons,
        priority_score=scored.score,
        priority_factors=scored.factors_json,
        sentiment=scored.sentiment,
        sentiment_score=scored.sentiment_score,
        customer=customer,
        customer_external_id=post.author.external_id,
        customer_username=post.author.username,
        customer_display_name=post.author.display_name,
        customer_followers=post.author.followers_count,
        conversation_id=post.conversation_id or post.external_id,
        # A direct message with no ticket to join opens a private one: every step is a DM.
        is_public=post.is_public,
        opened_at=post.created_at,
    )


def _open_ticket(account: SocialAccount, post: InboundPost, customer: Customer) -> Ticket:
    ticket = _new_ticket(account, post, customer)
    ticket.save()
    ticket.record(
        EventKind.OPENED,
        at=post.created_at,
        priority=ticket.priority,
        reasons=ticket.priority_reasons,
    )
    return ticket


def _message_for(ticket: Ticket, post: InboundPost, *, brand: bool = False) -> Message:
    """A post as one of the ticket's messages, not yet saved: a customer's (inbound), or the
    brand's own, posted outside CareInbox (outbound, no agent, no intake query)."""
    return Message(
        organization_id=ticket.organization_id,
        ticket=ticket,
        platform=ticket.platform,
        kind=post.kind,
        direction=Direction.OUTBOUND if brand else Direction.INBOUND,
        is_public=post.is_public,
        external_id=post.external_id,
        conversation_id=post.conversation_id,
        in_reply_to_external_id=post.in_reply_to_external_id,
        author_external_id=post.author.external_id,
        author_username=post.author.username,
        author_display_name=post.author.display_name,
        author_followers=post.author.followers_count,
        author_verified=post.author.verified,
        found_by="" if brand else post.found_by,
        text=post.text,
        created_at=post.created_at,
        raw=post.raw,
    )


def _store_post(
    fetched_by: SocialAccount,
    post: InboundPost,
    handles: dict[str, SocialAccount],
    threads: Threads,
) -> bool | None:
    """Store one new post in its ticket (opening one if needed); True if a ticket was opened,
    None if nothing was stored (a pure repost; a brand post in no open ticket)."""
    if post.reposted_external_id:
        _record_repost(fetched_by, post, handles)
        return None
    if post.author.external_id in handles:
        return _store_brand_post(fetched_by, post, handles)
    identity = customer_identity_seen(
        organization_id=fetched_by.organization_id,
        platform=fetched_by.platform,
        author=post.author,
        at=post.created_at,
        known=threads.identity_of(post.author.external_id, post.created_at),
    )
    match = threads.match(post)
    ticket = match.ticket
    opened = ticket is None
    if ticket is None:
        ticket = _open_ticket(_addressed_handle(fetched_by, post, handles), post, identity.customer)
    else:
        ticket.lock_row()  # before its message locks its search document (``_write``)
        if ticket.customer_id is None:  # a ticket from before customers (or made by hand)
            ticket.customer = identity.customer
            ticket.save(update_fields=["customer", "updated_at"])
    message = _message_for(ticket, post)
    message.save()
    ticket.refresh_last_message_direction(locked=True)
    if opened:
        ticket.root_message = message
        ticket.save(update_fields=["root_message"])
    if match.reopens:
        ticket.reopen(message=message, window_days=threads.settings.reopen_window_days)
    if match.ticket is not None and match.similarity is not None:
        # Joined by its text alone: the customer said the same thing again.
        ticket.record(
            EventKind.MESSAGE_RECEIVED,
            message=message,
            at=post.created_at,
            near_duplicate=match.similarity,
        )
    else:
        ticket.record(EventKind.MESSAGE_RECEIVED, message=message, at=post.created_at)
    if match.offer is not None:
        ticket.record(
            EventKind.MERGE_OFFERED,
            message=message,
            at=post.created_at,
            candidate=match.offer.pk,
            similarity=match.similarity,
        )
    threads.stored(ticket, post, identity)
    return opened


# Direct messages, brand posts from outside CareInbox, reposts --------------------------------

# Taken offline: the ticket a customer's direct message most likely answers.
OFFLINE_FIRST = (Status.OFFLINE, Status.RESOLVED)


def _customer_open_ticket(account: SocialAccount, customer_external_id: str) -> Ticket | None:
    """The customer's open ticket a direct message joins when no thread says which: the one
    the brand took offline (latest first), else their latest open ticket."""
    candidates = Ticket.objects.filter(
        organization_id=account.organization_id,
        platform=account.platform,
        customer_external_id=customer_external_id,
        status__in=OPEN_STATUSES,
    ).order_by("-opened_at", "-pk")
    return candidates.filter(status__in=OFFLINE_FIRST).first() or candidates.first()


def _brand_ticket(
    account: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> Ticket | None:
    """The open ticket a post by one of the organisation's own handles belongs to: the one
    holding the post it replies to, else the customer's ticket in that thread or DM
    conversation. The customer is the first account it addresses that is not a handle."""
    tickets = Ticket.objects.filter(
        organization_id=account.organization_id,
        platform=account.platform,
        status__in=OPEN_STATUSES,
    )
    if post.in_reply_to_external_id:
        by_parent = tickets.filter(messages__external_id=post.in_reply_to_external_id).first()
        if by_parent is not None:
            return by_parent
    customers = [a for a in post.addressed_account_ids if a not in handles]
    if not customers:
        return None
    theirs = tickets.filter(customer_external_id=customers[0])
    if post.conversation_id:
        in_thread = (
            theirs.filter(conversation_id=post.conversation_id).order_by("pk").first()
            or theirs.filter(messages__conversation_id=post.conversation_id).order_by("pk").first()
        )
        if in_thread is not None:
            return in_thread
    if not post.is_public:
        return _customer_open_ticket(account, customers[0])
    return None


def _without_leading_mentions(text: str) -> str:
    words = text.split()
    while words and words[0].startswith("@"):
        words.pop(0)
    return " ".join(words)


def _sent_by_us_in_flight(ticket: Ticket, post: InboundPost) -> bool:
    """Our own reply read back before the outbox recorded its id (the send and the poll
    crossed): the outbox records it, so it must not be stored twice."""
    pending = Message.objects.filter(
        ticket=ticket,
        direction=Direction.OUTBOUND,
        is_public=post.is_public,
        external_id="",
        outbox__state__in=(OutboxState.QUEUED, OutboxState.SENDING, OutboxState.UNCERTAIN),
    ).values_list("text", flat=True)
    seen = _without_leading_mentions(post.text)
    return any(_without_leading_mentions(text) == seen for text in pending)


def _store_brand_post(
    account: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> bool | None:
    """A reply or DM the brand sent from X itself (outside CareInbox): the brand's message in
    its ticket, with no agent (``sent_by`` None), recorded as ``reply_sent`` so the SLA counts
    it like any delivered reply (the first public one is the first response). It never opens
    a ticket, and a post in no open ticket is skipped. Its care steps are not taken for it."""
    ticket = _brand_ticket(account, post, handles)
    if ticket is None or _sent_by_us_in_flight(ticket, post):
        return None
    ticket.lock_row()  # before its message locks its search document (``_write``)
    message = _message_for(ticket, post, brand=True)
    message.save()
    ticket.refresh_last_message_direction(locked=True)
    # Its delivery record, like every outbound message's (the ticket page and reports read
    # one per message): already sent, never attempted by CareInbox.
    OutboxItem.objects.create(
        organization_id=ticket.organization_id,
        message=message,
        state=OutboxState.SENT,
        attempts=0,
        sent_at=post.created_at,
    )
    ticket.record(
        EventKind.REPLY_SENT,
        message=message,
        at=post.created_at,
        external_id=post.external_id,
        sent_outside_careinbox=True,
    )
    return False


def _record_repost(
    account: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> None:
    """A pure repost opens no ticket and is not a message: it widens the reach of the open
    ticket whose post it reposts, by the reposter's followers (once per repost)."""
    from django.db.models import F

    if post.author.external_id in handles:
        return
    original = (
        Message.objects.filter(
            organization_id=account.organization_id,
            platform=account.platform,
            external_id=post.reposted_external_id,
        )
        .select_related("ticket")
        .first()
    )
    if original is None or not original.ticket.is_open:
        return
    ticket = original.ticket
    if ticket.events.filter(kind=EventKind.REPOSTED, data__repost_id=post.external_id).exists():
        return
    Ticket.objects.filter(pk=ticket.pk).update(
        reposts=F("reposts") + 1, repost_reach=F("repost_reach") + post.author.followers_count
    )
    ticket.record(
        EventKind.REPOSTED,
        message=original,
        at=post.created_at,
        repost_id=post.external_id,
        by=post.author.username,
        followers=post.author.followers_count,
    )


def _record_reposts(
    account: SocialAccount, posts: list[InboundPost], handles: dict[str, SocialAccount]
) -> None:
    """``_record_repost`` for several reposts in four statements for all of them (the
    originals with their tickets, the reposts recorded already, one UPDATE of the tickets'
    reach, one INSERT of the events), not four and a savepoint each."""
    posts = [post for post in posts if post.author.external_id not in handles]
    if not posts:
        return
    originals = {
        message.external_id: message
        for message in Message.objects.filter(
            organization_id=account.organization_id,
            platform=account.platform,
            external_id__in={post.reposted_external_id for post in posts},
        )
        .exclude(external_id="")  # lets the partial unique index serve this lookup
        .select_related("ticket")
    }
    theirs = [
        (post, original)
        for post in posts
        if (original := originals.get(post.reposted_external_id)) is not None
        and original.ticket.is_open
    ]
    if not theirs:
        return
    # (SQLite hands a JSON string of digits back as a number: compared as text.)
    seen = {
        (ticket_id, str(repost_id))
        for ticket_id, repost_id in TicketEvent.objects.filter(
            ticket_id__in={original.ticket_id for _post, original in theirs},
            kind=EventKind.REPOSTED,
            data__repost_id__in=[post.external_id for post, _original in theirs],
        ).values_list("ticket_id", "data__repost_id")
    }
    reach: dict[int, tuple[int, int]] = {}
    recorded: list[TicketEvent] = []
    for post, original in theirs:
        if (original.ticket_id, post.external_id) in seen:
            continue
        seen.add((original.ticket_id, post.external_id))
        count, followers = reach.get(original.ticket_id, (0, 0))
        reach[original.ticket_id] = (count + 1, followers + post.author.followers_count)
        recorded.append(
            original.ticket.unsaved_event(
                EventKind.REPOSTED,
                message=original,
                at=post.created_at,
                repost_id=post.external_id,
                by=post.author.username,
                followers=post.author.followers_count,
            )
        )
    if not reach:
        return
    Ticket.objects.filter(pk__in=list(reach)).update(
        reposts=F("reposts")
        + Case(*(When(pk=pk, then=Value(n)) for pk, (n, _f) in reach.items()), default=0),
        repost_reach=F("repost_reach")
        + Case(*(When(pk=pk, then=Value(f)) for pk, (_n, f) in reach.items()), default=0),
    )
    events.record_events(recorded)


# Edits and removals of stored posts (the update sink) ----------------------------------------


class PostChangeKind(models.TextChoices):
    """Event kinds for a customer changing a post after it reached the ticket."""

    MESSAGE_EDITED = "message_edited", "Customer edited their post"
    MESSAGE_REMOVED = "message_removed", "Customer removed their post"


def apply_post_updates(account: SocialAccount, updates: Sequence[PostUpdate]) -> UpdateResult:
    """An edit replaces the stored text (the old one is kept in the ``message_edited`` event);
    a removal marks the message removed (``raw["removed_at"]``; the text stays for the team,
    in the ``message_removed`` event too). A repeated delivery changes nothing."""
    applied = unchanged = unknown = 0
    with transaction.atomic(), events.published_together():
        for update in updates:
            message = (
                Message.objects.select_for_update(of=("self",))
                .select_related("ticket")
                .filter(
                    organization_id=account.organization_id,
                    platform=account.platform,
                    external_id=update.external_id,
                    direction=Direction.INBOUND,
                )
                .first()
            )
            if message is None:
                unknown += 1
                continue
            removed = bool((message.raw or {}).get("removed_at"))
            if update.change == "removed" and not removed:
                message.raw = {**(message.raw or {}), "removed_at": update.at.isoformat()}
                message.save(update_fields=["raw"])
                message.ticket.record(
                    PostChangeKind.MESSAGE_REMOVED,
                    message=message,
                    at=update.at,
                    text=message.text,
                )
                applied += 1
            elif update.change == "edited" and not removed and update.text != message.text:
                old_text = message.text
                message.text = update.text
                message.save(update_fields=["text"])
                message.ticket.record(
                    PostChangeKind.MESSAGE_EDITED,
                    message=message,
                    at=update.at,
                    old_text=old_text,
                    new_text=update.text,
                )
                applied += 1
            else:
                unchanged += 1
    return UpdateResult(applied, unchanged, unknown)
