"""Moderation, deleting: a manager deletes a customer's post only for a community-guideline
reason, out through the outbox and facebook-sdk to the Facebook emulator (Graph ``DELETE``),
recorded when asked and when the platform answers. X never lets a brand delete another
account's post: its adapter says so and the inbox offers hide (and report) only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Membership
from channels_social.base import OutboundKind
from channels_social.facebook.adapter import FacebookAdapter
from channels_social.models import Platform, SocialAccount
from channels_social.sandbox.control_client import SandboxError
from channels_social.services import account_poll
from channels_social.x.adapter import XAdapter
from tests.conftest import Persona
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tests.factories import InboundMessageFactory, TicketFactory
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
from tickets.services.teamwork import TeamworkError, moderation_delete


def _membership(persona: Persona) -> Membership:
    return Membership.objects.get(user=persona.user, organization=persona.organization)


def _facebook_comment(
    make_account: Callable[..., SocialAccount], sandbox: FacebookSandbox, text: str
) -> tuple[Ticket, Message, str]:
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
    comment = sandbox.control.comment(launch["id"], person_id="9001", name="Rude Ron", message=text)
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    return ticket, ticket.messages.get(external_id=comment["id"]), str(comment["id"])


def _deleted_on_the_emulator(sandbox: FacebookSandbox, object_id: str) -> bool:
    deletes = [m for m in sandbox.control.sent(FB_PAGE_ID)["moderation"] if m["action"] == "delete"]
    return any(m["object_id"] == object_id for m in deletes)


def test_a_manager_deletes_a_facebook_comment_through_graph_and_it_is_recorded(
    manager: Persona,
    agent: Persona,
    make_account: Callable[..., SocialAccount],
    facebook_sandbox_clean: FacebookSandbox,
) -> None:
    sandbox = facebook_sandbox_clean
    ticket, post, comment_id = _facebook_comment(make_account, sandbox, "You are all idiots")
    deletion = moderation_delete(
        ticket=ticket, message_id=post.pk, by=_membership(manager), reason="harassing"
    )
    assert deletion.kind == MessageKind.DELETE
    assert deletion.in_reply_to_external_id == comment_id
    requested = ticket.events.get(kind=EventKind.DELETION_REQUESTED)
    assert requested.actor == manager.user and requested.data["reason"] == "harassing"
    assert requested.data["target_message_id"] == post.pk

    # Moderation is not a reply: the care steps go on while it waits.
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="We hear you.")

    assert outbox_send(item_id=deletion.outbox.pk) == OutboxState.SENT
    # Graph's DELETE went out through facebook-sdk, and the comment is gone on the emulator.
    calls = [c for c in sandbox.control.requests_log() if c.get("method") == "DELETE"]
    assert [c["path"].rsplit("/", 1)[-1] for c in calls] == [comment_id]
    assert _deleted_on_the_emulator(sandbox, comment_id)
    with pytest.raises(SandboxError):
        sandbox.control.get_object(comment_id)

    deleted = ticket.events.get(kind=EventKind.POST_DELETED)
    assert deleted.data["reason"] == "harassing" and deleted.data["external_id"] == comment_id
    assert not ticket.events.filter(kind=EventKind.REPLY_SENT, message=deletion).exists()
    post.refresh_from_db()
    assert post.text == "You are all idiots"  # the ticket keeps what was said
    assert post.raw["deleted_by_brand_at"]
    with pytest.raises(TeamworkError, match="deleted already"):
        moderation_delete(ticket=ticket, message_id=post.pk, by=_membership(manager), reason="spam")


def test_a_delete_whose_answer_was_lost_is_tried_again_and_counts_as_done(
    manager: Persona,
    make_account: Callable[..., SocialAccount],
    facebook_sandbox_clean: FacebookSandbox,
) -> None:
    sandbox = facebook_sandbox_clean
    ticket, post, comment_id = _facebook_comment(make_account, sandbox, "Cheap pills here")
    deletion = moderation_delete(
        ticket=ticket, message_id=post.pk, by=_membership(manager), reason="spam"
    )
    sandbox.control.inject_drop(count=1)  # Graph deletes it, the answer never arrives
    with pytest.raises(TransientSendError):
        outbox_send(item_id=deletion.outbox.pk)
    assert OutboxItem.objects.get(pk=deletion.outbox.pk).state == OutboxState.QUEUED
    assert _deleted_on_the_emulator(sandbox, comment_id)
    # The retry finds it gone ("does not exist"): that is the delete having happened.
    assert outbox_send(item_id=deletion.outbox.pk) == OutboxState.SENT
    assert ticket.events.filter(kind=EventKind.POST_DELETED).count() == 1
    assert not ticket.events.filter(kind=EventKind.DELETION_FAILED).exists()


def test_facebook_refusing_a_delete_is_recorded_and_moves_no_step(
    manager: Persona,
    make_account: Callable[..., SocialAccount],
    facebook_sandbox_clean: FacebookSandbox,
) -> None:
    sandbox = facebook_sandbox_clean
    ticket, post, comment_id = _facebook_comment(make_account, sandbox, "Vulgar words")
    deletion = moderation_delete(
        ticket=ticket, message_id=post.pk, by=_membership(manager), reason="vulgar"
    )
    # Deleted on Facebook by someone else meanwhile: the first attempt hears "does not exist".
    sandbox.graph().delete_object(comment_id)
    assert outbox_send(item_id=deletion.outbox.pk) == OutboxState.FAILED
    failed = ticket.events.get(kind=EventKind.DELETION_FAILED)
    assert "no longer exists on Facebook" in failed.data["error"]
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert not ticket.events.filter(kind__in=[EventKind.STEP_REOPENED, EventKind.REPLY_REFUSED])
    assert not ticket.events.filter(kind=EventKind.POST_DELETED).exists()


def test_x_says_a_brand_cannot_delete_and_nothing_is_queued(manager: Persona) -> None:
    assert OutboundKind.DELETE not in XAdapter.outbound_kinds
    assert "does not let a brand delete" in (XAdapter.moderation_refusal(OutboundKind.DELETE) or "")
    assert XAdapter.moderation_refusal(OutboundKind.HIDE) is None
    assert FacebookAdapter.moderation_refusal(OutboundKind.DELETE) is None
    ticket = TicketFactory(
        platform=Platform.X, social_account__brand__organization=manager.organization
    )
    post = InboundMessageFactory(ticket=ticket)
    with pytest.raises(TeamworkError, match="X does not let a brand delete"):
        moderation_delete(ticket=ticket, message_id=post.pk, by=_membership(manager), reason="spam")
    assert not OutboxItem.objects.exists() and not ticket.events.exists()


@pytest.mark.parametrize("reason", ["", "rude", "negative review", "competitor"])
def test_only_a_community_guideline_reason_deletes_a_post(manager: Persona, reason: str) -> None:
    ticket = TicketFactory(
        platform=Platform.FACEBOOK,
        social_account__platform=Platform.FACEBOOK,
        social_account__brand__organization=manager.organization,
    )
    post = InboundMessageFactory(ticket=ticket, platform=Platform.FACEBOOK, kind="comment")
    with pytest.raises(TeamworkError, match="community-guideline reason"):
        moderation_delete(ticket=ticket, message_id=post.pk, by=_membership(manager), reason=reason)
    assert not OutboxItem.objects.exists() and not ticket.events.exists()


def test_an_agent_cannot_delete(agent: Persona) -> None:
    ticket = TicketFactory(
        platform=Platform.FACEBOOK,
        social_account__platform=Platform.FACEBOOK,
        social_account__brand__organization=agent.organization,
    )
    post = InboundMessageFactory(ticket=ticket, platform=Platform.FACEBOOK, kind="comment")
    with pytest.raises(TeamworkError, match="Only a manager"):
        moderation_delete(ticket=ticket, message_id=post.pk, by=_membership(agent), reason="spam")
    assert not OutboxItem.objects.exists()


def test_delete_view(agent: Persona, manager: Persona, outsider: Persona) -> None:
    ticket = TicketFactory(
        platform=Platform.FACEBOOK,
        social_account__platform=Platform.FACEBOOK,
        social_account__brand__organization=agent.organization,
    )
    post = InboundMessageFactory(
        ticket=ticket, platform=Platform.FACEBOOK, kind="comment", text="you are all clowns"
    )
    url = reverse("tickets:delete-post", args=[ticket.pk, post.pk])
    detail = reverse("tickets:detail", args=[ticket.pk])
    # Agents may hide, never delete: no control, and the URL answers 404 (above their role).
    agent_page = agent.client().get(detail).content.decode()
    assert f'action="{url}"' not in agent_page and "Hide…" in agent_page
    assert agent.client().post(url, {"reason": "spam"}).status_code == 404
    assert outsider.client().post(url, {"reason": "spam"}).status_code == 404
    assert not OutboxItem.objects.exists()

    manager_page = manager.client().get(detail).content.decode()
    assert f'action="{url}"' in manager_page and "Delete on Facebook" in manager_page
    refused = manager.client().post(url, {"reason": "rude"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422
    assert "community-guideline reason" in refused.content.decode()
    assert manager.client().post(url, {"reason": "vulgar"}).status_code == 302
    item = OutboxItem.objects.get()
    assert item.message.kind == MessageKind.DELETE and item.state == OutboxState.QUEUED
    page = manager.client().get(detail).content.decode()
    assert 'class="badge deleted-post">deleting…' in page
    assert "Deleting a post" in page  # on the timeline
    assert f'action="{url}"' not in page  # not offered twice


def test_on_x_the_page_offers_hide_only_and_says_why_not_delete(manager: Persona) -> None:
    ticket = TicketFactory(
        platform=Platform.X, social_account__brand__organization=manager.organization
    )
    post = InboundMessageFactory(ticket=ticket)
    page = manager.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert reverse("tickets:delete-post", args=[ticket.pk, post.pk]) not in page
    assert "Hide on X" in page
    assert "X does not let a brand delete another account&#x27;s post" in page
