"""Customers: their identities as ingest sees them, what agents record about them (contact
details taken offline, notes), and the linking of one person's identities on several platforms.

Every change an agent makes is a ``CustomerEvent`` in the same transaction, so the profile's
history and the data never disagree. Near-duplicate text (the same customer saying the same
thing again) is judged here too, with rapidfuzz.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from rapidfuzz import fuzz

from channels_social.base import Author
from channels_social.text import clean_text
from tickets.models import (
    CONTACT_FIELDS,
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerIdentity,
    CustomerNote,
    Ticket,
)

if TYPE_CHECKING:
    from careinbox.accounts.models import User


class CustomerError(Exception):
    """An agent's change to a customer that cannot be made; nothing changed. Says why."""


# Near-duplicates --------------------------------------------------------------------------------

_NOISE = re.compile(r"@\w+|#|https?://\S+|[^\w\s]", re.UNICODE)


def _normalised(text: str) -> str:
    return " ".join(_NOISE.sub(" ", text.casefold()).split())


def similarity(first: str, second: str) -> int:
    """How alike two posts read, 0 to 100: mentions, links and punctuation left out, case and
    word order ignored (rapidfuzz's token sort ratio)."""
    a, b = _normalised(first), _normalised(second)
    if not a or not b:
        return 0
    return round(fuzz.token_sort_ratio(a, b))


# A post this short ("help", "still waiting") says too little to join a ticket by its text
# alone: at most it is offered for merge.
SUBSTANTIAL_WORDS = 4


def is_substantial(text: str) -> bool:
    return len(_normalised(text).split()) >= SUBSTANTIAL_WORDS


def _numbers(text: str) -> set[str]:
    return {word for word in _normalised(text).split() if any(c.isdigit() for c in word)}


def names_other_numbers(first: str, second: str) -> bool:
    """Both posts name numbers (an order, a parcel, a date) and not the same ones: however
    alike they read, "order 12 is late" and "order 57 is late" may be two matters."""
    a, b = _numbers(first), _numbers(second)
    return bool(a) and bool(b) and a != b


# Identities, as ingest sees them -----------------------------------------------------------------

# Ingest refreshes an identity's "last seen" at most this often (not one UPDATE per post).
LAST_SEEN_EVERY = timedelta(hours=1)


def customer_identity_seen(
    *,
    organization_id: int,
    platform: str,
    author: Author,
    at: datetime,
    known: CustomerIdentity | None,
) -> CustomerIdentity:
    """The identity of a post's author, made (with a customer of its own) the first time they
    write; kept up to date with what the platform shows now (handle, name, reach, verified)."""
    if known is None:
        known = _create_identity(organization_id, platform, author, at)
    current = {
        "username": author.username,
        "display_name": author.display_name,
        "followers": author.followers_count,
        "verified": author.verified,
    }
    changed = [name for name, value in current.items() if getattr(known, name) != value]
    stale = at - known.last_seen_at >= LAST_SEEN_EVERY
    if changed or stale:
        for name in changed:
            setattr(known, name, current[name])
        if at > known.last_seen_at:
            known.last_seen_at = at
        known.save(update_fields=[*changed, "last_seen_at"])
    return known


@dataclass
class Sightings:
    """A batch's authors as set-based ingest sees them: identities made or brought up to date
    in memory as the batch is threaded (``seen``, the same rules as ``customer_identity_seen``),
    then written in a few statements (``save``): one INSERT of the new customers, one of their
    identities, one UPDATE of those that changed."""

    organization_id: int
    platform: str
    new: dict[str, CustomerIdentity] = field(default_factory=dict)
    changed: dict[str, CustomerIdentity] = field(default_factory=dict)

    def seen(
        self, author: Author, at: datetime, known: CustomerIdentity | None
    ) -> CustomerIdentity:
        if known is None:
            known = self.new.get(author.external_id)
        if known is None:
            customer = Customer(
                organization_id=self.organization_id,
                display_name=author.display_name or author.username,
                created_at=at,
            )
            known = _new_identity(self.organization_id, self.platform, customer, author, at)
            self.new[author.external_id] = known
            return known
        current = {
            "username": author.username,
            "display_name": author.display_name,
            "followers": author.followers_count,
            "verified": author.verified,
        }
        changed = [name for name, value in current.items() if getattr(known, name) != value]
        if changed or at - known.last_seen_at >= LAST_SEEN_EVERY:
            for name in changed:
                setattr(known, name, current[name])
            if at > known.last_seen_at:
                known.last_seen_at = at
            if known.pk is not None:
                self.changed[author.external_id] = known
        return known

    def save(self) -> None:
        if self.new:
            made = list(self.new.values())
            Customer.objects.bulk_create([identity.customer for identity in made])
            # The unique constraint (organisation, platform, id) is the guarantee: a concurrent
            # writer of the same author fails this INSERT, and ingest falls back post by post.
            CustomerIdentity.objects.bulk_create(made)
        if self.changed:
            CustomerIdentity.objects.bulk_update(
                list(self.changed.values()),
                ["username", "display_name", "followers", "verified", "last_seen_at"],
            )


def _new_identity(
    organization_id: int, platform: str, customer: Customer, author: Author, at: datetime
) -> CustomerIdentity:
    """An author's identity as first seen at ``at``, not yet saved (a batch inserts many)."""
    return CustomerIdentity(
        organization_id=organization_id,
        customer=customer,
        platform=platform,
        external_id=author.external_id,
        username=author.username,
        display_name=author.display_name,
        followers=author.followers_count,
        verified=author.verified,
        first_seen_at=at,
        last_seen_at=at,
    )


def _create_identity(
    organization_id: int, platform: str, author: Author, at: datetime
) -> CustomerIdentity:
    try:
        # Its own savepoint: the same new author stored meanwhile by a concurrent batch (a
        # webhook and a poll) is found, not a failure of this post.
        with transaction.atomic():
            customer = Customer.objects.create(
                organization_id=organization_id,
                display_name=author.display_name or author.username,
                created_at=at,
            )
            identity = _new_identity(organization_id, platform, customer, author, at)
            identity.save(force_insert=True)
            return identity
    except IntegrityError:
        stored = (
            CustomerIdentity.objects.select_related("customer")
            .filter(
                organization_id=organization_id, platform=platform, external_id=author.external_id
            )
            .first()
        )
        if stored is None:  # not a concurrent writer: the row itself is refused (a CHECK)
            raise
        return stored


# What agents record ------------------------------------------------------------------------------


def _record(customer: Customer, kind: str, *, by: User | None, **data: Any) -> CustomerEvent:
    return CustomerEvent.objects.create(
        organization_id=customer.organization_id, customer=customer, kind=kind, actor=by, data=data
    )


@transaction.atomic
def customer_update_contact(
    *, customer: Customer, by: User, email: str = "", phone: str = "", order_number: str = ""
) -> CustomerEvent | None:
    """Keep the contact details an agent took down offline; recorded with the values before
    and after. The same values again change nothing and return None."""
    after = {"email": email.strip(), "phone": phone.strip(), "order_number": order_number.strip()}
    if after["email"]:
        try:
            validate_email(after["email"])
        except ValidationError:
            raise CustomerError(f"{after['email']!r} is not an e-mail address.") from None
    limits: dict[str, int | None] = {
        name: getattr(Customer._meta.get_field(name), "max_length", None) for name in CONTACT_FIELDS
    }
    for name, value in after.items():
        limit = limits[name]
        if limit is not None and len(value) > limit:
            label = name.replace("_", " ")
            raise CustomerError(f"The {label} is longer than {limit} characters.")
    before = {name: getattr(customer, name) for name in CONTACT_FIELDS}
    changed = [name for name in CONTACT_FIELDS if before[name] != after[name]]
    if not changed:
        return None
    for name in changed:
        setattr(customer, name, after[name])
    customer.save(update_fields=[*changed, "updated_at"])
    return _record(
        customer,
        CustomerEventKind.CONTACT_UPDATED,
        by=by,
        before={name: before[name] for name in changed},
        after={name: after[name] for name in changed},
    )


@transaction.atomic
def customer_add_note(*, customer: Customer, by: User, text: str) -> CustomerNote:
    text = clean_text(text).strip()
    if not text:
        raise CustomerError("Write the note first: it is empty.")
    note = CustomerNote.objects.create(
        organization_id=customer.organization_id, customer=customer, author=by, text=text
    )
    _record(customer, CustomerEventKind.NOTE_ADDED, by=by, note=note.pk)
    return note


@transaction.atomic
def customer_link(*, customer: Customer, identity: CustomerIdentity, by: User) -> CustomerEvent:
    """The identity is the same person as ``customer`` (their Facebook and their X): it joins
    ``customer`` with every other identity, ticket and note of the customer it belonged to,
    which is then gone; contact details ``customer`` lacks are taken from it. Recorded."""
    if identity.organization_id != customer.organization_id:
        raise CustomerError("That identity belongs to another organisation.")
    if identity.customer_id == customer.pk:
        raise CustomerError(f"{identity} is already one of this customer's identities.")
    other = Customer.objects.select_for_update().get(pk=identity.customer_id)
    other_pk = other.pk
    moved = [str(i) for i in other.identities.all()]
    other.identities.update(customer=customer)
    tickets = Ticket.objects.filter(customer=other).update(customer=customer)
    other.notes.update(customer=customer)
    other.events.update(customer=customer)
    filled = [
        name for name in CONTACT_FIELDS if not getattr(customer, name) and getattr(other, name)
    ]
    for name in filled:
        setattr(customer, name, getattr(other, name))
    customer.save(update_fields=[*filled, "updated_at"])
    other.delete()
    return _record(
        customer,
        CustomerEventKind.IDENTITY_LINKED,
        by=by,
        identities=moved,
        from_customer=other_pk,
        tickets=tickets,
        contact_taken=filled,
    )


@transaction.atomic
def customer_unlink(*, customer: Customer, identity: CustomerIdentity, by: User) -> Customer:
    """The identity is not this person after all: it becomes a customer of its own, with its
    tickets on its platform; notes and contact details stay. Recorded on both. Returns the
    new customer."""
    if identity.customer_id != customer.pk:
        raise CustomerError(f"{identity} is not one of this customer's identities.")
    if customer.identities.count() < 2:
        raise CustomerError("A customer's only identity cannot be unlinked.")
    alone = Customer.objects.create(
        organization_id=customer.organization_id,
        display_name=identity.display_name or identity.username,
    )
    identity.customer = alone
    identity.save(update_fields=["customer"])
    tickets = Ticket.objects.filter(
        customer=customer,
        platform=identity.platform,
        customer_external_id=identity.external_id,
    ).update(customer=alone)
    _record(
        customer,
        CustomerEventKind.IDENTITY_UNLINKED,
        by=by,
        identity=str(identity),
        to_customer=alone.pk,
        tickets=tickets,
    )
    _record(
        alone,
        CustomerEventKind.IDENTITY_UNLINKED,
        by=by,
        identity=str(identity),
        from_customer=customer.pk,
        tickets=tickets,
    )
    return alone


# Reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentityView:
    identity: CustomerIdentity
    profile_url: str


@dataclass(frozen=True)
class TicketLine:
    ticket: Ticket
    post_url: str


def profile_url(identity: CustomerIdentity) -> str:
    from channels_social.registry import adapter_class

    try:
        adapter = adapter_class(identity.platform)
    except Exception:
        return ""
    if identity.external_id.startswith("erased-"):
        return ""  # an erased customer's profile is not linked
    return adapter.profile_url(identity.external_id, identity.username)


def post_url(ticket: Ticket) -> str:
    """The link to the post that opened the ticket, on the platform ("" for a private one)."""
    from channels_social.registry import adapter_class

    root = ticket.root_message
    if root is None or not root.external_id or not ticket.is_public:
        return ""
    if root.external_id.startswith("erased-"):
        return ""
    try:
        adapter = adapter_class(ticket.platform)
    except Exception:
        return ""
    return adapter.post_url(ticket.social_account, root.external_id, root.author_username)


def identities_of(customer: Customer) -> list[IdentityView]:
    return [IdentityView(i, profile_url(i)) for i in customer.identities.all()]


def tickets_of(customer: Customer) -> list[TicketLine]:
    """Every ticket of the customer, newest first, with the link to its post (one query)."""
    tickets = (
        Ticket.objects.filter(customer=customer)
        .select_related("root_message", "social_account", "merged_into")
        .order_by("-opened_at", "-pk")
    )
    return [TicketLine(t, post_url(t)) for t in tickets]
