"""Direct messages on X, through the real path: tweepy polls ``GET /2/dm_events`` on the X
emulator, ingest threads each DM into the customer's ticket (or opens a private one), and
the outbox sends DMs the emulator refuses exactly where X would."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from channels_social.base import ChannelError, OutboundKind, SendTarget, Stream
from channels_social.models import SocialAccount
from channels_social.services import account_poll, cursor_position
from channels_social.x.adapter import XAdapter
from tests.conftest import Persona
from tests.sandbox_fixtures import XSandbox
from tickets.models import Direction, EventKind, MessageKind, OutboxState, Status, Step, Ticket
from tickets.services import outbox_send, ticket_take_step

pytestmark = pytest.mark.django_db(transaction=True)

BRAND = "1000"
DANA = "2001"


@pytest.fixture
def account(make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox) -> SocialAccount:
    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    return make_account(external_id=BRAND, username="AcmeCare", api_base_url=x_sandbox_clean.url)


def _mention(sandbox: XSandbox, text: str, *, author: str = DANA, name: str = "dana") -> str:
    return str(sandbox.control.post_mention("AcmeCare", author, name, 300, text)["id"])


def _dm(sandbox: XSandbox, text: str, *, author: str = DANA, name: str = "dana") -> str:
    return str(sandbox.control.send_dm("AcmeCare", author, name, text, followers=300)["id"])


def _step(ticket: Ticket, step: str, by: Persona, text: str) -> None:
    message = ticket_take_step(ticket=ticket, step=step, by=by.user, text=text)
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.SENT


def test_dms_join_the_ticket_taken_offline_in_order(
    account: SocialAccount, x_sandbox_clean: XSandbox, agent: Persona
) -> None:
    _mention(x_sandbox_clean, "My blender arrived broken")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    _step(ticket, Step.ACKNOWLEDGE, agent, "So sorry! Let's sort it out.")
    _step(ticket, Step.TAKE_OFFLINE, agent, "Could you DM us your order number?")
    first = _dm(x_sandbox_clean, "Sure, it's #A-1001")
    second = _dm(x_sandbox_clean, "And the lid is cracked too")

    assert account_poll(account_id=account.pk).startswith("ok: 2 new, 0 tickets")
    assert Ticket.objects.count() == 1
    conversation = list(ticket.messages.order_by("created_at", "pk"))
    assert [(m.direction, m.kind, m.is_public) for m in conversation] == [
        (Direction.INBOUND, MessageKind.POST, True),
        (Direction.OUTBOUND, MessageKind.REPLY, True),
        (Direction.OUTBOUND, MessageKind.DM, False),
        (Direction.INBOUND, MessageKind.DM, False),
        (Direction.INBOUND, MessageKind.DM, False),
    ]
    assert [m.external_id for m in conversation[-2:]] == [first, second]
    assert conversation[-1].conversation_id == f"{BRAND}-{DANA}"
    # The brand's own DM, sent by the outbox, came back from /2/dm_events: stored once.
    assert ticket.messages.filter(direction=Direction.OUTBOUND, is_public=False).count() == 1
    assert cursor_position(account, Stream.DIRECT_MESSAGES) == second
    assert account_poll(account_id=account.pk).startswith("ok: 0 new")


def test_a_dm_with_no_ticket_opens_a_private_ticket_whose_steps_are_dms(
    account: SocialAccount, x_sandbox_clean: XSandbox, agent: Persona
) -> None:
    dm_id = _dm(x_sandbox_clean, "Hi, my account is locked", author="2002", name="sam")
    assert account_poll(account_id=account.pk).startswith("ok: 1 new, 1 tickets")
    ticket = Ticket.objects.get()
    assert not ticket.is_public
    assert ticket.conversation_id == f"{BRAND}-2002"
    assert ticket.root_message is not None and ticket.root_message.external_id == dm_id
    assert ticket.check_step(Step.ACKNOWLEDGE) is False  # a DM, not a public reply

    _step(ticket, Step.ACKNOWLEDGE, agent, "Hi Sam, we're on it.")
    reply = ticket.messages.get(direction=Direction.OUTBOUND)
    assert (reply.kind, reply.is_public) == (MessageKind.DM, False)
    sent = x_sandbox_clean.control.dm_events("2002")
    assert [(e["sender_id"], e["text"]) for e in sent][-1] == (BRAND, "Hi Sam, we're on it.")
    assert not any(e["path"] == "/2/tweets" for e in x_sandbox_clean.control.requests_log())
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED
    # Its next DM joins it.
    _dm(x_sandbox_clean, "Thanks!", author="2002", name="sam")
    account_poll(account_id=account.pk)
    assert Ticket.objects.count() == 1 and ticket.messages.count() == 3


def test_a_dm_prefers_the_ticket_taken_offline_over_another_open_one(
    account: SocialAccount, x_sandbox_clean: XSandbox, agent: Persona
) -> None:
    _mention(x_sandbox_clean, "Order one is late")
    account_poll(account_id=account.pk)
    offline = Ticket.objects.get()
    _step(offline, Step.ACKNOWLEDGE, agent, "Looking into order one.")
    _step(offline, Step.TAKE_OFFLINE, agent, "DM us the order number, please.")
    _mention(x_sandbox_clean, "Also, your app logs me out")
    account_poll(account_id=account.pk)
    newer = Ticket.objects.exclude(pk=offline.pk).get()
    assert newer.status == Status.NEW

    dm = _dm(x_sandbox_clean, "Order one is #B-77")
    account_poll(account_id=account.pk)
    assert offline.messages.filter(external_id=dm).exists()
    assert not newer.messages.filter(external_id=dm).exists()


def test_a_dm_joins_an_open_ticket_not_yet_taken_offline(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    _mention(x_sandbox_clean, "Where is my refund?")
    account_poll(account_id=account.pk)
    dm = _dm(x_sandbox_clean, "Here are the details you will need")
    account_poll(account_id=account.pk)
    assert Ticket.objects.count() == 1
    assert Ticket.objects.get().messages.filter(external_id=dm, kind=MessageKind.DM).exists()


def test_a_dm_the_brand_sends_from_the_x_app_is_the_brands_message(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    _mention(x_sandbox_clean, "Broken zip on my bag")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    event = x_sandbox_clean.app.store.add_dm(sender_id=BRAND, recipient_id=DANA, text="Hi Dana!")
    assert account_poll(account_id=account.pk).startswith("ok: 1 new, 0 tickets")
    message = ticket.messages.get(direction=Direction.OUTBOUND)
    assert message.external_id == event.dm_event_id
    assert (message.sent_by, message.is_public, message.author_username) == (
        None,
        False,
        "AcmeCare",
    )
    assert message.outbox.state == OutboxState.SENT and message.outbox.attempts == 0
    assert ticket.events.filter(kind=EventKind.REPLY_SENT, message=message).exists()


def test_a_brand_dm_to_someone_with_no_ticket_opens_nothing(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.control.upsert_user(id="2009", username="friend")
    x_sandbox_clean.app.store.add_dm(sender_id=BRAND, recipient_id="2009", text="Welcome!")
    assert account_poll(account_id=account.pk).startswith("ok: 0 new, 0 tickets")
    assert not Ticket.objects.exists()


def test_dm_to_a_customer_who_does_not_accept_dms_is_refused_before_sending(
    account: SocialAccount, x_sandbox_clean: XSandbox, agent: Persona
) -> None:
    _mention(x_sandbox_clean, "Never got my parcel")
    account_poll(account_id=account.pk)
    x_sandbox_clean.control.upsert_user(id=DANA, username="dana", accepts_dms=False)
    ticket = Ticket.objects.get()
    _step(ticket, Step.ACKNOWLEDGE, agent, "Sorry about that!")
    message = ticket_take_step(
        ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="Please DM us."
    )
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.FAILED
    message.outbox.refresh_from_db()
    assert "@dana does not accept direct messages from @AcmeCare" in message.outbox.last_error
    assert "403" not in message.outbox.last_error
    # The adapter asked X first (receives_your_dm) and never tried the send.
    paths = [e["path"] for e in x_sandbox_clean.control.requests_log()]
    assert f"/2/users/{DANA}" in paths
    assert not any(path.startswith("/2/dm_conversations") for path in paths)
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED  # the step reopened, with the reason
    reopened = ticket.events.filter(kind=EventKind.STEP_REOPENED).get()
    assert "does not accept direct messages" in reopened.data["reason"]


def test_xs_own_refusal_of_a_dm_is_shown_in_words(x_sandbox_clean: XSandbox) -> None:
    """When the look-up fails, the send goes ahead and X's 403 comes back as a sentence."""
    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    x_sandbox_clean.control.upsert_user(id=DANA, username="dana", accepts_dms=False)
    adapter = XAdapter(
        SocialAccount(
            external_id=BRAND,
            username="AcmeCare",
            api_base_url=x_sandbox_clean.url,
            credentials={
                "consumer_key": "ck",
                "consumer_secret": "cs",
                "access_token": f"{BRAND}-tok",
                "access_token_secret": "ts",
            },
        )
    )
    x_sandbox_clean.control.inject_faults(503)  # the receives_your_dm look-up fails
    with pytest.raises(ChannelError) as refused:
        adapter.send(OutboundKind.PRIVATE_MESSAGE, SendTarget(recipient_external_id=DANA), "Hi")
    assert refused.value.permanent and refused.value.status == 403
    assert str(refused.value).startswith("X refused the direct message: this customer does not")
    assert x_sandbox_clean.control.requests_log()[-1]["status"] == 403
    assert x_sandbox_clean.control.dm_events(DANA) == []


def test_a_bearer_only_account_does_not_poll_dms(
    make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    account = make_account(
        external_id=BRAND,
        username="AcmeCare",
        api_base_url=x_sandbox_clean.url,
        credentials={"bearer_token": "app"},
    )
    _dm(x_sandbox_clean, "hello?")
    assert account_poll(account_id=account.pk).startswith("ok")
    assert not any(e["path"] == "/2/dm_events" for e in x_sandbox_clean.control.requests_log())
