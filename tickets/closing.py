"""How a ticket closed, read from the event that closed it: one table for every reader.

The outbound webhooks (``ticket.closed``: ``how``) and the reports (closed publicly or not, and
the reason of a close with no public close-out) read the same closing events; both ask
``closing_of`` rather than keep a table of their own, so a new way of closing is added once."""

from __future__ import annotations

from typing import NamedTuple

from tickets.models import EventKind


class Closing(NamedTuple):
    """What a closing event says: ``how`` it closed (the webhook's word), whether the brand
    closed it out ``publicly``, and the ``reason`` a report files it under ("" for a public
    close-out; at most 32 characters, the report column's width)."""

    how: str
    publicly: bool
    reason: str


# Each closing kind: how it closed, publicly or not, and the reason it stands for when its
# data carries none (the kinds before closing without a reply became one kind with its reason).
_CLOSING: dict[str, tuple[str, bool, str]] = {
    EventKind.CLOSE_OUT: ("close_out", True, ""),
    EventKind.CLOSED_WITHOUT_CLOSE_OUT: ("without_close_out", False, "other"),
    EventKind.CLOSED_AS_SPAM: ("spam", False, "spam"),
    EventKind.CLOSED_AS_DUPLICATE: ("duplicate", False, "duplicate"),
    EventKind.MERGED_INTO: ("merged", False, "merged"),
}
# The event kinds that close a ticket.
CLOSING_KINDS: tuple[str, ...] = tuple(_CLOSING)
# Closed this way, a ticket is not one the brand failed to answer.
NOT_OWED_REASONS = ("spam", "duplicate", "merged")


def closing_of(kind: str, data: object = None) -> Closing | None:
    """How the event of this ``kind`` (with its ``data``) closed the ticket; None if it does
    not close one. Only ``closed_without_close_out`` carries its reason (a ``SkipReason``) in
    its data; a missing or empty one reads as "other"."""
    entry = _CLOSING.get(kind)
    if entry is None:
        return None
    how, publicly, reason = entry
    if kind == EventKind.CLOSED_WITHOUT_CLOSE_OUT:
        recorded = data.get("reason") if isinstance(data, dict) else None
        reason = str(recorded or reason)[:32]
    return Closing(how, publicly, reason)


def close_reason(kind: str, data: object = None) -> str:
    """Why a closing event closed the ticket with no public close-out ("" for a close-out or
    an event that does not close)."""
    closing = closing_of(kind, data)
    return closing.reason if closing is not None else ""
