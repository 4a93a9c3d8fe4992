"""Moderation: hiding a customer's post only for a community-guideline reason, out through the
outbox to the X and Facebook emulators, recorded when asked and when the platform answers;
never a care step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from channels_social.models import Platform, SocialAccount
from channels_social.services import account_poll
from tests.conftest import Persona
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tests.factories import InboundMessageFactory, TicketFactory
from tests.sandbox_fixtures import XSandbox
from tickets.models import (
    EventKind,
    Message,
    MessageKind,
    OutboxItem,
    OutboxState,
    Status,
    Step,
    Ticket,
)
from tickets.services import TransientSendError, outbox_send, ticket_take_step
from tickets.services.teamwork import TeamworkError, moderation_hide


def _reply_under_the_brands_post(
    make_account: Callable[..., SocialAccount], sandbox: XSandbox
) -> tuple[Ticket, Message]:
    """A customer's abusive reply in a conversation the brand started (X lets the brand hide
    replies there, nothing else)."""
    account = make_account(external_id="1000", username="AcmeCare", api_base_url=sandbox.url)
    sandbox.register_brand(id="1000", username="AcmeCare")
    launch = sandbox.control.post_tweet("1000", "AcmeCare", "Our autumn range is out today!")
    sandbox.control.post_mention(
        "AcmeCare", "2001", "troll", 10, "You are all idiots", in_reply_to=launch["id"]
    )
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    return ticket, ticket.messages.get(direction="in")


def test_hiding_a_reply_goes_out_through_the_outbox_and_is_recorded(
    agent: Persona, make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    ticket, post = _reply_under_the_brands_post(make_account, x_sandbox_clean)
    hide = moderation_hide(ticket=ticket, message_id=post.pk, by=agent.user, reason="harassing")
    assert hide.kind == MessageKind.HIDE and hide.in_reply_to_external_id == post.external_id
    requested = ticket.events.get(kind=EventKind.MODERATION_REQUESTED)
    assert requested.actor == agent.user and requested.data["reason"] == "harassing"
    assert requested.data["target_message_id"] == post.pk

    # A hide is not a reply: it never holds the care steps back.
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="We hear you.")

    assert outbox_send(item_id=hide.outbox.pk) == OutboxState.SENT
    assert x_sandbox_clean.control.get_tweet(post.external_id)["hidden"] is True
    hidden = ticket.events.get(kind=EventKind.POST_HIDDEN)
    assert hidden.data["external_id"] == post.external_id
    assert hidden.data["reason"] == "harassing"
    # Nothing counts it as a reply: no reply_sent for it, the hide keeps no platform id.
    assert not ticket.events.filter(kind=EventKind.REPLY_SENT, message=hide).exists()
    hide.refresh_from_db()
    assert hide.external_id == ""
    with pytest.raises(TeamworkError, match="hidden already"):
        moderation_hide(ticket=ticket, message_id=post.pk, by=agent.user, reason="spam")


def test_x_refusing_a_hide_is_recorded_and_moves_no_step(
    agent: Persona, make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    x_sandbox_clean.control.post_mention("AcmeCare", "2001", "jo", 10, "Buy cheap followers!!")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    post = ticket.messages.get(direction="in")
    hide = moderation_hide(ticket=ticket, message_id=post.pk, by=agent.user, reason="spam")
    assert outbox_send(item_id=hide.outbox.pk) == OutboxState.FAILED
    failed = ticket.events.get(kind=EventKind.MODERATION_FAILED)
    assert "only hide or unhide replies to conversations you started" in failed.data["error"]
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert not ticket.events.filter(kind__in=[EventKind.STEP_REOPENED, EventKind.REPLY_REFUSED])
    assert x_sandbox_clean.control.get_tweet(post.external_id)["hidden"] is False
    # Failed, so it may be tried again (e.g. once the platform allows it).
    moderation_hide(ticket=ticket, message_id=post.pk, by=agent.user, reason="spam")


def test_a_hide_whose_answer_was_lost_is_simply_tried_again(
    agent: Persona, make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    ticket, post = _reply_under_the_brands_post(make_account, x_sandbox_clean)
    hide = moderation_hide(ticket=ticket, message_id=post.pk, by=agent.user, reason="vulgar")
    x_sandbox_clean.control.inject_drop(count=1)
    with pytest.raises(TransientSendError):
        outbox_send(item_id=hide.outbox.pk)
    assert OutboxItem.objects.get(pk=hide.outbox.pk).state == OutboxState.QUEUED
    assert outbox_send(item_id=hide.outbox.pk) == OutboxState.SENT
    assert ticket.events.filter(kind=EventKind.POST_HIDDEN).count() == 1


@pytest.mark.parametrize(
    "reason", ["", "rude", "ask the customer to delete", "negative review", "competitor"]
)
def test_only_a_community_guideline_reason_hides_a_post(agent: Persona, reason: str) -> None:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    post = InboundMessageFactory(ticket=ticket)
    with pytest.raises(TeamworkError, match="community-guideline reason"):
        moderation_hide(ticket=ticket, message_id=post.pk, by=agent.user, reason=reason)
    assert not OutboxItem.objects.exists() and not ticket.events.exists()


def test_a_private_message_cannot_be_hidden(agent: Persona) -> None:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    dm = InboundMessageFactory(ticket=ticket, kind="dm", is_public=False)
    with pytest.raises(TeamworkError, match="Only a public post"):
        moderation_hide(ticket=ticket, message_id=dm.pk, by=agent.user, reason="vulgar")


def test_hide_view(agent: Persona, manager: Persona, outsider: Persona) -> None:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    post = InboundMessageFactory(ticket=ticket, text="you are all clowns")
    url = reverse("tickets:hide", args=[ticket.pk, post.pk])
    page = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert f'action="{url}"' in page
    for label in ("Harassing someone", "Derogatory or hateful", "Vulgar or obscene", "Spam"):
        assert label in page
    assert "ask the customer to delete" not in page.lower()
    assert "Deleting is not offered" not in page  # told to managers only
    manager_page = manager.client().get(reverse("tickets:detail", args=[ticket.pk]))
    assert "Deleting is not offered: X does not let a brand delete" in (
        manager_page.content.decode()
    )

    refused = agent.client().post(url, {"reason": "rude"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and "community-guideline reason" in refused.content.decode()
    assert outsider.client().post(url, {"reason": "spam"}).status_code == 404
    assert agent.client().post(url, {"reason": "derogatory"}).status_code == 302
    page = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert 'class="badge hidden-post">hiding…' in page
    # The page stays live (it polls for what changed) until the hide is done; the step's
    # button stays usable.
    assert 'id="ticket-live"' in page
    assert "Sending the previous reply" not in page
    assert "Hiding a post" in page  # on the timeline


def test_hiding_a_facebook_comment_through_the_outbox(
    agent: Persona,
    make_account: Callable[..., SocialAccount],
    facebook_sandbox_clean: FacebookSandbox,
) -> None:
    sandbox = facebook_sandbox_clean
    sandbox.register_page(name="Acme")
    account = make_account(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=sandbox.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
        connected_at=timezone.now() - timedelta(days=1),
    )
    launch = sandbox.control.page_post(FB_PAGE_ID, "Our winter sale starts today!")
    comment = sandbox.control.comment(
        launch["id"], person_id="9001", name="Rude Ron", message="Buy cheap pills at spam.example"
    )
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    post = ticket.messages.get(external_id=comment["id"])
    hide = moderation_hide(ticket=ticket, message_id=post.pk, by=agent.user, reason="spam")
    assert outbox_send(item_id=hide.outbox.pk) == OutboxState.SENT
    assert sandbox.control.get_object(comment["id"])["is_hidden"] is True
    assert ticket.events.get(kind=EventKind.POST_HIDDEN).data["reason"] == "spam"
