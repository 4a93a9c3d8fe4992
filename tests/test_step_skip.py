"""Skipping a care step only with a reason; closing without a public close-out, recorded so
reports can count it; a reply the platform refuses offers skipping instead."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import (
    EventKind,
    OutboxItem,
    SkipReason,
    Status,
    Step,
    StepError,
    Ticket,
    TicketEvent,
)
from tickets.services import ticket_take_step
from tickets.services.teamwork import ticket_close_without_close_out, ticket_skip_step


@pytest.fixture
def ticket(agent: Persona) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    InboundMessageFactory(ticket=ticket)
    return ticket


def _acknowledged(ticket: Ticket, agent: Persona) -> None:
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="So sorry!")
    OutboxItem.objects.update(state="sent")


def test_a_step_is_skipped_only_with_a_reason_and_recorded(ticket: Ticket, agent: Persona) -> None:
    _acknowledged(ticket, agent)
    for reason, note, expected in [
        ("", "", "Choose a reason"),
        ("bored", "", "Choose a reason"),
        (SkipReason.OTHER, "  ", "Say why"),
    ]:
        with pytest.raises(StepError, match=expected):
            ticket_skip_step(
                ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, reason=reason, note=note
            )
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
    assert not ticket.events.filter(kind=EventKind.STEP_SKIPPED).exists()

    ticket_skip_step(
        ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, reason=SkipReason.DMS_CLOSED
    )
    ticket.refresh_from_db()
    assert ticket.status == Status.OFFLINE and ticket.next_step == Step.RESOLVE
    event = ticket.events.get(kind=EventKind.STEP_SKIPPED)
    assert event.actor == agent.user
    assert event.data["step"] == Step.TAKE_OFFLINE and event.data["reason"] == "dms_closed"


def test_only_the_next_step_can_be_skipped(ticket: Ticket, agent: Persona) -> None:
    with pytest.raises(StepError, match="the next step is Acknowledge"):
        ticket_skip_step(ticket=ticket, step=Step.RESOLVE, by=agent.user, reason=SkipReason.SPAM)


def test_no_skipping_past_a_reply_still_on_its_way(ticket: Ticket, agent: Persona) -> None:
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="So sorry!")
    with pytest.raises(StepError, match="still on its way"):
        ticket_skip_step(
            ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, reason=SkipReason.NO_ANSWER
        )
    with pytest.raises(StepError, match="still on its way"):
        ticket_close_without_close_out(ticket=ticket, by=agent.user, reason=SkipReason.SPAM)


def test_skipping_the_close_out_closes_without_one_as_its_own_event(
    ticket: Ticket, agent: Persona
) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(status=Status.RESOLVED)
    ticket.refresh_from_db()
    ticket_skip_step(
        ticket=ticket,
        step=Step.CLOSE_OUT,
        by=agent.user,
        reason=SkipReason.POST_DELETED,
    )
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED and ticket.closed_at is not None
    assert not ticket.events.filter(kind=EventKind.CLOSE_OUT).exists()
    event = ticket.events.get(kind=EventKind.CLOSED_WITHOUT_CLOSE_OUT)
    assert event.data["reason"] == "post_deleted" and event.data["from_status"] == "resolved"


def test_spam_closes_from_the_first_step_and_reports_can_count_it(
    ticket: Ticket, agent: Persona
) -> None:
    other = TicketFactory(social_account=ticket.social_account)
    ticket_close_without_close_out(ticket=ticket, by=agent.user, reason=SkipReason.SPAM)
    ticket_close_without_close_out(
        ticket=other, by=agent.user, reason=SkipReason.OTHER, note="test post by staff"
    )
    closed = TicketEvent.objects.filter(
        organization=agent.organization, kind=EventKind.CLOSED_WITHOUT_CLOSE_OUT
    )
    assert sorted(closed.values_list("data__reason", flat=True)) == ["other", "spam"]
    with pytest.raises(StepError, match="closed already"):
        ticket_close_without_close_out(ticket=ticket, by=agent.user, reason=SkipReason.SPAM)


def test_skip_and_close_views(ticket: Ticket, agent: Persona, outsider: Persona) -> None:
    client = agent.client()
    skip = reverse("tickets:skip", args=[ticket.pk, Step.ACKNOWLEDGE])
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert f'action="{skip}"' in page
    refused = client.post(skip, {"reason": ""}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and "Choose a reason" in refused.content.decode()
    assert outsider.client().post(skip, {"reason": "spam"}).status_code == 404
    ok = client.post(skip, {"reason": "duplicate"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200 and "Step skipped" in ok.content.decode()
    close = reverse("tickets:close-without-close-out", args=[ticket.pk])
    assert client.post(close, {"reason": "duplicate"}).status_code == 302
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "Closed without a public close-out (A duplicate of another ticket)" in page


def test_a_reply_the_platform_refused_offers_skipping(ticket: Ticket, agent: Persona) -> None:
    message = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry about that"
    )
    OutboxItem.objects.update(state="failed")
    ticket.refresh_from_db()
    ticket.reopen_step(
        Step.ACKNOWLEDGE, message=message, reason="This post was deleted.", cause="reply_refused"
    )
    page = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert '<details class="step-skip" id="skip-box" open>' in page
    assert "will not take this reply? Skip the step instead" in page
