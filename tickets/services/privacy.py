"""Customer data protection: everything held about one customer, exported or erased on request.

``customer_export`` gathers what the organisation holds about a person (the customer, their
platform identities, contact details, notes and history, every ticket about them with its
messages, internal notes, promises and timeline) as one JSON-ready dict. ``customer_erase``
removes what identifies them and keeps what the organisation counts: tickets, messages, their
times, SLA timers, priorities and follower counts stay (dashboards and reports do not change),
while handles, names, texts and contact details become placeholders and platform ids become
keyed hashes (HMAC-SHA256 with ``SECRET_KEY``, per organisation), so the same id always maps to
the same hash (threads keep their shape) and cannot be read back. Both are manager actions and
both write an audit entry (with counts, never the personal data itself).

A post the platform still shows is the platform's: erasure here cannot remove it there. A post
of theirs fetched again later (a handle reconnected from scratch) would be stored as new.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from careinbox.accounts.models import User
from careinbox.audit import record_change
from careinbox.notifications.models import Notification
from channels_social.models import MessengerIdentity, QuarantinedPost
from tickets.customer_models import (
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerIdentity,
    CustomerNote,
)
from tickets.models import (
    Direction,
    Message,
    Note,
    Promise,
    Ticket,
    TicketEvent,
    lock_search_documents,
)

ERASED_TEXT = "[erased]"
ERASED_HANDLE = "erased"
EXPORT_FORMAT = "careinbox.customer-export/1"


class ErasureError(Exception):
    """The erasure cannot be done (already done); nothing was changed."""


def erased_id(organization_id: int, platform: str, value: str) -> str:
    """A platform id, replaced by a keyed hash: stable, not reversible, fits the id columns."""
    if not value or value.startswith("erased-"):
        return value
    digest = hmac.new(
        settings.SECRET_KEY.encode(),
        f"{organization_id}:{platform}:{value}".encode(),
        hashlib.sha256,
    ).hexdigest()
    return f"erased-{digest[:32]}"


def _tickets_of(customer: Customer, identities: list[CustomerIdentity]) -> Any:
    by_identity = Q()
    for identity in identities:
        by_identity |= Q(platform=identity.platform, customer_external_id=identity.external_id)
    return Ticket.objects.for_org(customer.organization).filter(Q(customer=customer) | by_identity)


def _their_messages(customer: Customer, identities: list[CustomerIdentity]) -> Any:
    """Inbound messages written by any of their identities, in any ticket."""
    by_author = Q(pk__in=[])
    for identity in identities:
        by_author |= Q(platform=identity.platform, author_external_id=identity.external_id)
    return Message.objects.for_org(customer.organization).filter(
        by_author, direction=Direction.INBOUND
    )


def _at(value: Any) -> str | None:
    return value.isoformat() if value else None


def customer_export(*, customer: Customer, by: User | None) -> dict[str, Any]:
    """Everything held about the customer, as JSON-ready data; the export is audited."""
    identities = list(customer.identities.order_by("platform", "pk"))
    tickets = list(_tickets_of(customer, identities).select_related("brand").order_by("pk"))
    ticket_ids = [t.pk for t in tickets]
    messages: dict[int, list[dict[str, Any]]] = {pk: [] for pk in ticket_ids}
    their = _their_messages(customer, identities).values("pk")
    for message in (
        Message.objects.for_org(customer.organization)
        .filter(Q(ticket_id__in=ticket_ids) | Q(pk__in=their))
        .order_by("created_at", "pk")
    ):
        messages.setdefault(message.ticket_id, []).append(
            {
                "id": message.pk,
                "platform_id": message.external_id,
                "direction": message.direction,
                "kind": message.kind,
                "public": message.is_public,
                "author_id": message.author_external_id,
                "author_username": message.author_username,
                "author_name": message.author_display_name,
                "text": message.text,
                "created_at": _at(message.created_at),
                "in_reply_to": message.in_reply_to_external_id,
            }
        )
    notes: dict[int, list[dict[str, Any]]] = {}
    for note in Note.objects.filter(ticket_id__in=ticket_ids).order_by("created_at", "pk"):
        notes.setdefault(note.ticket_id, []).append({"text": note.body, "at": _at(note.created_at)})
    promises: dict[int, list[dict[str, Any]]] = {}
    for promise in Promise.objects.filter(ticket_id__in=ticket_ids).order_by("created_at", "pk"):
        promises.setdefault(promise.ticket_id, []).append(
            {"text": promise.text, "due_at": _at(promise.due_at), "state": promise.state}
        )
    events: dict[int, list[dict[str, Any]]] = {}
    for event in TicketEvent.objects.filter(ticket_id__in=ticket_ids).order_by("at", "pk"):
        events.setdefault(event.ticket_id, []).append(
            {"kind": event.kind, "at": _at(event.at), "data": event.data}
        )
    data = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "organization": customer.organization.name,
        "customer": {
            "id": customer.pk,
            "name": customer.display_name,
            "email": customer.email,
            "phone": customer.phone,
            "order_number": customer.order_number,
            "created_at": _at(customer.created_at),
            "erased_at": _at(customer.erased_at),
        },
        "identities": [
            {
                "platform": identity.platform,
                "platform_id": identity.external_id,
                "username": identity.username,
                "name": identity.display_name,
                "followers": identity.followers,
                "verified": identity.verified,
                "first_seen_at": _at(identity.first_seen_at),
                "last_seen_at": _at(identity.last_seen_at),
            }
            for identity in identities
        ],
        "notes": [
            {"text": note.text, "at": _at(note.created_at)}
            for note in customer.notes.order_by("created_at", "pk")
        ],
        "history": [
            {"kind": event.kind, "at": _at(event.at), "data": event.data}
            for event in customer.events.order_by("at", "pk")
        ],
        "tickets": [
            {
                "id": ticket.pk,
                "brand": ticket.brand.name,
                "platform": ticket.platform,
                "status": ticket.status,
                "opened_at": _at(ticket.opened_at),
                "closed_at": _at(ticket.closed_at),
                "messages": messages.get(ticket.pk, []),
                "internal_notes": notes.get(ticket.pk, []),
                "promises": promises.get(ticket.pk, []),
                "timeline": events.get(ticket.pk, []),
            }
            for ticket in tickets
        ],
    }
    # Their own messages filed under tickets that are not theirs (a merge, a shared thread).
    known = set(ticket_ids)
    data["messages_elsewhere"] = [
        m for pk, found in messages.items() if pk not in known for m in found
    ]
    record_change(
        customer.organization,
        by,
        "exported",
        customer,
        object_type="customer",
        object_repr=f"Customer {customer.pk}",
        after={"identities": len(identities), "tickets": len(tickets)},
    )
    return data


class _Scrubber:
    """Replaces what identifies the person inside free text and JSON: their handles (as
    ``@handle`` or alone), their names, their own texts, and their platform ids (by hash)."""

    def __init__(
        self, *, organization_id: int, handles: set[str], names: set[str], texts: set[str]
    ) -> None:
        self.organization_id = organization_id
        self.texts = {t for t in texts if t and t != ERASED_TEXT}
        words = sorted({h for h in handles if h} | {n for n in names if len(n) >= 3}, key=len)
        self.pattern = (
            re.compile(
                r"@?(?<!\w)(" + "|".join(re.escape(w) for w in reversed(words)) + r")(?!\w)",
                re.IGNORECASE,
            )
            if words
            else None
        )
        self.ids: dict[str, str] = {}

    def add_id(self, platform: str, value: str) -> str:
        if value:
            self.ids[value] = erased_id(self.organization_id, platform, value)
        return self.ids.get(value, value)

    def mapped(self, value: str) -> str:
        """An id replaced by its hash if it is one of theirs, else unchanged."""
        return self.ids.get(value, value)

    def text(self, value: str) -> str:
        if value in self.texts:
            return ERASED_TEXT
        for own in self.texts:
            if len(own) >= 12 and own in value:
                value = value.replace(own, ERASED_TEXT)
        if self.pattern is not None:
            value = self.pattern.sub(
                lambda m: f"@{ERASED_HANDLE}" if m.group(0).startswith("@") else ERASED_TEXT,
                value,
            )
        return self.ids.get(value, value)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        return value


def customer_erase(*, customer: Customer, by: User | None) -> dict[str, int]:
    """Erase what identifies the customer; keep every row and count. Returns what was touched.

    One transaction: either all of it is erased or nothing is. The audit entry keeps counts."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            raise ErasureError("This customer's data was erased already.")
        org_id = customer.organization_id
        identities = list(customer.identities.all())
        tickets = list(_tickets_of(customer, identities))
        inbound = list(_their_messages(customer, identities)) + list(
            Message.objects.filter(ticket__in=tickets, direction=Direction.INBOUND)
        )
        inbound = list({m.pk: m for m in inbound}.values())
        scrub = _Scrubber(
            organization_id=org_id,
            handles={i.username for i in identities} | {t.customer_username for t in tickets},
            names={i.display_name for i in identities}
            | {t.customer_display_name for t in tickets}
            | {customer.display_name},
            texts={m.text for m in inbound} | {customer.email, customer.phone},
        )
        person_ids = {i.external_id for i in identities} | {t.customer_external_id for t in tickets}
        for identity in identities:
            scrub.add_id(identity.platform, identity.external_id)
        for ticket in tickets:
            scrub.add_id(ticket.platform, ticket.customer_external_id)
            scrub.add_id(ticket.platform, ticket.conversation_id)
        for message in inbound:
            for value in (message.external_id, message.conversation_id):
                scrub.add_id(message.platform, value)

        now = timezone.now()
        for message in inbound:
            message.text = ERASED_TEXT
            message.raw = {}
            message.author_username = ""
            message.author_display_name = ""
            message.author_external_id = scrub.add_id(message.platform, message.author_external_id)
            message.external_id = scrub.mapped(message.external_id)
            message.conversation_id = scrub.mapped(message.conversation_id)
            message.in_reply_to_external_id = scrub.mapped(message.in_reply_to_external_id)
        # Many tickets' messages in one statement: their documents locked first, in ticket order.
        lock_search_documents(m.ticket_id for m in inbound)
        Message.objects.bulk_update(
            inbound,
            [
                "text",
                "raw",
                "author_username",
                "author_display_name",
                "author_external_id",
                "external_id",
                "conversation_id",
                "in_reply_to_external_id",
            ],
        )
        inbound_ids = {m.pk for m in inbound}
        outbound = [
            m for m in Message.objects.filter(ticket__in=tickets) if m.pk not in inbound_ids
        ]
        for message in outbound:
            message.text = scrub.text(message.text)
            message.raw = scrub.json(message.raw or {})
            message.conversation_id = scrub.mapped(message.conversation_id)
            message.in_reply_to_external_id = scrub.mapped(message.in_reply_to_external_id)
        lock_search_documents(m.ticket_id for m in outbound)
        Message.objects.bulk_update(
            outbound, ["text", "raw", "conversation_id", "in_reply_to_external_id"]
        )
        for ticket in tickets:
            ticket.customer_external_id = scrub.ids[ticket.customer_external_id]
            ticket.customer_username = ERASED_HANDLE
            ticket.customer_display_name = ""
            ticket.conversation_id = scrub.mapped(ticket.conversation_id)
            ticket.updated_at = now
        Ticket.objects.bulk_update(
            tickets,
            [
                "customer_external_id",
                "customer_username",
                "customer_display_name",
                "conversation_id",
                "updated_at",
            ],
        )
        events = list(TicketEvent.objects.filter(ticket__in=tickets))
        for event in events:
            event.data = scrub.json(event.data)
        TicketEvent.objects.bulk_update(events, ["data"])
        notes = list(Note.objects.filter(ticket__in=tickets))
        for note in notes:
            note.body = scrub.text(note.body)
        Note.objects.bulk_update(notes, ["body"])
        promises = list(Promise.objects.filter(ticket__in=tickets))
        for promise in promises:
            promise.text = scrub.text(promise.text)[:300]
        Promise.objects.bulk_update(promises, ["text"])
        if scrub.pattern is not None:
            notifications = [
                n
                for n in Notification.objects.filter(organization_id=org_id)
                if scrub.pattern.search(n.title) or scrub.pattern.search(n.body)
            ]
            for notification in notifications:
                notification.title = scrub.text(notification.title)[:200]
                notification.body = scrub.text(notification.body)
            Notification.objects.bulk_update(notifications, ["title", "body"])

        for identity in identities:
            identity.external_id = scrub.ids[identity.external_id]
            identity.username = ""
            identity.display_name = ""
        CustomerIdentity.objects.bulk_update(
            identities, ["external_id", "username", "display_name"]
        )
        MessengerIdentity.objects.filter(account__organization_id=org_id).filter(
            Q(person_external_id__in=person_ids) | Q(psid__in=person_ids)
        ).delete()
        quarantined = QuarantinedPost.objects.filter(organization_id=org_id)
        mentions = Q(pk__in=[])
        for person_id in person_ids:
            mentions |= Q(payload__contains=f'"{person_id}"') | Q(post__contains=f'"{person_id}"')
        quarantined_removed, _ = quarantined.filter(mentions).delete()
        notes_erased = CustomerNote.objects.filter(customer=customer).update(text=ERASED_TEXT)
        CustomerEvent.objects.filter(customer=customer).update(data={})
        customer.display_name = ""
        customer.email = customer.phone = customer.order_number = ""
        customer.erased_at = now
        customer.save(update_fields=["display_name", "email", "phone", "order_number", "erased_at"])
        CustomerEvent.objects.create(
            organization_id=org_id, customer=customer, kind=CustomerEventKind.ERASED, actor=by
        )
        figures = {
            "identities": len(identities),
            "tickets": len(tickets),
            "messages_erased": len(inbound),
            "messages_scrubbed": len(outbound),
            "customer_notes": notes_erased,
            "quarantined_removed": quarantined_removed,
        }
        record_change(
            customer.organization,
            by,
            "erased",
            customer,
            object_type="customer",
            object_repr=f"Customer {customer.pk}",
            after=figures,
        )
    return figures
