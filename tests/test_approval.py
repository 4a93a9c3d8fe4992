"""Approval: rules hold a reply for a manager; approve (as written or edited) sends it through
the outbox exactly once; reject sends it back with a comment. All recorded."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from careinbox.notifications.models import Notification
from channels_social.models import SocialAccount
from channels_social.services import account_poll
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tests.pages import live_vals
from tests.sandbox_fixtures import XSandbox
from tickets.models import (
    ApprovalRequest,
    ApprovalRules,
    ApprovalState,
    EventKind,
    Message,
    OutboxItem,
    PriorityRules,
    Status,
    Step,
    StepError,
    Ticket,
)
from tickets.services import outbox_send, ticket_take_step
from tickets.services.approval import Decision, approval_decide, approval_reasons

REPLY = "So sorry about this, Jo. We're looking into it now."


@pytest.fixture
def ticket(agent: Persona) -> Ticket:
    ticket = TicketFactory(
        social_account__brand__organization=agent.organization,
        customer_username="jo",
        customer_followers=900,
    )
    InboundMessageFactory(ticket=ticket, text="My kettle broke, I'm calling my lawyer")
    return ticket


def _hold(ticket: Ticket, agent: Persona, text: str = REPLY) -> ApprovalRequest:
    held = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text=text)
    assert isinstance(held, ApprovalRequest)
    return held


def test_a_legal_keyword_holds_the_reply_and_nothing_is_queued(
    ticket: Ticket, agent: Persona, manager: Persona
) -> None:
    held = _hold(ticket, agent)
    assert held.state == ApprovalState.PENDING and held.requested_by == agent.user
    assert held.reasons == ['The customer mentions "lawyer" (a legal keyword).']
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert not Message.objects.filter(ticket=ticket, direction="out").exists()
    event = ticket.events.get(kind=EventKind.REPLY_HELD)
    assert event.actor == agent.user and event.data["approval_id"] == held.pk
    with pytest.raises(StepError, match="waiting for a manager's approval"):
        ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Another")


@pytest.mark.django_db(transaction=True)
def test_managers_are_told_once_it_commits(
    ticket: Ticket, agent: Persona, manager: Persona
) -> None:
    held = _hold(ticket, agent)
    [note] = Notification.objects.filter(recipient=manager.user)
    assert "waiting for your approval" in note.title and note.url == reverse("tickets:approvals")
    assert not Notification.objects.filter(recipient=agent.user).exists()
    assert held.pk


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (
            lambda t: t.require_approval("Escalated: a journalist", by=None),
            "Escalated: a journalist",
        ),
        (
            lambda t: PriorityRules.objects.create(organization=t.organization, vip_handles=["jo"]),
            "@jo is on the VIP list.",
        ),
        (
            lambda t: ApprovalRules.objects.create(organization=t.organization, min_followers=500),
            "@jo has 900 followers (approval from 500).",
        ),
        (
            lambda t: ApprovalRules.objects.create(organization=t.organization).brands.add(t.brand),
            "Replies for the brand",
        ),
    ],
)
def test_each_rule_holds_a_reply(
    agent: Persona, setup: Callable[[Ticket], object], reason: str
) -> None:
    ticket = TicketFactory(
        social_account__brand__organization=agent.organization,
        customer_username="jo",
        customer_followers=900,
    )
    InboundMessageFactory(ticket=ticket, text="Where is my parcel?")
    assert approval_reasons(ticket, REPLY) == []
    setup(ticket)
    ticket.refresh_from_db()
    assert any(r.startswith(reason) for r in approval_reasons(ticket, REPLY))
    assert isinstance(_hold(ticket, agent), ApprovalRequest)


def test_a_legal_keyword_in_the_reply_itself_and_the_org_can_change_the_list(
    agent: Persona,
) -> None:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    InboundMessageFactory(ticket=ticket, text="Where is my parcel?")
    assert approval_reasons(ticket, "Sorry! Our solicitor will reply.") == [
        'The reply mentions "solicitor" (a legal keyword).'
    ]
    ApprovalRules.objects.create(organization=ticket.organization, legal_keywords=["refund"])
    assert approval_reasons(ticket, "Sorry! Our solicitor will reply.") == []
    assert approval_reasons(ticket, "Sorry, your refund is on its way") != []


def test_replies_waiting_longer_than_n_minutes(ticket: Ticket, agent: Persona) -> None:
    held = _hold(ticket, agent)
    assert not ApprovalRequest.objects.waiting_longer_than(timedelta(minutes=10)).exists()
    ApprovalRequest.objects.filter(pk=held.pk).update(
        requested_at=timezone.now() - timedelta(minutes=11)
    )
    assert list(ApprovalRequest.objects.waiting_longer_than(timedelta(minutes=10))) == [held]


def test_a_managers_own_reply_is_not_held(ticket: Ticket, manager: Persona) -> None:
    sent = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=manager.user, text=REPLY)
    assert isinstance(sent, Message) and sent.outbox.state == "queued"


def test_approve_queues_it_once_under_the_agents_name(
    ticket: Ticket, agent: Persona, manager: Persona
) -> None:
    held = _hold(ticket, agent)
    decided = approval_decide(approval=held, by=manager.user, decision=Decision.APPROVE)
    assert decided.state == ApprovalState.APPROVED and decided.decided_by == manager.user
    message = decided.message
    assert message is not None and message.text == REPLY and message.sent_by == agent.user
    assert OutboxItem.objects.filter(message__ticket=ticket).count() == 1
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
    approved = ticket.events.get(kind=EventKind.REPLY_APPROVED)
    assert approved.actor == manager.user and approved.data["edited"] is False
    with pytest.raises(StepError, match="already approved"):
        approval_decide(approval=held, by=manager.user, decision=Decision.APPROVE)
    assert OutboxItem.objects.filter(message__ticket=ticket).count() == 1


def test_approve_with_an_edit_sends_the_edited_text(
    ticket: Ticket, agent: Persona, manager: Persona
) -> None:
    held = _hold(ticket, agent)
    edited = "So sorry, Jo. Please DM us and our team will call you today."
    decided = approval_decide(
        approval=held, by=manager.user, decision=Decision.APPROVE, text=edited
    )
    assert decided.edited and decided.text == REPLY and decided.sent_text == edited
    assert decided.message is not None and decided.message.text == edited


def test_an_edit_the_guard_blocks_stays_pending_unless_overridable(
    ticket: Ticket, agent: Persona, manager: Persona
) -> None:
    held = _hold(ticket, agent)
    too_long = "Sorry! " + "x" * 300
    with pytest.raises(StepError, match="limit is 280"):
        approval_decide(approval=held, by=manager.user, decision=Decision.APPROVE, text=too_long)
    held.refresh_from_db()
    assert held.state == ApprovalState.PENDING
    # The manager's approval is the override of a delete request (recorded as theirs).
    decided = approval_decide(
        approval=held,
        by=manager.user,
        decision=Decision.APPROVE,
        text="Sorry! Please delete this tweet, it shows your address. DM us.",
    )
    assert decided.state == ApprovalState.APPROVED
    assert ticket.events.get(kind=EventKind.GUARD_OVERRIDDEN).actor == manager.user


def test_reject_needs_a_comment_and_sends_it_back(
    ticket: Ticket, agent: Persona, manager: Persona
) -> None:
    held = _hold(ticket, agent)
    with pytest.raises(StepError, match="Say why"):
        approval_decide(approval=held, by=manager.user, decision=Decision.REJECT, comment=" ")
    approval_decide(
        approval=held, by=manager.user, decision=Decision.REJECT, comment="Legal must see it first"
    )
    held.refresh_from_db()
    assert held.state == ApprovalState.REJECTED and held.comment == "Legal must see it first"
    assert (
        ticket.events.get(kind=EventKind.REPLY_REJECTED).data["comment"]
        == "Legal must see it first"
    )
    assert not OutboxItem.objects.filter(message__ticket=ticket).exists()
    page = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "sent your reply back:</strong> Legal must see it first" in page
    assert REPLY.replace("'", "&#x27;") in page  # their text is back in the box
    assert _hold(ticket, agent).state == ApprovalState.PENDING  # and they can try again


def test_only_managers_decide(ticket: Ticket, agent: Persona) -> None:
    held = _hold(ticket, agent)
    with pytest.raises(StepError, match="Only a manager"):
        approval_decide(approval=held, by=agent.user, decision=Decision.APPROVE)


def test_approved_reply_goes_out_through_the_outbox_exactly_once(
    agent: Persona,
    manager: Persona,
    make_account: Callable[..., SocialAccount],
    x_sandbox_clean: XSandbox,
) -> None:
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    x_sandbox_clean.control.post_mention(
        "AcmeCare", "2001", "jo", 4200, "My lawyer will hear about this"
    )
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    held = _hold(ticket, agent)
    decided = approval_decide(approval=held, by=manager.user, decision=Decision.APPROVE)
    assert decided.message is not None
    item_id = decided.message.outbox.pk
    assert outbox_send(item_id=item_id) == "sent"
    assert outbox_send(item_id=item_id) == "sent"  # a second delivery of the task sends nothing
    posted = [t for t in x_sandbox_clean.app.store.tweets.values() if t.text.endswith(REPLY)]
    assert len(posted) == 1
    assert ticket.events.filter(kind=EventKind.REPLY_SENT).count() == 1


# The web: the composer, the queue and the decision --------------------------------------------


def test_composer_says_it_is_held_and_the_ticket_page_shows_it(
    ticket: Ticket, agent: Persona
) -> None:
    url = reverse("tickets:reply", args=[ticket.pk, Step.ACKNOWLEDGE])
    response = agent.client().post(url, {"text": REPLY}, follow=True)
    body = response.content.decode()
    assert "Held for a manager&#x27;s approval" in body
    assert "<h2>Waiting for a manager's approval</h2>" in body
    assert 'id="step-text"' not in body  # no second reply while one waits


def test_queue_lists_pending_replies_with_a_fixed_query_count(
    agent: Persona, manager: Persona
) -> None:
    def add_held() -> None:
        held_ticket = TicketFactory(social_account__brand__organization=agent.organization)
        InboundMessageFactory(ticket=held_ticket, text="I will sue")
        Ticket.objects.filter(pk=held_ticket.pk).update(root_message=held_ticket.messages.get())
        _hold(held_ticket, agent)

    client = manager.client()
    url = reverse("tickets:approvals")
    add_held()
    client.get(url)  # warm the session and caches
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for _ in range(4):
        add_held()
    with CaptureQueriesContext(connection) as five:
        body = client.get(url).content.decode()
    assert body.count('class="approval-item"') == 5 and "I will sue" in body
    assert len(five) == len(one)


def test_queue_and_decisions_are_for_managers_of_the_organisation(
    ticket: Ticket, agent: Persona, manager: Persona, outsider: Persona
) -> None:
    held = _hold(ticket, agent)
    decide = reverse("tickets:approval-decide", args=[held.pk])
    assert agent.client().get(reverse("tickets:approvals")).status_code == 404
    assert agent.client().post(decide, {"decision": "approve"}).status_code == 404
    assert outsider.client().post(decide, {"decision": "approve"}).status_code == 404
    refused = manager.client().post(decide, {"decision": "reject", "comment": ""})
    assert refused.status_code == 422 and "Say why" in refused.content.decode()
    done = manager.client().post(decide, {"decision": "approve", "text": REPLY + " DM us?"})
    assert done.status_code == 302
    held.refresh_from_db()
    assert held.state == ApprovalState.APPROVED and held.sent_text == REPLY + " DM us?"


def test_the_ticket_page_follows_its_held_reply_live(
    ticket: Ticket, agent: Persona, manager: Persona
) -> None:
    """Found walking the demo. While a reply waits for approval the page has no send button,
    yet its live update sent the button's section (htmx: ``oobErrorNoTarget
    #step-submit-box`` in the console); and a reply the manager sent back left the agent's
    page saying "Waiting for a manager's approval" until a reload, the comment and the box
    to edit the reply nowhere. The live update now redraws the workspace when the approval
    changes, and sends no section the page does not show."""
    _hold(ticket, agent)
    url = reverse("tickets:detail", args=[ticket.pk])
    client = agent.client()
    page = client.get(url).content.decode()
    assert "Waiting for a manager" in page
    assert 'id="step-submit-box"' not in page
    vals = live_vals(page)
    assert client.get(url, vals, HTTP_HX_REQUEST="true").status_code == 204
    # Every section the update may send is one the page shows.
    everything = client.get(url, {**vals, "h": ""}, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="step-submit-box"' not in everything
    for target in re.findall(r'hx-swap-oob="[^"]*"[^>]*id="([^"]+)"', everything) + re.findall(
        r'id="([^"]+)"[^>]*hx-swap-oob=', everything
    ):
        assert f'id="{target}"' in page, target

    held = ApprovalRequest.objects.get(ticket=ticket)
    approval_decide(
        approval=held, by=manager.user, decision=Decision.REJECT, comment="Drop the lawyer bit."
    )
    response = client.get(url, vals, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#workspace"
    assert "sent your reply back:</strong> Drop the lawyer bit." in body
    assert 'id="step-submit-box"' in body
    assert re.search(r'<textarea id="step-text"[^>]*>So sorry about this, Jo\.', body)  # to edit
    assert "Waiting for a manager" not in body
    # The redrawn page polls with the new state: nothing more to send.
    assert client.get(url, live_vals(body), HTTP_HX_REQUEST="true").status_code == 204
