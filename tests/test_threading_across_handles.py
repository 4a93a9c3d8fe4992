"""A thread spanning two of an organisation's handles stays one ticket, and the brand always
answers from the handle the customer addressed, whichever handle's poll saw a post first.

Through the real path: two handles in the X sandbox, tweepy polls, the outbox sends."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from channels_social.models import SocialAccount
from channels_social.services import account_poll
from tests.conftest import Persona
from tests.sandbox_fixtures import XSandbox
from tickets.models import OutboxState, Step, Ticket
from tickets.services import outbox_send, ticket_take_step

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def handles(
    make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> tuple[SocialAccount, SocialAccount]:
    shop = make_account(external_id="1000", username="AcmeShop", api_base_url=x_sandbox_clean.url)
    help_ = make_account(
        external_id="1001",
        username="AcmeHelp",
        api_base_url=x_sandbox_clean.url,
        brand=shop.brand,
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeShop")
    x_sandbox_clean.register_brand(id="1001", username="AcmeHelp")
    return shop, help_


def _post(sandbox: XSandbox, to: str, text: str, **kwargs: object) -> str:
    post = sandbox.control.post_mention(to, "2001", "dana", 1500, text, **kwargs)  # type: ignore[arg-type]
    return str(post["id"])


def _posted_by(sandbox: XSandbox, external_id: str) -> str:
    return str(sandbox.control.get_tweet(external_id)["author_id"])


@pytest.mark.parametrize("first_poll", ["shop", "help"])
def test_a_reply_to_the_brand_that_mentions_another_handle_joins_the_ticket(
    handles: tuple[SocialAccount, SocialAccount],
    x_sandbox_clean: XSandbox,
    agent: Persona,
    first_poll: str,
) -> None:
    shop, help_ = handles
    _post(x_sandbox_clean, "AcmeShop", "My parcel is a week late")
    account_poll(account_id=shop.pk)
    ticket = Ticket.objects.get()
    ack = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry Dana, on it!"
    )
    assert outbox_send(item_id=ack.outbox.pk) == OutboxState.SENT
    ack.refresh_from_db()
    # Dana answers the brand's reply and copies in the other handle.
    follow_up = _post(
        x_sandbox_clean,
        "AcmeShop",
        "@AcmeShop @AcmeHelp still nothing, can anyone help?",
        in_reply_to=ack.external_id,
    )
    order = [help_, shop] if first_poll == "help" else [shop, help_]
    for handle in order:
        account_poll(account_id=handle.pk)
    assert Ticket.objects.count() == 1
    assert ticket.messages.filter(external_id=follow_up).exists()
    # The next reply goes out from the handle Dana addressed first: the shop.
    ticket.refresh_from_db()
    assert ticket.social_account_id == shop.pk
    dm = ticket_take_step(ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="DM us?")
    assert outbox_send(item_id=dm.outbox.pk) == OutboxState.SENT
    events = x_sandbox_clean.control.dm_events("2001")
    assert [e["sender_id"] for e in events] == ["1000"]


@pytest.mark.parametrize("first_poll", ["shop", "help"])
def test_a_post_mentioning_two_handles_is_filed_under_the_first_addressed(
    handles: tuple[SocialAccount, SocialAccount],
    x_sandbox_clean: XSandbox,
    agent: Persona,
    first_poll: str,
) -> None:
    shop, help_ = handles
    _post(x_sandbox_clean, "AcmeHelp", "@AcmeHelp @AcmeShop my refund is missing")
    order = [help_, shop] if first_poll == "help" else [shop, help_]
    for handle in order:
        account_poll(account_id=handle.pk)
    ticket = Ticket.objects.get()
    assert ticket.social_account_id == help_.pk
    ack = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    assert outbox_send(item_id=ack.outbox.pk) == OutboxState.SENT
    ack.refresh_from_db()
    assert _posted_by(x_sandbox_clean, ack.external_id) == "1001"


def test_another_customer_in_the_thread_opens_their_own_ticket(
    handles: tuple[SocialAccount, SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    shop, help_ = handles
    root = _post(x_sandbox_clean, "AcmeShop", "Broken blender")
    account_poll(account_id=shop.pk)
    x_sandbox_clean.control.post_mention(
        "AcmeHelp", "2002", "sam", 10, "@AcmeHelp same here!", in_reply_to=root
    )
    account_poll(account_id=help_.pk)
    assert Ticket.objects.count() == 2
