"""The agent inbox: its views and their counts, filters and sorts, search, bulk actions, the
live update that sends only what changed, and who is on which ticket (presence).

Everything here reads through ``Ticket.objects.for_org``; the views in ``tickets.views`` are
thin. The live update works on rendered rows: each row's HTML is hashed, the hashes the agent's
page holds are kept in the cache under a token the page sends back, and the next poll answers
with only the rows whose hash changed (out of band), the counts if they changed, and the order.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.cache import cache
from django.db import connection, models, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower, StrIndex
from django.forms.utils import flatatt
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from careinbox.accounts.models import Membership, Organization
from channels_social.base import MODERATION_KINDS, OutboundKind, ReplyFacts
from channels_social.models import Brand, Platform
from channels_social.registry import adapter_class
from tickets.models import (
    OPEN_STATUSES,
    ApprovalRequest,
    ApprovalState,
    Direction,
    InboxCountsStamp,
    Message,
    Priority,
    SavedView,
    Sentiment,
    SkipReason,
    Status,
    StepError,
    Tag,
    Ticket,
)
from tickets.services.outbox import reply_facts

if TYPE_CHECKING:
    from careinbox.accounts.models import User

PAGE_SIZE = 200  # rows a view shows; the count says how many there are in all
# A search counts its matches up to this many and then says "1,000+": a common word ("refund")
# is in a tenth of an archive's messages, and counting every match would read them all.
SEARCH_COUNT_CAP = 1000
BREACHING_SOON = timedelta(minutes=30)


# --- Views -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxView:
    key: str
    label: str
    empty: str  # what an empty view says


VIEWS: tuple[InboxView, ...] = (
    InboxView("mine", "Mine", "Nothing assigned to you is open. Take one from Unassigned."),
    InboxView("unassigned", "Unassigned", "Every open ticket has someone on it."),
    InboxView("open", "All open", "No open tickets. New mentions appear here within seconds."),
    InboxView(
        "breaching",
        "Breaching soon",
        "No SLA target is due in the next 30 minutes or breached and unanswered.",
    ),
    InboxView(
        "waiting", "Waiting on customer", "No open ticket is waiting for the customer to answer."
    ),
    InboxView(
        "approval",
        "Awaiting approval",
        "No reply is waiting for a manager's approval.",
    ),
    InboxView("closed", "Closed", "No closed tickets match."),
)
VIEWS_BY_KEY = {view.key: view for view in VIEWS}
DEFAULT_VIEW = "open"


def view_condition(
    key: str, *, user: User, now: datetime, organization: Organization | None = None
) -> Q:
    """The rows of view ``key``, as a condition on the organisation's tickets (given
    ``organization``, "Awaiting approval" reads that organisation's pending requests alone)."""
    is_open = Q(status__in=OPEN_STATUSES)
    pending = ApprovalRequest.objects.filter(state=ApprovalState.PENDING)
    if organization is not None:
        pending = pending.filter(organization=organization)
    conditions = {
        "mine": is_open & Q(assigned_to=user),
        "unassigned": is_open & Q(assigned_to__isnull=True),
        "open": is_open,
        # Due within 30 minutes, or breached and still owed (sla_due_at keeps those).
        "breaching": is_open & Q(sla_due_at__lte=now + BREACHING_SOON),
        # The brand spoke last on a ticket past its acknowledgement: the customer's turn
        # (the latest message's direction, kept on the ticket).
        "waiting": is_open & ~Q(status=Status.NEW) & Q(last_message_direction=Direction.OUTBOUND),
        # A reply is held for a manager (a pending ApprovalRequest), not merely the flag that
        # replies on the ticket will be: that ticket has nothing to approve yet.
        # The pending requests are read once and hashed (``id IN (…)``), never looked up for
        # each ticket the view's order walks past (2 % of open tickets have one).
        "approval": is_open & Q(pk__in=pending.values("ticket_id")),
        "closed": Q(status=Status.CLOSED),
    }
    return conditions[key]


# Seconds a cached set of counts is kept at most (``view_counts``). Every write that changes a
# count gives the organisation a new token at once, and "Breaching soon" is moved on by the
# due times read ahead for these seconds; this bounds only what nothing else covers: a process
# that died between a write's commit and its new token.
COUNTS_TTL = 30


def view_counts(
    organization: Organization, *, user: User, now: datetime, token: str | None = None
) -> dict[str, int]:
    """Every view's count, from the cache when nothing they count has changed since.

    Cached per organisation and user ("Mine") under the organisation's ``InboxCountsStamp``
    token, which every committed write that can change a count replaces (``record_event``,
    ``record_events``, ``Ticket.set_sla_due``/``set_sla_dues``, whose turn it is); the token is
    read from the database on every request (one primary-key read; ``token`` when the caller
    read it already, before anything it counts), so a write in any process is seen by every
    other. "Breaching soon" also changes with the clock alone: with the counts
    are kept the due times that enter its window in the next ``COUNTS_TTL`` seconds (read from
    ``ticket_open_due_idx``: a handful of index entries), and a cached count is moved on by
    those that have entered by now. Nothing else moves a ticket into the window, and whatever
    changes a due time replaces the token, so the count is exact; the cached counts are kept
    at most ``COUNTS_TTL`` seconds, or until the last due time read enters the window."""
    if token is None:
        token = InboxCountsStamp.token_for(organization.pk)
    key = f"inbox-counts:{organization.pk}:{user.pk}:{token}"
    moment = now.timestamp()
    hit = _cached_counts(key, moment)
    if hit is not None:
        counts, entered = hit
        counts = dict(counts)
        counts["breaching"] += entered
        return counts
    counts, upcoming, complete = _view_counts(organization, user=user, now=now)
    _keep_counts(key, counts, upcoming, complete, moment)
    return counts


def filtered_count(
    organization: Organization,
    *,
    user: User,
    view: str,
    data: dict[str, Any],
    now: datetime,
    token: str | None = None,
) -> int:
    """View ``view``'s count with the filters ``data`` (a ``ViewFilterForm``'s cleaned data, no
    text search), cached as ``view_counts`` caches the unfiltered ones: under the
    organisation's counts token, per user ("Mine", "assigned to me"), the view and a digest of
    the filters (``filters_key``). Every field a filter tests (channel, brand, priority, step,
    tag, sentiment, assignee, followers) is set when a ticket is made or changed by a model
    method that records an event (``change_priority``, ``change_sentiment``, ``add_tag``,
    ``remove_tag``, ``assign``, the steps), and every recorded event replaces the token, so a
    cached count is never shown after a write that changes it. "Breaching soon" with filters
    is moved on by the filtered tickets' due times read ahead, as the unfiltered count is.

    A text search is never cached here: erasing a customer rewrites the text it matches and
    records no ticket event, so the token would not move."""
    if data.get("q"):
        raise ValueError("a text search's count is not cached (filtered_count)")
    if token is None:
        token = InboxCountsStamp.token_for(organization.pk)
    key = f"inbox-filtered:{organization.pk}:{user.pk}:{token}:{view}:{filters_key(data)}"
    moment = now.timestamp()
    hit = _cached_counts(key, moment)
    if hit is not None:
        total, entered = hit
        return int(total) + entered
    total, upcoming, complete = _filtered_count(
        organization, user=user, view=view, data=data, now=now
    )
    _keep_counts(key, total, upcoming, complete, moment)
    return total


def filters_key(data: dict[str, Any]) -> str:
    """A short digest of the filters in ``data`` (a ``ViewFilterForm``'s cleaned data), the same
    for the same filters however they were given: the sort and empty fields left out, a brand
    or tag by its id, the names in order."""
    normal = {
        name: value.pk if isinstance(value, models.Model) else value
        for name, value in data.items()
        if name != "sort" and value not in (None, "")
    }
    text = json.dumps(normal, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _cached_counts(key: str, moment: float) -> tuple[Any, int] | None:
    """What ``_keep_counts`` kept under ``key`` while it is still good at ``moment`` (a Unix
    time), with how many of the due times read ahead have entered "Breaching soon" since."""
    cached = cache.get(key)
    if not (
        isinstance(cached, dict)
        and "counts" in cached
        and cached.get("at", moment + 1) <= moment < cached.get("until", 0.0)
    ):
        return None
    window = BREACHING_SOON.total_seconds()
    entered = [due for due in cached.get("upcoming", ()) if due - window <= moment]
    return cached["counts"], len(entered)


def _keep_counts(
    key: str, counts: Any, upcoming: list[datetime], complete: bool, moment: float
) -> None:
    """Cache ``counts`` under ``key`` for at most ``COUNTS_TTL`` seconds from ``moment``, or
    until the last of the due times read ahead enters the window when they are not all."""
    until = moment + COUNTS_TTL
    if not complete:  # more due times in the horizon than were read: keep until the last
        until = min(until, upcoming[-1].timestamp() - BREACHING_SOON.total_seconds())
    if until > moment:
        cache.set(
            key,
            {
                "counts": counts,
                "at": moment,
                "until": until,
                "upcoming": [due.timestamp() for due in upcoming],
            },
            max(1, int(until - moment) + 1),
        )


# Due times read ahead per cached set of counts ("Breaching soon" over the next COUNTS_TTL
# seconds): an organisation with more due in those seconds keeps its counts for less.
UPCOMING_DUES = 200


def _view_counts(
    organization: Organization, *, user: User, now: datetime
) -> tuple[dict[str, int], list[datetime], bool]:
    """Every view's count, in two queries; then the due times that enter "Breaching soon"'s
    window in the next ``COUNTS_TTL`` seconds (the soonest ``UPCOMING_DUES``), in order, and
    whether those are all of them.

    The open views' over the open tickets alone (read from ``ticket_inbox_assignee_idx``,
    which holds every column they test, whose turn it is included), and Closed's from
    ``ticket_closed_idx``. "Awaiting approval" is the one looking beyond the index: at the
    organisation's pending approval requests, read once and hashed (``id IN (…)``), not
    looked up for each open ticket as ``EXISTS`` would be."""
    tickets = Ticket.objects.for_org(organization)
    open_views = [view for view in VIEWS if view.key != "closed"]
    aggregates: dict[str, Any] = {
        view.key: Count("pk", filter=view_condition(view.key, user=user, now=now))
        for view in open_views
        if view.key != "approval"
    }
    # As view_condition's: a ticket has at most one pending request.
    pending = ApprovalRequest.objects.filter(
        organization=organization, state=ApprovalState.PENDING
    ).values("ticket_id")
    aggregates["approval"] = Count("pk", filter=Q(pk__in=pending))
    counts = dict(tickets.open().aggregate(**aggregates))
    counts["closed"] = tickets.filter(view_condition("closed", user=user, now=now)).count()
    upcoming, complete = _upcoming_dues(tickets, now=now)
    return {view.key: counts[view.key] for view in VIEWS}, upcoming, complete


def _filtered_count(
    organization: Organization, *, user: User, view: str, data: dict[str, Any], now: datetime
) -> tuple[int, list[datetime], bool]:
    """``filtered_count`` counted: the view's tickets with the filters; for "Breaching soon",
    also the filtered open tickets' due times about to enter its window (``_upcoming_dues``)."""
    filtered = apply_filters(Ticket.objects.for_org(organization), data, user=user)
    total = filtered.filter(
        view_condition(view, user=user, now=now, organization=organization)
    ).count()
    if view != "breaching":
        return total, [], True
    upcoming, complete = _upcoming_dues(filtered, now=now)
    return total, upcoming, complete


def _upcoming_dues(tickets: QuerySet[Ticket], *, now: datetime) -> tuple[list[datetime], bool]:
    """The due times of the open ``tickets`` that enter "Breaching soon"'s window in the next
    ``COUNTS_TTL`` seconds (the soonest ``UPCOMING_DUES``), in order, and whether those are
    all of them."""
    edge = now + BREACHING_SOON
    upcoming = list(
        tickets.filter(status__in=OPEN_STATUSES)
        .filter(sla_due_at__gt=edge, sla_due_at__lte=edge + timedelta(seconds=COUNTS_TTL))
        .order_by("sla_due_at")
        .values_list("sla_due_at", flat=True)[: UPCOMING_DUES + 1]
    )
    complete = len(upcoming) <= UPCOMING_DUES
    return [due for due in upcoming[:UPCOMING_DUES] if due is not None], complete


# --- Filters, sorts, search --------------------------------------------------------------------

SORTS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "risk": ("Most at risk first", ()),  # Ticket.objects.inbox_order()
    "newest": ("Newest first", ("-opened_at", "-pk")),
    "oldest": ("Oldest first", ("opened_at", "pk")),
    "reach": ("Widest reach first", ("-customer_followers", "-repost_reach", "pk")),
    "priority": (
        "Priority, then risk",
        ("priority", models.F("sla_risk_at").asc(nulls_last=True), "pk"),
    ),
    "closed": ("Closed most recently", ("-closed_at", "-pk")),
}
STEP_CHOICES = [
    (Status.NEW, "Step 1 to take: Acknowledge"),
    (Status.ACKNOWLEDGED, "Step 2 to take: Take offline"),
    (Status.OFFLINE, "Step 3 to take: Resolve"),
    (Status.RESOLVED, "Step 4 to take: Close out"),
]


class QuickSelect(forms.Select):
    """Django's ``Select`` with its markup written here, not by a template per option: at
    1,000,000 tickets the filter form's eight selects (members, brands, tags) were most of the
    inbox page's template time (pyinstrument). The same element, options and selection."""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        chosen = set(self.format_value(value))
        parts = [
            format_html('<select name="{}"{}>', name, flatatt(self.build_attrs(self.attrs, attrs)))
        ]
        for option_value, label in self.choices:
            if isinstance(label, (list, tuple)):  # a group of options
                parts.append(format_html('<optgroup label="{}">', option_value))
                parts.extend(self._option(v, text, chosen) for v, text in label)
                parts.append(mark_safe("</optgroup>"))
            else:
                parts.append(self._option(option_value, label, chosen))
        parts.append(mark_safe("</select>"))
        return format_html("{}" * len(parts), *parts)  # each part escaped already

    @staticmethod
    def _option(value: Any, label: Any, chosen: set[str]) -> SafeString:
        text = "" if value is None else str(value)
        selected = mark_safe(" selected") if text in chosen else ""
        return format_html('<option value="{}"{}>{}</option>', text, selected, label)


class ViewFilterForm(forms.Form):
    """The filters and sort of the inbox (and of a saved view). Every field is optional."""

    q = forms.CharField(label="Search", required=False, max_length=200)
    platform = forms.ChoiceField(
        label="Channel",
        required=False,
        widget=QuickSelect,
        choices=[("", "Any channel"), *Platform.choices],
    )
    brand = forms.ModelChoiceField(
        label="Brand",
        required=False,
        queryset=Brand.objects.none(),
        empty_label="Any brand",
        widget=QuickSelect,
    )
    priority = forms.TypedChoiceField(
        label="Priority",
        required=False,
        widget=QuickSelect,
        coerce=int,
        empty_value=None,
        choices=[("", "Any priority"), *Priority.choices],
    )
    step = forms.ChoiceField(
        label="Step", required=False, widget=QuickSelect, choices=[("", "Any step"), *STEP_CHOICES]
    )
    tag = forms.ModelChoiceField(
        label="Tag",
        required=False,
        queryset=Tag.objects.none(),
        empty_label="Any tag",
        widget=QuickSelect,
    )
    sentiment = forms.ChoiceField(
        label="Sentiment",
        required=False,
        widget=QuickSelect,
        choices=[("", "Any sentiment"), *Sentiment.choices],
    )
    assignee = forms.ChoiceField(label="Assignee", required=False, widget=QuickSelect)
    followers = forms.IntegerField(
        label="Followers at least", required=False, min_value=0, max_value=10**9
    )
    sort = forms.ChoiceField(
        label="Sort",
        required=False,
        widget=QuickSelect,
        choices=[(key, label) for key, (label, _) in SORTS.items()],
    )

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["brand"].queryset = Brand.objects.for_org(organization).order_by("name")  # type: ignore[attr-defined]
        self.fields["tag"].queryset = Tag.objects.filter(organization=organization)  # type: ignore[attr-defined]
        members = (
            Membership.objects.filter(organization=organization, is_active=True)
            .select_related("user")
            .order_by("user__username")
        )
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "Anyone"),
            ("me", "Me"),
            ("none", "Nobody"),
            *((str(m.user_id), str(m.user)) for m in members),
        ]

    def saved_filters(self) -> dict[str, Any]:
        """The cleaned filters as JSON for ``SavedView.filters`` (ids, not objects)."""
        data = dict(self.cleaned_data)
        data.pop("sort", None)
        for name in ("brand", "tag"):
            data[name] = data[name].pk if data.get(name) is not None else None
        return {key: value for key, value in data.items() if value not in (None, "")}

    @staticmethod
    def data_from_saved(view: SavedView) -> dict[str, Any]:
        return {**{k: str(v) for k, v in view.filters.items()}, "sort": view.sort}


def apply_filters(
    tickets: QuerySet[Ticket], data: dict[str, Any], *, user: User, plan: str | None = None
) -> QuerySet[Ticket]:
    """``tickets`` narrowed by the filters ``data`` and its search (``search``; ``plan``: its
    ``search_plan`` when the caller has it already)."""
    if data.get("platform"):
        tickets = tickets.filter(platform=data["platform"])
    if data.get("brand") is not None:
        tickets = tickets.filter(brand=data["brand"])
    if data.get("priority") is not None:
        tickets = tickets.filter(priority=data["priority"])
    if data.get("step"):
        tickets = tickets.filter(status=data["step"])
    if data.get("tag") is not None:
        tickets = tickets.filter(tags=data["tag"])
    if data.get("sentiment"):
        tickets = tickets.filter(sentiment=data["sentiment"])
    assignee = data.get("assignee") or ""
    if assignee == "me":
        tickets = tickets.filter(assigned_to=user)
    elif assignee == "none":
        tickets = tickets.filter(assigned_to__isnull=True)
    elif assignee.isdigit():
        tickets = tickets.filter(assigned_to_id=int(assignee))
    if data.get("followers"):
        tickets = tickets.filter(customer_followers__gte=data["followers"])
    if data.get("q"):
        tickets = search(tickets, data["q"], plan=plan)
    return tickets


def sort_tickets(tickets: QuerySet[Ticket], sort: str, *, view: str) -> QuerySet[Ticket]:
    if not sort:
        sort = "closed" if view == "closed" else "risk"
    if sort == "risk" or sort not in SORTS:
        return tickets.inbox_order()  # type: ignore[attr-defined, no-any-return]
    return tickets.order_by(*SORTS[sort][1])


_WORD = re.compile(r"\w+", re.UNICODE)


def search_words(query: str) -> list[str]:
    """The words of a search, lower case, at most 8 (punctuation is never tsquery syntax)."""
    return [word.lower() for word in _WORD.findall(query)][:8]


def message_search_vector() -> Any:
    """The expression the GIN index of migration 0010 is built on (the same, or no index)."""
    from django.contrib.postgres.search import SearchVector

    return SearchVector("text", config="simple")


# A search matching more than this share of a sample of the messages is a common one
# (``search``): its tickets are then checked one by one in the view's order. The sample is
# ``SEARCH_SAMPLE_PERCENT`` of the message table's pages (a fixed seed: the same pages each
# time), and fewer than ``SEARCH_SAMPLE_MIN`` sampled messages (a small database) say rare.
# The customer side (handles and names) is sampled the same way over
# ``SEARCH_TICKET_SAMPLE_PERCENT`` of the ticket table's pages.
SEARCH_COMMON_SHARE = 0.005
SEARCH_SAMPLE_PERCENT = 0.1
SEARCH_TICKET_SAMPLE_PERCENT = 0.5
SEARCH_SAMPLE_MIN = 1000
# A search rare in both samples reads its matching tickets' ids (every organisation's: the
# view's own conditions then keep the organisation's) when there are at most this many; more,
# and it is answered as a common customer search is (``search_plan``'s "hashed").
SEARCH_UNION_MAX = 10_000
# A common search matching fewer than this share of the sampled messages ("refund late": two
# common words, 1.2 % of the messages, one ticket in 16 of the view) is counted from the
# documents holding every word (``search_plan``'s "documents"): the walk would pass ~16,000
# tickets to find the 1,001 the count stops at. A more common one ("refu": 12 %, every other
# ticket) is found within a few thousand tickets of the walk, and its documents are most of
# the organisation's.
SEARCH_DOCUMENTS_SHARE = 0.05


def _search_is_common(tsquery: str) -> bool:
    """Whether more than ``SEARCH_COMMON_SHARE`` of a sample of the messages match
    ``tsquery``. PostgreSQL's own estimate is no guide for prefix searches (at 1,000,000
    tickets it put "user77" at 32,970 messages, none match, and "refund late" at 2,000,
    121,667 match), and counting the matches costs what the search does; reading a 0.1 %
    sample (about 5,000 messages at 5,000,000) costs tens of milliseconds."""
    return _search_shares(tsquery, [])[0]


def _like_contains(word: str) -> str:
    """``word`` as the pattern ``icontains`` sends: ``%word%`` with LIKE's own signs escaped."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_shares(tsquery: str, words: Sequence[str]) -> tuple[bool, bool, float]:
    """Whether the search is common in the messages (``_search_is_common``) and, when
    ``words`` are given, among the tickets' customers (every word in the handle or the name,
    as ``search``'s customer side): one statement, two samples; and the share of the sampled
    messages that match (0 for a sample too small to tell)."""
    customer_sql = " AND ".join(
        "(UPPER(customer_username::text) LIKE UPPER(%s) "
        "OR UPPER(customer_display_name::text) LIKE UPPER(%s))"
        for _ in words
    )
    customer_params: list[Any] = [p for word in words for p in [_like_contains(word)] * 2]
    customers = (
        "(SELECT COUNT(*), COUNT(*) FILTER (WHERE " + customer_sql + ") "
        "FROM tickets_ticket TABLESAMPLE SYSTEM (%s) REPEATABLE (11))"
        if words
        else "(SELECT 0, 0)"
    )
    # Each word a plain substring first (as ``search``'s walk does): only those messages are
    # parsed, which is most of the sample's cost.
    in_text = "".join("strpos(lower(text), lower(%s)) > 0 AND " for _ in words)
    with connection.cursor() as cursor:
        # Only constant fragments are joined; every word goes as a parameter.
        cursor.execute(
            "SELECT m.sampled, m.matched, c.sampled, c.matched FROM ("  # noqa: S608
            "SELECT COUNT(*) AS sampled, COUNT(*) FILTER (WHERE "
            + in_text
            + "to_tsvector('simple'::regconfig, "
            "COALESCE(text, '')) @@ to_tsquery('simple'::regconfig, %s)) AS matched "
            "FROM tickets_message TABLESAMPLE SYSTEM (%s) REPEATABLE (11)) m, "
            + customers
            + " c (sampled, matched)",
            [
                *words,
                tsquery,
                SEARCH_SAMPLE_PERCENT,
                *([*customer_params, SEARCH_TICKET_SAMPLE_PERCENT] if words else []),
            ],
        )
        sampled, matched, customers_sampled, customers_matched = cursor.fetchone()

    def common(sampled: int, matched: int) -> bool:
        return bool(sampled >= SEARCH_SAMPLE_MIN and matched > SEARCH_COMMON_SHARE * sampled)

    share = matched / sampled if sampled >= SEARCH_SAMPLE_MIN else 0.0
    return common(sampled, matched), common(customers_sampled, customers_matched), share


def search_plan(query: str) -> str:
    """How ``search`` answers ``query`` on PostgreSQL: "walk" (the words are common in the
    messages: each ticket of the view checked in its order, stopping at a page or the capped
    count), "documents" (common in the messages, but less than ``SEARCH_DOCUMENTS_SHARE`` of
    them match: the rows as "walk", the capped count from the documents that hold every word,
    ``search_count``), "hashed" (rare in the messages, common among the customers: the matching
    messages' tickets read once, hashed, while the view is walked), "union" (rare in both: the
    few matching tickets read from the full-text and trigram indexes, then sorted); "" when
    there is nothing to search or the database is not PostgreSQL. (A "union" of more than
    ``SEARCH_UNION_MAX`` tickets is answered "hashed".)"""
    words = search_words(query)
    if not words or connection.vendor != "postgresql":
        return ""
    in_messages, in_customers, share = _search_shares(_search_tsquery(words), words)
    if in_messages:
        return "documents" if share < SEARCH_DOCUMENTS_SHARE else "walk"
    return "hashed" if in_customers else "union"


def _search_tsquery(words: Sequence[str]) -> str:
    return " & ".join(f"{word}:*" for word in words)


def _in_search_document(words: Sequence[str]) -> RawSQL:
    """Whether the ticket's search document (``tickets_ticketsearch``, kept by migration
    0024's triggers) has every one of ``words``: true for every ticket with a message matching it
    (the document holds every lexeme of every message), and for some without (its words in
    different messages), so it narrows the messages' check and never replaces it."""
    # A scalar subquery, not an EXISTS: PostgreSQL may answer an EXISTS by reading every
    # matching document of the table into a hash first (at 1,000,000 tickets, "refu" matches
    # 454,083 of them: a second), while the walk needs only the few thousand it passes. A
    # ticket without a document (none should be) has its messages checked.
    # The document has no positions (``strip``): a word the parser splits ("user_77", "e-mail")
    # is a phrase in the messages' tsquery ('user':* <-> '77':*), which a document without
    # positions never matches. So the document is asked for every lexeme of the words as a
    # prefix, in any order (what the phrase implies): the lexemes from the same parser, once
    # per statement (an InitPlan). No lexeme at all (NULL): the messages are checked.
    return RawSQL(
        'COALESCE((SELECT "ticket_document"."document" @@ ('
        "SELECT string_agg(quote_literal(lexeme) || ':*', ' & ')::tsquery "
        "FROM unnest(to_tsvector('simple'::regconfig, %s))) "
        'FROM "tickets_ticketsearch" "ticket_document" '
        'WHERE "ticket_document"."ticket_id" = "tickets_ticket"."id"), true)',
        [" ".join(words)],
        output_field=models.BooleanField(),
    )


def _customer_match(words: Sequence[str]) -> Q:
    """Every word anywhere in the customer's handle or name."""
    customer = Q()
    for word in words:
        customer &= Q(customer_username__icontains=word) | Q(customer_display_name__icontains=word)
    return customer


def _first_match(words: Sequence[str]) -> Subquery:
    """PostgreSQL: the ticket's first message matching every word (``search``'s walk), each
    word a plain substring first, so only those messages are parsed."""
    from django.contrib.postgres.search import SearchQuery

    tsquery = SearchQuery(_search_tsquery(words), search_type="raw", config="simple")
    matching = Message.objects.annotate(document=message_search_vector()).filter(document=tsquery)
    in_text = Q()
    for n, word in enumerate(words):
        matching = matching.alias(**{f"at_{n}": StrIndex(Lower("text"), Lower(Value(word)))})
        in_text &= Q(**{f"at_{n}__gt": 0})
    return Subquery(matching.filter(in_text, ticket=OuterRef("pk")).values("pk")[:1])


def search(tickets: QuerySet[Ticket], query: str, *, plan: str | None = None) -> QuerySet[Ticket]:
    """Tickets whose messages or customer match every word of ``query`` (a word matches as a
    prefix of a message's word: "refu" finds "refund"; anywhere in the customer's handle or
    name). PostgreSQL: full-text search on the GIN index, the customer's on trigram indexes;
    SQLite: ``icontains`` per word. ``plan``: ``search_plan(query)``, when the caller has it.

    On PostgreSQL one statement samples the messages and the customers first
    (``search_plan``). A search rare in both is ``pk IN (matching messages' tickets UNION
    matching customers' tickets)``: both from their indexes, a few hundred rows, then the view's
    conditions and order on them. A search common in the messages ("refu": a tenth of the
    archive's messages) is a scalar subquery per ticket (its first matching message), which
    PostgreSQL evaluates as it walks the view in its order, so a page of 200 rows, or the count
    capped at ``SEARCH_COUNT_CAP``, stops once it has as many; each message is first checked
    for every word as a plain substring of its lower-cased text (``strpos``: a word that
    starts one of the message's lexemes is in its text), so only those are parsed by
    ``to_tsvector``. (Its count, when fewer of the messages match, comes from the documents:
    ``search_count``.) A search rare in the messages but common among the customers (a
    handle's common part) is an ``EXISTS``, read once and hashed while the view is walked."""
    words = search_words(query)
    if not words:
        return tickets
    customer = _customer_match(words)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery

        raw_query = _search_tsquery(words)
        tsquery = SearchQuery(raw_query, search_type="raw", config="simple")
        matching = Message.objects.annotate(document=message_search_vector()).filter(
            document=tsquery
        )
        if plan is None:
            plan = search_plan(query)
        if plan in ("walk", "documents"):
            # The ticket's one document first (migration 0024: every lexeme of its messages):
            # most tickets walked lack a word, and are passed on one primary-key lookup;
            # only the others have their messages checked, as before.
            return tickets.alias(
                in_document=_in_search_document(words), first_match=_first_match(words)
            ).filter(customer | (Q(in_document=True) & Q(first_match__isnull=False)))
        if plan == "union":
            # Read first, on their own: inside the view's statement PostgreSQL estimates a
            # prefix's matches from the full-text index's statistics (100,000 messages for
            # "user77", none match) and hash-joins every ticket of the view to them.
            # Each side limited too: its estimated cost (and so the whole statement's) then
            # stays below ``jit_above_cost``, whose compiling took 130 ms of a 140 ms statement.
            limit = SEARCH_UNION_MAX + 1
            with _short_statements():
                ids = list(
                    matching.order_by()
                    .values_list("ticket_id", flat=True)[:limit]
                    .union(
                        Ticket.objects.filter(customer)
                        .order_by()
                        .values_list("pk", flat=True)[:limit]
                    )[:limit]
                )
            if len(ids) <= SEARCH_UNION_MAX:
                return tickets.filter(pk__in=ids)
    else:
        text = Q()
        for word in words:
            text &= Q(text__icontains=word)
        matching = Message.objects.filter(text)
    in_messages = Exists(matching.filter(ticket=OuterRef("pk")))
    return tickets.filter(in_messages | customer)


def _document_tsquery(words: Sequence[str]) -> str | None:
    """The documents' query for ``words``: every lexeme PostgreSQL's parser makes of them, as a
    prefix, in any order (as ``_in_search_document`` asks each ticket's); None when there is no
    lexeme at all."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(quote_literal(lexeme) || ':*', ' & ') "
            "FROM unnest(to_tsvector('simple'::regconfig, %s))",
            [" ".join(words)],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _documents_filled(organization: Organization) -> bool:
    """Whether every search document has its organisation and state (migration 0026's
    backfill is done: until then a document to fill has a NULL organisation, and a count by
    organisation and state would miss its ticket). Two probes of 0027's index."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM tickets_ticketsearch WHERE organization_id IS NULL) "
            "AND NOT EXISTS (SELECT 1 FROM tickets_ticketsearch "
            "WHERE organization_id = %s AND is_open IS NULL)",
            [organization.pk],
        )
        return bool(cursor.fetchone()[0])


def search_count(
    tickets: QuerySet[Ticket],
    query: str,
    *,
    organization: Organization,
    is_open: bool,
    whole_state: bool = False,
    plan: str | None = None,
) -> int:
    """How many of ``tickets`` (one organisation's, of an open view or of Closed as
    ``is_open`` says, with any other conditions: the view's, the filters) ``search`` finds for
    ``query``, stopped at ``SEARCH_COUNT_CAP + 1`` as ``_capped_count``. ``whole_state``:
    ``tickets`` are all of the organisation's tickets of that state ("All open", Closed, no
    filter).

    The "documents" plan (PostgreSQL: a common search whose words are rarely in one message)
    walks the organisation's documents of that state (migration 0027's index), each asked for
    every word on its own row, and checks a message of each that has them all as the walk
    does, stopping at the cap; for the whole state that is all (the document's organisation
    and state are its ticket's, kept by migration 0026's triggers), otherwise each is also
    held to ``tickets``' conditions. With the tickets whose customer matches (each side
    stopped at the cap), united. The same tickets as the walk finds: the document holds every
    lexeme of the ticket's messages, so every ticket the walk finds is among the candidates,
    and each candidate is kept by the walk's own condition."""
    if plan is None:
        plan = search_plan(query)
    if plan == "documents" and not _documents_filled(organization):
        plan = "walk"
    words = search_words(query)
    document_query = _document_tsquery(words) if plan == "documents" else None
    if document_query is None:
        return _capped_count(search(tickets, query, plan=plan))
    limit = SEARCH_COUNT_CAP + 1
    # Each word a plain substring of the message first, as the walk's check (_first_match).
    in_text = "".join("strpos(lower(m.text), lower(%s)) > 0 AND " for _ in words)
    in_messages = (
        'SELECT d.ticket_id FROM "tickets_ticketsearch" d '  # noqa: S608 (constants, %s)
        "WHERE d.organization_id = %s AND d.is_open = %s AND d.document @@ %s::tsquery "
        "AND (SELECT m.id FROM tickets_message m WHERE m.ticket_id = d.ticket_id AND "
        + in_text
        + "to_tsvector('simple'::regconfig, COALESCE(m.text, '')) "
        "@@ to_tsquery('simple'::regconfig, %s) LIMIT 1) IS NOT NULL"
    )
    params: list[Any] = [organization.pk, is_open, document_query, *words, _search_tsquery(words)]
    if not whole_state:
        sql, view_params = tickets.order_by().values("pk").query.sql_with_params()
        in_messages += f" AND d.ticket_id IN ({sql})"
        params += view_params
    customer_sql, customer_params = (
        tickets.filter(_customer_match(words)).order_by().values("pk")[:limit].query
    ).sql_with_params()
    with _short_statements(), connection.cursor() as cursor:
        # Constant fragments and Django's own SQL only; every value goes as a parameter.
        cursor.execute(
            "SELECT COUNT(*) FROM ((" + in_messages + " LIMIT %s) "  # noqa: S608
            "UNION (" + customer_sql + ")) found",
            [*params, limit, *customer_params],
        )
        found = int(cursor.fetchone()[0])
    return min(found, limit)


# --- The rows ---------------------------------------------------------------------------------


def has_filters(data: dict[str, Any]) -> bool:
    """Whether ``data`` (a ``ViewFilterForm``'s cleaned data) narrows the view at all."""
    return any(value not in (None, "") for key, value in data.items() if key != "sort")


def inbox_tickets(
    organization: Organization,
    *,
    user: User,
    view: str,
    data: dict[str, Any],
    now: datetime,
    counts: dict[str, int] | None = None,
    token: str | None = None,
) -> tuple[list[Ticket], int]:
    """The view's first ``PAGE_SIZE`` tickets with everything a row shows, and their count.

    A fixed number of queries whatever the count: the count (none when ``counts``, every
    view's from ``view_counts``, has it already: no filters; none either when the filtered
    count is cached, ``filtered_count``, under ``token``), the rows (with their root
    message, brand and assignee); their tags are ``row_tags``'s one query. A search's count stops at
    ``SEARCH_COUNT_CAP + 1`` (``count_is_capped``): the database stops at as many matches.
    """
    in_view: QuerySet[Ticket] = Ticket.objects.for_org(organization).filter(
        view_condition(view, user=user, now=now, organization=organization)
    )
    query = data.get("q") or ""
    plan = search_plan(query) if search_words(query) else None
    tickets = apply_filters(in_view, data, user=user, plan=plan)
    if counts is not None and view in counts and not has_filters(data):
        total = counts[view]
    elif plan == "documents":
        total = search_count(
            apply_filters(in_view, {**data, "q": ""}, user=user),
            query,
            organization=organization,
            is_open=view != "closed",
            whole_state=view in ("open", "closed") and not has_filters({**data, "q": ""}),
            plan=plan,
        )
    elif search_words(query):
        total = _capped_count(tickets)
    elif data.get("q"):  # a search with no word in it: counted, never cached
        total = tickets.count()
    else:
        total = filtered_count(organization, user=user, view=view, data=data, now=now, token=token)
    page: QuerySet[Ticket] = tickets
    if view == "approval" and not data.get("q"):
        # Its rows come from the pending requests (hashed), not a walk of an index in the
        # view's order: the page's ids are chosen first, in a subquery of the same statement,
        # and only those 200 joined to their root post, brand and assignee, not every pending
        # ticket (about half the time at 1,000,000 tickets: docs/benchmarks.md). Not with a
        # search: inside a subquery Django renames the ticket table, which the search
        # document's raw SQL names, so the lookup would point at the outer row and run once
        # per ticket of the organisation.
        chosen = sort_tickets(tickets, data.get("sort") or "", view=view).values("pk")
        page = Ticket.objects.for_org(organization).filter(pk__in=chosen[:PAGE_SIZE])
    rows = (
        sort_tickets(page, data.get("sort") or "", view=view)
        .select_related("root_message", "brand", "assigned_to")
        # A row shows its root post's text alone: not its raw platform JSON and the rest.
        .defer(*ROOT_MESSAGE_UNSHOWN)[:PAGE_SIZE]
    )
    return list(rows), total


@contextmanager
def _short_statements() -> Iterator[None]:
    """PostgreSQL runs what is inside without JIT and without parallel workers: a search's
    statements stop after a few thousand rows, but their estimated costs (every ticket of the
    view times its checks; a prefix's matches, which PostgreSQL overestimates) pass
    ``jit_above_cost`` and the parallel thresholds. At 1,000,000 tickets compiling took 49 ms
    of the capped count, and starting two workers 60-150 ms of a handle's union that found no
    message. ``SET LOCAL``: one transaction (inside the request's, until that ends)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0")
        yield


def _capped_count(tickets: QuerySet[Ticket]) -> int:
    """A search's count, stopped at ``SEARCH_COUNT_CAP + 1`` (``_short_statements``)."""
    with _short_statements():
        return tickets[: SEARCH_COUNT_CAP + 1].count()


ROOT_MESSAGE_UNSHOWN = tuple(
    f"root_message__{field.name}"
    for field in Message._meta.concrete_fields
    if field.name not in ("id", "text")
)


def count_is_capped(total: int, data: dict[str, Any]) -> bool:
    """Whether ``total`` (from ``inbox_tickets``) is a search's capped count: more than
    ``SEARCH_COUNT_CAP`` match, shown as "1,000+"."""
    return total > SEARCH_COUNT_CAP and bool(search_words(data.get("q") or ""))


def total_label(total: int, data: dict[str, Any]) -> str:
    """The view's count as the page shows it: "1,000+" for a capped search, else exact."""
    return f"{SEARCH_COUNT_CAP:,}+" if count_is_capped(total, data) else str(total)


# Bump when row.html shows something new, so pages holding the old rows get them again.
ROW_MARKUP_VERSION = 2


def row_tags(ticket_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The tag names of each of ``ticket_ids`` (a page's rows), in name order: one plain query
    of (ticket id, name) pairs. Not ``prefetch_related("tags")``, which makes a queryset and a
    manager per ticket and links each ticket and its tags both ways: reference cycles that
    only the garbage collector frees, 200 rows a page (docs/benchmarks.md, "The inbox's slow
    request: the garbage collector"). A ticket without tags is not in the answer."""
    if not ticket_ids:
        return {}
    pairs = (
        Ticket.tags.through.objects.filter(ticket_id__in=list(ticket_ids))
        .order_by("tag__name", "tag_id")
        .values_list("ticket_id", "tag__name")
    )
    found: dict[int, list[str]] = {}
    for ticket_id, name in pairs:
        found.setdefault(ticket_id, []).append(name)
    return {ticket_id: tuple(names) for ticket_id, names in found.items()}


def row_fingerprint(
    ticket: Ticket, people: Sequence[Presence], now: datetime, tags: Sequence[str] = ()
) -> str:
    """A short fingerprint of everything an inbox row shows (``partials/row.html``), from the
    data, so a poll finds what changed without rendering every row: only the changed ones.
    ``tags`` are the ticket's tag names (``row_tags``)."""
    root = ticket.root_message
    facts = (
        ROW_MARKUP_VERSION,
        ticket.priority,
        tuple(ticket.priority_reasons or ()),
        ticket.platform,
        ticket.is_public,
        ticket.customer_username,
        ticket.customer_display_name,
        ticket.customer_followers,
        ticket.repost_reach,
        root.text if root is not None else "",
        ticket.brand.name,
        tuple(tags),
        tuple((p.name, p.replying) for p in people),
        ticket.status,
        ticket.closed_as,
        ticket.closed_at,
        ticket.sla_due_at,
        ticket.sla_due_at is not None and ticket.sla_due_at < now,  # "breached" from now on
        str(ticket.assigned_to) if ticket.assigned_to_id else "",
    )
    return hashlib.blake2b(repr(facts).encode(), digest_size=6).hexdigest()


ROW_CACHE_TTL = 600  # seconds a rendered row is kept (a changed row gets a new key at once)


def row_cache_key(ticket_id: int, fingerprint: str, reading: str | None = None) -> str:
    """The cache key of a row rendered with ``fingerprint``, in the zone its times are shown
    in (the fingerprint covers the data; the zone and language change how it reads).
    ``reading`` is ``row_reading()``, when the caller has it for every row of a page."""
    return f"inbox-row:{ticket_id}:{fingerprint}:{reading or row_reading()}"


def row_reading() -> str:
    """How a row reads in this request: the zone its times are shown in, and the language."""
    from django.utils import timezone, translation

    return f"{timezone.get_current_timezone_name()}:{translation.get_language()}"


def row_hash(html: str) -> str:
    """A short fingerprint of a row as rendered, without its CSRF tokens (new on each render)."""
    stable = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)
    return hashlib.blake2b(stable.encode(), digest_size=6).hexdigest()


@dataclass
class LiveState:
    """What one inbox page holds: its rows' order and fingerprints, and the counts it shows
    (each view's, and ``"total"``: the current view's with its filters)."""

    rows: list[tuple[int, str]]
    counts: dict[str, int]

    def to_cache(self) -> dict[str, Any]:
        return {"rows": self.rows, "counts": self.counts}


LIVE_TTL = 120  # seconds a page's state is kept without a poll (it polls every 5 s)


def _live_key(user_id: int, token: str) -> str:
    return f"inbox-live:{user_id}:{token}"


def live_remember(user_id: int, state: LiveState) -> str:
    """Keep what the page now shows; the token the page sends back with its next poll."""
    token = secrets.token_urlsafe(9)
    cache.set(_live_key(user_id, token), state.to_cache(), LIVE_TTL)
    return token


def live_recall(user_id: int, token: str) -> LiveState | None:
    if not token or not re.fullmatch(r"[\w-]{1,32}", token):
        return None
    data = cache.get(_live_key(user_id, token))
    if not data:
        return None
    cache.touch(_live_key(user_id, token), LIVE_TTL)
    counts = data["counts"] if isinstance(data["counts"], dict) else {}
    return LiveState(rows=[(int(pk), str(h)) for pk, h in data["rows"]], counts=counts)


@dataclass
class LiveDiff:
    """What a poll sends: the rows that are new or changed, the counts that changed, the
    order (when it changed, or a row left), or, for a page whose state was lost, everything."""

    changed: list[int]
    added: list[int]
    counts_changed: list[str]
    order: list[int] | None
    full: bool

    @property
    def empty(self) -> bool:
        return not (self.changed or self.added or self.counts_changed or self.order or self.full)


def live_diff(before: LiveState | None, after: LiveState) -> LiveDiff:
    if before is None:
        return LiveDiff([], [], list(after.counts), [pk for pk, _ in after.rows], full=True)
    old = dict(before.rows)
    changed = [pk for pk, h in after.rows if pk in old and old[pk] != h]
    added = [pk for pk, _ in after.rows if pk not in old]
    new_order = [pk for pk, _ in after.rows]
    order = new_order if new_order != [pk for pk, _ in before.rows] else None
    counts = [k for k, v in after.counts.items() if before.counts.get(k) != v]
    return LiveDiff(changed, added, counts, order, full=False)


# --- Presence ---------------------------------------------------------------------------------

PRESENCE_TTL = 15  # seconds: a ticket page refreshes its presence every 3 s while open


@dataclass(frozen=True)
class Presence:
    user_id: int
    name: str
    replying: bool


def _presence_key(ticket_id: int) -> str:
    return f"presence:ticket:{ticket_id}"


def presence_touch(ticket_id: int, user: User, *, replying: bool) -> None:
    """``user`` has the ticket open (and is typing a reply); forgotten PRESENCE_TTL s later.

    One cache entry per ticket; a lost update between two agents' heartbeats is mended by the
    next heartbeat, 3 s later."""
    key = _presence_key(ticket_id)
    now = time.time()
    entries = {
        uid: entry for uid, entry in (cache.get(key) or {}).items() if entry[2] > now - PRESENCE_TTL
    }
    entries[user.pk] = (str(user), replying, now)
    cache.set(key, entries, PRESENCE_TTL)


def presence_on(ticket_ids: Iterable[int], *, except_user: int | None) -> dict[int, list[Presence]]:
    """Who else is on each ticket, now: one cache round trip for all of them."""
    ids = list(ticket_ids)
    if not ids:
        return {}
    now = time.time()
    found = cache.get_many([_presence_key(pk) for pk in ids])
    result: dict[int, list[Presence]] = {}
    for pk in ids:
        entries = found.get(_presence_key(pk)) or {}
        people = [
            Presence(uid, name, replying)
            for uid, (name, replying, at) in sorted(entries.items(), key=lambda kv: kv[1][0])
            if uid != except_user and at > now - PRESENCE_TTL
        ]
        if people:
            result[pk] = people
    return result


def presence_words(people: Sequence[Presence]) -> str:
    """ "Mark is replying", "Mark and Ada are viewing"."""
    if not people:
        return ""
    replying = [p.name for p in people if p.replying]
    viewing = [p.name for p in people if not p.replying]
    parts = []
    for names, verb in ((replying, "replying"), (viewing, "viewing")):
        if names:
            joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            parts.append(f"{joined} {'is' if len(names) == 1 else 'are'} {verb}")
    return "; ".join(parts)


# --- Bulk actions -----------------------------------------------------------------------------

BULK_ACTIONS = {
    "assign_me": "Assign to me",
    "assign": "Assign to…",
    "unassign": "Unassign",
    "tag": "Add tag",
    "spam": "Close as spam",
    "duplicate": "Close as duplicate",
}
# The bulk closes, as ``Ticket.close_without_reply`` reasons (the typed reason is its note).
BULK_CLOSE_REASONS = {"spam": SkipReason.SPAM, "duplicate": SkipReason.DUPLICATE}


@dataclass
class BulkResult:
    changed: int
    unchanged: int

    def summary(self, action: str) -> str:
        label = BULK_ACTIONS.get(action, action)
        text = f"{label}: {self.changed} ticket{'s' if self.changed != 1 else ''} changed"
        if self.unchanged:
            text += f", {self.unchanged} already so"
        return text + "."


def tickets_bulk_apply(
    *,
    organization: Organization,
    by: User,
    ticket_ids: Sequence[int],
    action: str,
    assignee_id: int | None = None,
    tag: str = "",
    reason: str = "",
) -> BulkResult:
    """One action on many of the organisation's tickets, all or nothing; each change recorded
    by the ticket's own method. Raises StepError, changing nothing, on bad input."""
    if action not in BULK_ACTIONS:
        raise StepError("Choose what to do with the selected tickets.")
    if not ticket_ids:
        raise StepError("Select at least one ticket first.")
    assignee: User | None = None
    if action == "assign_me":
        assignee = by
    elif action == "assign":
        if assignee_id is None:
            raise StepError("Choose a member of your organisation to assign to.")
        membership = (
            Membership.objects.filter(
                organization=organization, user_id=assignee_id, is_active=True
            )
            .select_related("user")
            .first()
        )
        if membership is None:
            raise StepError("Choose a member of your organisation to assign to.")
        assignee = membership.user
    if action == "tag" and not Tag.normalise(tag):
        raise StepError("Type the tag to add.")
    if action in ("spam", "duplicate") and not " ".join(reason.split()):
        raise StepError("Say why they are closed (the post they duplicate, or why they are spam).")
    changed = unchanged = 0
    with transaction.atomic():
        tickets = list(
            Ticket.objects.for_org(organization)
            .filter(pk__in=list(ticket_ids))
            .select_for_update(of=("self",))
            .order_by("pk")
        )
        if len(tickets) != len(set(ticket_ids)):
            raise StepError("Some of the selected tickets no longer exist; nothing was changed.")
        if action in ("assign_me", "assign", "unassign"):
            _check_bulk_assignment(organization, by, tickets, assignee)
        for ticket in tickets:
            if action in ("assign_me", "assign"):
                event = ticket.assign(assignee, by=by, reason="bulk")
            elif action == "unassign":
                event = ticket.assign(None, by=by, reason="bulk")
            elif action == "tag":
                event = ticket.add_tag(tag, by=by)
            else:
                # Closing without a reply is one method and one event kind, the reason in it.
                try:
                    event = ticket.close_without_reply(
                        reason=BULK_CLOSE_REASONS[action], note=reason, by=by
                    )
                except StepError as exc:
                    raise StepError(f"Ticket #{ticket.pk}: {exc} Nothing was changed.") from None
            if event is None:
                unchanged += 1
            else:
                changed += 1
    return BulkResult(changed, unchanged)


def _check_bulk_assignment(
    organization: Organization, by: User, tickets: Sequence[Ticket], assignee: User | None
) -> None:
    """The ticket page's assignment rule, for every selected ticket (all or nothing): an
    agent cannot take, give away or unassign a colleague's ticket in bulk either."""
    from tickets.services.teamwork import assignment_refusal

    membership = Membership.objects.filter(
        organization=organization, user=by, is_active=True
    ).first()
    if membership is None:
        raise StepError("You are not a member of this organisation.")
    for ticket in tickets:
        refusal = assignment_refusal(
            holder_id=ticket.assigned_to_id,
            assignee_id=assignee.pk if assignee is not None else None,
            by=membership,
        )
        if refusal:
            raise StepError(f"Ticket #{ticket.pk}: {refusal} Nothing was changed.")


def saved_views_for(organization: Organization, user: User) -> list[SavedView]:
    return list(SavedView.objects.for_org(organization).filter(owner=user))  # type: ignore[attr-defined]


# --- The ticket workspace: ways to answer, sections that update by themselves ------------------


@dataclass(frozen=True)
class ReplyWay:
    """One way to answer the customer now (a public reply, a DM, Messenger…), open or not."""

    kind: str
    label: str
    open: bool
    closes_at: datetime | None
    reason: str
    alternative: str


def reply_ways(ticket: Ticket, facts: ReplyFacts | None = None) -> list[ReplyWay]:
    """Every way the ticket's platform offers to answer (never moderation), with its window:
    open or closed now, when it closes, why it is closed and what is open instead
    (the adapter's ``reply_window`` on ``reply_facts``, the outbox's own check)."""
    adapter = adapter_class(ticket.platform)
    facts = facts or reply_facts(ticket)
    ways = []
    for kind, label in adapter.outbound_kinds.items():
        if kind in MODERATION_KINDS:
            continue
        if kind == OutboundKind.PUBLIC_REPLY and not ticket.is_public:
            ways.append(
                ReplyWay(
                    kind,
                    label,
                    False,
                    None,
                    "This ticket began with a private message: there is no public post of "
                    "theirs to answer.",
                    "",
                )
            )
            continue
        window = adapter.reply_window(kind, facts)
        ways.append(
            ReplyWay(kind, label, window.open, window.closes_at, window.reason, window.alternative)
        )
    return ways


def step_way(
    ticket: Ticket, public: bool | None, ways: Sequence[ReplyWay], facts: ReplyFacts
) -> ReplyWay | None:
    """The way the ticket's next step goes out (public reply, or the platform's private way)."""
    if public is None:
        return None
    if public:
        kind: str = OutboundKind.PUBLIC_REPLY
    else:
        kind = adapter_class(ticket.platform).private_kind(facts)
    return next((way for way in ways if way.kind == kind), None)


def with_oob(html: str) -> str:
    """The same element, marked to be swapped out of band (its hash is taken without it)."""
    return re.sub(r"^(\s*<[a-zA-Z][\w-]*)", r'\1 hx-swap-oob="true"', html, count=1)


def parse_hashes(value: str) -> dict[str, str]:
    """``"messages:ab12,sla-box:cd34"`` (what the page holds) as a dict; junk is ignored."""
    pairs = (part.split(":", 1) for part in value.split(",") if ":" in part)
    return {k: v for k, v in pairs if re.fullmatch(r"[\w-]{1,40}", k) and len(v) <= 16}
