"""The four care steps as a service: in order, with validated text, through the outbox."""

from __future__ import annotations

import pytest

from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import (
    Direction,
    EventKind,
    Message,
    OutboxItem,
    Status,
    Step,
    StepError,
    Ticket,
    TicketEvent,
)
from tickets.services import ticket_take_step


def _snapshot(ticket: Ticket) -> tuple[str, int, int, int]:
    ticket.refresh_from_db()
    return (
        ticket.status,
        Message.objects.filter(ticket=ticket).count(),
        OutboxItem.objects.filter(message__ticket=ticket).count(),
        TicketEvent.objects.filter(ticket=ticket).count(),
    )


def _delivered() -> None:
    """Stand-in for the outbox task (tested in test_outbox): the replies went out."""
    OutboxItem.objects.filter(state="queued").update(state="sent")


@pytest.fixture
def ticket(agent: Persona) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    InboundMessageFactory(ticket=ticket)
    return ticket


def test_four_steps_in_order_queue_one_outbound_message_each(
    ticket: Ticket, agent: Persona
) -> None:
    root = ticket.messages.get()
    texts = {
        Step.ACKNOWLEDGE: "So sorry about this! We're looking into it right now.",
        Step.TAKE_OFFLINE: "Could you DM us your order number and a phone number?",
        Step.RESOLVE: "We've refunded the order and sent a replacement by express.",
        Step.CLOSE_OUT: "Glad we could sort this out — thanks for your patience!",
    }
    expected_status = [Status.ACKNOWLEDGED, Status.OFFLINE, Status.RESOLVED, Status.CLOSED]
    for (step, text), status in zip(texts.items(), expected_status, strict=True):
        message = ticket_take_step(ticket=ticket, step=step, by=agent.user, text=text)
        ticket.refresh_from_db()
        assert ticket.status == status
        assert message.direction == Direction.OUTBOUND
        assert message.step == step
        assert message.outbox.state == "queued"
        _delivered()
        assert message.external_id == ""
        event = ticket.events.get(kind=step)
        assert event.actor == agent.user
        assert event.message == message

    public = ticket.messages.filter(direction=Direction.OUTBOUND, is_public=True)
    assert [m.text for m in public] == [texts[Step.ACKNOWLEDGE], texts[Step.CLOSE_OUT]]
    assert all(m.in_reply_to_external_id == root.external_id for m in public)
    private = ticket.messages.filter(direction=Direction.OUTBOUND, is_public=False)
    assert [m.kind for m in private] == ["dm", "dm"]
    assert ticket.closed_at is not None
    assert not ticket.is_open


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        ("", "cannot be empty"),
        ("   \n\t ", "cannot be empty"),
        ("a" * 281, "281"),
        ("é" * 200 + "😀" * 41, "limit is 280"),  # emoji weigh 2: 200 + 82 = 282
        ("x" * 258 + " https://example.com/a/very/long/path/that/counts/as/23", "limit is 280"),
    ],
)
def test_bad_reply_text_is_refused_and_changes_nothing(
    ticket: Ticket, agent: Persona, text: str, message_part: str
) -> None:
    before = _snapshot(ticket)
    with pytest.raises(StepError, match=message_part):
        ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text=text)
    assert _snapshot(ticket) == before


def test_exactly_280_weighted_characters_is_accepted(ticket: Ticket, agent: Persona) -> None:
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="a" * 280)
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED


def test_a_url_counts_as_23_characters(ticket: Ticket, agent: Persona) -> None:
    text = "b" * 256 + " https://example.com/" + "c" * 100  # 256 + 1 + 23 = 280
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text=text)
    assert ticket.messages.filter(direction=Direction.OUTBOUND).count() == 1


@pytest.mark.parametrize("step", [Step.TAKE_OFFLINE, Step.RESOLVE, Step.CLOSE_OUT])
def test_step_out_of_order_is_refused_with_the_next_step_named(
    ticket: Ticket, agent: Persona, step: str
) -> None:
    before = _snapshot(ticket)
    with pytest.raises(StepError, match="the next step is Acknowledge"):
        ticket_take_step(ticket=ticket, step=step, by=agent.user, text="Hello")
    assert _snapshot(ticket) == before


def test_a_step_cannot_be_taken_twice(ticket: Ticket, agent: Persona) -> None:
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    before = _snapshot(ticket)
    with pytest.raises(StepError, match="next step is Take offline, not Acknowledge"):
        ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Again")
    assert _snapshot(ticket) == before


def test_unknown_step_is_refused(ticket: Ticket, agent: Persona) -> None:
    with pytest.raises(StepError, match="no care step called 'delete_post'"):
        ticket_take_step(ticket=ticket, step="delete_post", by=agent.user, text="x")


def test_closed_ticket_has_no_step_left(ticket: Ticket, agent: Persona) -> None:
    for step in Step:
        ticket_take_step(ticket=ticket, step=step, by=agent.user, text=f"text for {step}")
        _delivered()
    with pytest.raises(StepError, match="closed out"):
        ticket_take_step(ticket=ticket, step=Step.CLOSE_OUT, by=agent.user, text="again")


def test_private_message_may_be_long_but_not_over_10000(ticket: Ticket, agent: Persona) -> None:
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry!")
    _delivered()
    with pytest.raises(StepError):
        ticket_take_step(ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="d" * 10_001)
    ticket_take_step(ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="d" * 1000)
    ticket.refresh_from_db()
    assert ticket.status == Status.OFFLINE


def test_opened_event_is_history_not_a_step(ticket: Ticket) -> None:
    assert EventKind.OPENED not in Step.values


def test_next_step_waits_until_the_previous_reply_is_delivered(
    ticket: Ticket, agent: Persona
) -> None:
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    before = _snapshot(ticket)
    with pytest.raises(StepError, match="previous reply is still being sent"):
        ticket_take_step(ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="DM us")
    assert _snapshot(ticket) == before
    _delivered()
    ticket_take_step(ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="DM us")
    ticket.refresh_from_db()
    assert ticket.status == Status.OFFLINE


def test_a_platform_without_adapter_is_a_clear_step_error(ticket: Ticket, agent: Persona) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(platform="instagram")
    ticket.refresh_from_db()
    before = _snapshot(ticket)
    with pytest.raises(StepError, match="No adapter for platform 'instagram'"):
        ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi")
    assert _snapshot(ticket) == before


def test_assign_tag_and_require_approval_are_recorded_once(org, agent, manager) -> None:
    from careinbox.accounts.models import Team
    from tests.factories import TicketFactory
    from tickets.models import EventKind

    ticket = TicketFactory(organization=org)
    team = Team.objects.create(organization=org, name="Billing")
    assert ticket.assign(agent.user, team=team, by=manager.user, reason="round robin")
    assert ticket.assign(agent.user, team=team, by=manager.user) is None
    assert ticket.add_tag("#Outage ", by=agent.user) is not None
    assert ticket.add_tag("outage", by=agent.user) is None
    assert ticket.require_approval("VIP author", by=None) is not None
    assert ticket.require_approval("VIP author", by=None) is None
    assert ticket.remove_tag("OUTAGE", by=agent.user) is not None
    ticket.refresh_from_db()
    assert ticket.assigned_to == agent.user and ticket.team == team and ticket.approval_required
    kinds = list(ticket.events.order_by("pk").values_list("kind", flat=True))
    assert kinds[-4:] == [
        EventKind.ASSIGNED,
        EventKind.TAGGED,
        EventKind.APPROVAL_REQUIRED,
        EventKind.UNTAGGED,
    ]
    assert ticket.assign(None, by=agent.user) is not None
    ticket.refresh_from_db()
    assert ticket.assigned_to is None and ticket.assigned_at is None and ticket.team == team
