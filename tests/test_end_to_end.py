"""The spine, end to end on real components: a mention posted into the X sandbox, polled by a real
Celery worker, acknowledged by an agent through the web view, the reply in the sandbox, SLA met."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse

from channels_social.models import SocialAccount
from channels_social.tasks import poll_account
from monitoring.models import SlaEventKind, TimerState
from tests.conftest import Persona
from tests.sandbox_fixtures import XSandbox
from tests.worker_fixtures import wait_for
from tickets.models import Direction, EventKind, OutboxState, Status, Step, Ticket

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_mention_to_publicly_closed_out_ticket(
    celery_worker_process: object,
    x_sandbox_clean: XSandbox,
    make_account: Callable[..., SocialAccount],
    agent: Persona,
) -> None:
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    mention = x_sandbox_clean.control.post_mention(
        "AcmeCare", "2001", "jo_angry", 1_000, "My order #5521 is two weeks late. Not happy."
    )

    poll_account.delay(account.pk)  # the worker runs the same task beat schedules
    ticket = wait_for(
        lambda: Ticket.objects.filter(social_account=account).first(), what="the ticket"
    )
    assert isinstance(ticket, Ticket)
    assert ticket.root_message.external_id == mention["id"]  # type: ignore[union-attr]

    client = agent.client()
    texts = {
        Step.ACKNOWLEDGE: "Jo, we're sorry your order is late. We're looking at it now.",
        Step.TAKE_OFFLINE: "Hi Jo, could you DM us the email on the order so we can chase it?",
        Step.RESOLVE: "It ships today by express, and we've refunded the delivery fee.",
        Step.CLOSE_OUT: "Glad we got your order moving, Jo. Thanks for bearing with us!",
    }
    for step, text in texts.items():
        response = client.post(reverse("tickets:step", args=[ticket.pk, step]), {"text": text})
        assert response.status_code == 302, response.content[:500]
        wait_for(
            lambda t=text: ticket.messages.filter(text=t, outbox__state=OutboxState.SENT).exists(),
            what=f"{step} to be delivered",
        )

    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED
    acknowledgement, close_out = ticket.messages.filter(
        direction=Direction.OUTBOUND, is_public=True
    )
    for reply in (acknowledgement, close_out):
        in_sandbox = x_sandbox_clean.control.get_tweet(reply.external_id)
        assert in_sandbox["in_reply_to_tweet_id"] == mention["id"]
        # X adds the customer's handle in front (reply metadata): the agent typed only the body.
        assert in_sandbox["text"] == f"@jo_angry {reply.text}"
    dms = x_sandbox_clean.control.dm_events("2001")
    assert [dm["text"] for dm in dms] == [texts[Step.TAKE_OFFLINE], texts[Step.RESOLVE]]

    timer = ticket.sla_timers.get()
    assert timer.state == TimerState.MET
    kinds = list(ticket.events.values_list("kind", flat=True))
    assert kinds.count(EventKind.REPLY_SENT) == 4
    assert SlaEventKind.SLA_MET in kinds
    for step in texts:
        assert ticket.events.get(kind=step).actor == agent.user

    page = client.get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "Met" in page and "Closed out publicly" in page
