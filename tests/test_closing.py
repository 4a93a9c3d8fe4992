"""The one table of how tickets close (tickets.closing), as the webhooks and reports read it."""

from __future__ import annotations

import pytest

from monitoring.reports.rollups import READ_KINDS
from monitoring.webhooks.models import WebhookEventType
from monitoring.webhooks.services import SUBSCRIBED_KINDS, webhook_types
from tickets.closing import CLOSING_KINDS, Closing, close_reason, closing_of
from tickets.models import EventKind, SkipReason


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        (EventKind.CLOSE_OUT, {}, Closing("close_out", True, "")),
        (
            EventKind.CLOSED_WITHOUT_CLOSE_OUT,
            {"reason": SkipReason.SPAM},
            Closing("without_close_out", False, "spam"),
        ),
        (EventKind.CLOSED_WITHOUT_CLOSE_OUT, {}, Closing("without_close_out", False, "other")),
        (EventKind.CLOSED_WITHOUT_CLOSE_OUT, None, Closing("without_close_out", False, "other")),
        (
            EventKind.CLOSED_WITHOUT_CLOSE_OUT,
            {"reason": "x" * 40},
            Closing("without_close_out", False, "x" * 32),
        ),
        (EventKind.CLOSED_AS_SPAM, {}, Closing("spam", False, "spam")),
        (EventKind.CLOSED_AS_DUPLICATE, {}, Closing("duplicate", False, "duplicate")),
        (EventKind.MERGED_INTO, {"into": 3}, Closing("merged", False, "merged")),
    ],
)
def test_each_closing_kind(kind: str, data: object, expected: Closing) -> None:
    assert closing_of(kind, data) == expected
    assert close_reason(kind, data) == expected.reason


@pytest.mark.parametrize("kind", [EventKind.REOPENED, EventKind.RESOLVE, "sla_met", "nonsense"])
def test_other_kinds_do_not_close(kind: str) -> None:
    assert closing_of(kind, {"reason": "spam"}) is None
    assert close_reason(kind, {"reason": "spam"}) == ""
    assert WebhookEventType.TICKET_CLOSED not in webhook_types(kind)


def test_webhooks_and_reports_read_the_same_kinds() -> None:
    for kind in CLOSING_KINDS:
        assert WebhookEventType.TICKET_CLOSED in webhook_types(kind)
        assert kind in SUBSCRIBED_KINDS
        assert kind in READ_KINDS
