"""Canned responses: placeholders filled for one customer, and a variant no one has had yet.

X refuses a post whose text the account has already posted, and customers notice copy-paste.
So ``render_for`` fills the placeholders for this ticket, then picks, in rotation, a variant whose
text has never gone out from the organisation on this platform (one query over the brand's
sent messages). When every variant already went out byte for byte (a template without
``{name}`` used many times), the ticket's reference is added, which no other reply has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import F

from channels_social.models import Platform
from tickets.models import CannedResponse, Direction, Message, Ticket

if TYPE_CHECKING:
    from careinbox.accounts.models import User

PLACEHOLDERS = {
    "name": "the customer's name (else their handle)",
    "handle": "the customer's @handle",
    "dm_link": "a link that opens a private conversation with the brand",
    "agent": "your first name",
    "brand": "the brand's name",
}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
VARIANT_SEPARATOR = re.compile(r"\n\s*---+\s*\n")


class CannedError(ValueError):
    """A canned response that cannot be saved as written; the message says what to fix."""


@dataclass(frozen=True)
class Rendered:
    text: str
    variant: int  # which variant (0-based)
    disambiguated: bool  # the ticket's reference was added to keep it unique


def split_variants(raw: str) -> list[str]:
    """The variants as typed in the settings form: separated by a line of three dashes."""
    return [v.strip() for v in VARIANT_SEPARATOR.split(raw.replace("\r\n", "\n")) if v.strip()]


def validate_variants(variants: list[str]) -> list[str]:
    if not variants:
        raise CannedError("Write at least one variant.")
    if len({v.strip() for v in variants}) != len(variants):
        raise CannedError("Two variants are the same: each must be worded differently.")
    for index, variant in enumerate(variants, 1):
        unknown = sorted({m for m in PLACEHOLDER.findall(variant) if m not in PLACEHOLDERS})
        if unknown:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise CannedError(
                f"Variant {index} uses {', '.join('{' + u + '}' for u in unknown)}, "
                f"which is not a placeholder. Known: {known}."
            )
    return variants


def dm_link(ticket: Ticket) -> str:
    """A link that opens a private conversation with the brand (PLATFORMS.md)."""
    account = ticket.social_account
    if ticket.platform == Platform.FACEBOOK:
        return f"https://m.me/{account.external_id}"
    return f"https://twitter.com/messages/compose?recipient_id={account.external_id}"


def fill(template: str, ticket: Ticket, agent: User | None) -> str:
    name = (ticket.customer_display_name or "").split(" ")[0] or ticket.customer_username
    values = {
        "name": name,
        "handle": f"@{ticket.customer_username}",
        "dm_link": dm_link(ticket),
        "agent": (agent.first_name or agent.username) if agent is not None else "",
        "brand": str(ticket.brand),
    }
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render_for(canned: CannedResponse, ticket: Ticket, agent: User | None) -> Rendered:
    """This canned response for this ticket: a variant no customer has had, in rotation."""
    variants = [fill(v, ticket, agent) for v in canned.variants] or [""]
    sent = set(
        Message.objects.filter(
            organization_id=ticket.organization_id,
            platform=ticket.platform,
            direction=Direction.OUTBOUND,
            text__in=variants,
        ).values_list("text", flat=True)
    )
    start = canned.uses % len(variants)
    order = [(start + i) % len(variants) for i in range(len(variants))]
    CannedResponse.objects.filter(pk=canned.pk).update(uses=F("uses") + 1)
    for index in order:
        if variants[index] not in sent:
            return Rendered(variants[index], index, disambiguated=False)
    index = order[0]
    return Rendered(f"{variants[index]} (ref {ticket.pk})", index, disambiguated=True)


DEMO_CANNED = [
    (
        "Sorry, we're on it",
        "acknowledge",
        [
            "So sorry about this, {name}. We're looking into it right now.",
            "Sorry {name}, that's not good enough. We're on it and will be back shortly.",
            "{name}, we're sorry for the trouble. Someone is checking this as we speak.",
        ],
    ),
    (
        "Move to DM",
        "take_offline",
        [
            "Hi {name}, {agent} here. Could you send your order number and the best time to call?",
            "Thanks {name}. So we can sort this privately, what's your order number, please?",
        ],
    ),
    (
        "Invite to DM (public)",
        "acknowledge",
        [
            "Sorry {name}! Could you send us a private message here, so we can help? {dm_link}",
            "{name}, so sorry. Let's sort this privately: message us here {dm_link}",
        ],
    ),
    (
        "Sorted, thank you",
        "close_out",
        [
            "Glad we could sort this out, {name}. Thanks for your patience!",
            "All sorted now, {name}. Thank you for bearing with us.",
        ],
    ),
]


def seed_demo_canned(organization_id: int) -> None:
    """The demo organisation's canned responses (left alone once they exist)."""
    for title, step, variants in DEMO_CANNED:
        CannedResponse.objects.get_or_create(
            organization_id=organization_id,
            title=title,
            defaults={"step": step, "variants": variants},
        )
