"""The outbox: the only way a reply leaves, claimed once, sent through tweepy to the X sandbox.

Transactional, so that events reach their handlers after commit (the SLA is met from
``reply_sent`` by monitoring's handler) as they do in production."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from channels_social.base import OutboundKind, SendTarget
from channels_social.models import SocialAccount
from channels_social.services import account_poll
from monitoring.models import SlaEventKind, TimerState
from tests.backends import close_and_wait_gone, other_backend
from tests.conftest import Persona
from tests.pages import live_vals
from tests.sandbox_fixtures import XSandbox
from tickets.models import EventKind, Message, OutboxItem, OutboxState, Status, Step, Ticket
from tickets.services import (
    SettleOutcome,
    TransientSendError,
    outbox_flag_interrupted,
    outbox_requeue_lost,
    outbox_send,
    outbox_settle_uncertain,
    ticket_take_step,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _ticket_from_a_mention(make_account: Callable[..., SocialAccount], sandbox: XSandbox) -> Ticket:
    account = make_account(external_id="1000", username="AcmeCare", api_base_url=sandbox.url)
    sandbox.register_brand(id="1000", username="AcmeCare")
    sandbox.control.post_mention("AcmeCare", "2001", "jo", 4200, "Package lost AGAIN")
    account_poll(account_id=account.pk)
    return Ticket.objects.get()


def _queued_reply_without_task(ticket: Ticket, agent: Persona, text: str) -> Message:
    """The acknowledgement as ticket_take_step leaves it, minus its task: a Celery worker of
    this test session may be listening, and it must not be a sender in a race test."""
    root = ticket.root_message
    assert root is not None
    message = Message.objects.create(
        organization=ticket.organization,
        ticket=ticket,
        platform=ticket.platform,
        kind="reply",
        direction="out",
        is_public=True,
        in_reply_to_external_id=root.external_id,
        author_external_id="1000",
        author_username="AcmeCare",
        sent_by=agent.user,
        step=Step.ACKNOWLEDGE,
        text=text,
        created_at=timezone.now(),
    )
    OutboxItem.objects.create(organization=ticket.organization, message=message)
    ticket.take_step(Step.ACKNOWLEDGE, by=agent.user, message=message)
    return message


@pytest.fixture
def ticket(
    agent: Persona, make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> Ticket:
    return _ticket_from_a_mention(make_account, x_sandbox_clean)


def test_public_reply_goes_out_under_the_customers_post(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    message = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="So sorry, Jo! We're on it."
    )
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.SENT
    message.refresh_from_db()
    assert message.external_id  # the platform's id came back
    posted = x_sandbox_clean.control.get_tweet(message.external_id)
    assert posted["in_reply_to_tweet_id"] == ticket.root_message.external_id  # type: ignore[union-attr]
    # X adds the customer's handle in front (reply metadata): the agent typed only the body.
    assert posted["text"] == "@jo So sorry, Jo! We're on it."
    assert posted["author_id"] == "1000"
    assert ticket.events.filter(kind=EventKind.REPLY_SENT, message=message).exists()
    assert ticket.sla_timers.get().state == TimerState.MET


def test_dm_goes_to_the_customer(ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox) -> None:
    ack = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry!")
    outbox_send(item_id=ack.outbox.pk)
    dm = ticket_take_step(
        ticket=ticket,
        step=Step.TAKE_OFFLINE,
        by=agent.user,
        text="Could you send us your order number?",
    )
    assert outbox_send(item_id=dm.outbox.pk) == OutboxState.SENT
    dm.refresh_from_db()
    assert dm.conversation_id == "1000-2001"
    events = x_sandbox_clean.control.dm_events("2001")
    assert [e["text"] for e in events] == ["Could you send us your order number?"]
    # The first-response timer was fulfilled by the public reply, not the DM.
    assert ticket.sla_timers.get().fulfilled_at is not None


def test_an_item_is_sent_once_however_often_it_is_asked(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.SENT
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.SENT  # re-delivered task
    posts = [
        r
        for r in x_sandbox_clean.control.requests_log()
        if r["method"] == "POST" and r["path"] == "/2/tweets"
    ]
    assert len(posts) == 1


def test_permanent_failure_is_recorded_and_not_retried(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    x_sandbox_clean.control.inject_faults(status=403, count=1)
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.FAILED
    item = OutboxItem.objects.get(pk=message.outbox.pk)
    assert item.last_error and item.attempts == 1
    assert ticket.sla_timers.get().state == TimerState.ACTIVE  # nothing went out: not met
    # The ticket is back before the step, with the platform's reason, ready for a new reply.
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    refused = ticket.events.get(kind=EventKind.REPLY_REFUSED)
    assert refused.data["error"] and refused.data["status"] == 403
    reopened = ticket.events.get(kind=EventKind.STEP_REOPENED)
    assert reopened.data["step"] == Step.ACKNOWLEDGE
    assert reopened.data["cause"] == EventKind.REPLY_REFUSED
    assert reopened.data["reason"] == refused.data["error"]
    assert not ticket.events.filter(kind=EventKind.REPLY_FAILED).exists()
    again = ticket_take_step(
        ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi again, sorry!"
    )
    assert outbox_send(item_id=again.outbox.pk) == OutboxState.SENT
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED


def test_duplicate_text_refused_by_x_reopens_the_step_with_xs_reason(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    # X refuses a brand posting the same text twice; an agent pasting a canned line hits it.
    x_sandbox_clean.control.post_mention("AcmeCare", "2002", "sam", 10, "Me too!")
    account_poll(account_id=ticket.social_account_id)
    other = Ticket.objects.exclude(pk=ticket.pk).get()
    first = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    assert outbox_send(item_id=first.outbox.pk) == OutboxState.SENT
    second = ticket_take_step(ticket=other, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    assert outbox_send(item_id=second.outbox.pk) == OutboxState.FAILED
    other.refresh_from_db()
    assert other.status == Status.NEW
    assert "duplicate content" in other.events.get(kind=EventKind.REPLY_REFUSED).data["error"]


def test_a_closing_reply_refused_reopens_the_ticket(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    for step in (Step.ACKNOWLEDGE, Step.TAKE_OFFLINE, Step.RESOLVE):
        sent = ticket_take_step(ticket=ticket, step=step, by=agent.user, text=f"Reply {step}")
        assert outbox_send(item_id=sent.outbox.pk) == OutboxState.SENT
    closing = ticket_take_step(ticket=ticket, step=Step.CLOSE_OUT, by=agent.user, text="Sorted!")
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED and ticket.closed_at
    x_sandbox_clean.control.inject_faults(status=403, count=1)
    assert outbox_send(item_id=closing.outbox.pk) == OutboxState.FAILED
    ticket.refresh_from_db()
    assert ticket.status == Status.RESOLVED and ticket.closed_at is None


def test_transient_failure_requeues_for_a_retry(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    x_sandbox_clean.control.inject_faults(status=503, count=1)
    with pytest.raises(TransientSendError):
        outbox_send(item_id=message.outbox.pk)
    assert OutboxItem.objects.get(pk=message.outbox.pk).state == OutboxState.QUEUED
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.SENT  # the retry


def test_unreachable_platform_is_transient(ticket: Ticket, agent: Persona) -> None:
    SocialAccount.objects.update(api_base_url="http://127.0.0.1:9")  # nothing listens there
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    with pytest.raises(TransientSendError):
        outbox_send(item_id=message.outbox.pk)
    assert OutboxItem.objects.get(pk=message.outbox.pk).state == OutboxState.QUEUED
    assert outbox_send(item_id=message.outbox.pk, final_attempt=True) == OutboxState.FAILED
    # Gave up retrying: its own kind of event, then the step reopens.
    assert ticket.events.filter(kind=EventKind.REPLY_FAILED).count() == 1
    assert not ticket.events.filter(kind=EventKind.REPLY_REFUSED).exists()
    assert ticket.events.get(kind=EventKind.STEP_REOPENED).data["cause"] == EventKind.REPLY_FAILED


def test_a_send_interrupted_mid_way_is_flagged_not_resent(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    # A worker claimed it and died before recording the result.
    OutboxItem.objects.filter(pk=message.outbox.pk).update(
        state=OutboxState.SENDING, claimed_at=timezone.now() - timedelta(minutes=10)
    )
    assert outbox_flag_interrupted() == 1
    assert OutboxItem.objects.get(pk=message.outbox.pk).state == OutboxState.UNCERTAIN
    assert ticket.events.filter(kind=EventKind.SEND_INTERRUPTED).count() == 1
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.UNCERTAIN
    assert not [r for r in x_sandbox_clean.control.requests_log() if r["method"] == "POST"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="backend liveness is PostgreSQL's")
def test_a_send_whose_worker_was_killed_is_flagged_at_once(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    """SIGKILLed mid-send: its database connection closes with it, so housekeeping flags the
    item for the agent now, not five minutes later; a live sender keeps its claim."""
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    other, pid = other_backend()
    OutboxItem.objects.filter(pk=message.outbox.pk).update(
        state=OutboxState.SENDING, claimed_at=timezone.now(), claim_holder=pid
    )
    assert outbox_flag_interrupted() == 0  # the sender is alive, and not stalled
    close_and_wait_gone(other, pid)
    assert outbox_flag_interrupted() == 1
    assert OutboxItem.objects.get(pk=message.outbox.pk).state == OutboxState.UNCERTAIN
    assert ticket.events.filter(kind=EventKind.SEND_INTERRUPTED).count() == 1
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.UNCERTAIN
    assert not [r for r in x_sandbox_clean.control.requests_log() if r["method"] == "POST"]


def test_queued_items_whose_enqueue_was_lost_are_found(ticket: Ticket, agent: Persona) -> None:
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    assert outbox_requeue_lost() == []  # too fresh: its own task is still on the way
    OutboxItem.objects.filter(pk=message.outbox.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    assert outbox_requeue_lost() == [message.outbox.pk]


def test_a_retried_item_whose_retry_was_lost_is_found_after_the_longest_wait(
    ticket: Ticket, agent: Persona
) -> None:
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    OutboxItem.objects.filter(pk=message.outbox.pk).update(
        attempts=1, claimed_at=timezone.now() - timedelta(minutes=5)
    )
    assert outbox_requeue_lost() == []  # its retry may still be waiting out a rate limit
    OutboxItem.objects.filter(pk=message.outbox.pk).update(
        claimed_at=timezone.now() - timedelta(minutes=20)
    )
    assert outbox_requeue_lost() == [message.outbox.pk]


def test_a_send_that_finishes_after_being_flagged_records_a_late_result_only(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Housekeeping took the claim while the (real) platform call was still running."""
    from tickets.services import outbox as outbox_module

    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    real_adapter_for = outbox_module.adapter_for

    def adapter_flagged_mid_send(account: SocialAccount):  # type: ignore[no-untyped-def]
        adapter = real_adapter_for(account)
        send = adapter.send

        def send_then_get_flagged(*args, **kwargs):  # type: ignore[no-untyped-def]
            sent = send(*args, **kwargs)
            OutboxItem.objects.filter(pk=message.outbox.pk).update(
                claimed_at=timezone.now() - timedelta(minutes=10)
            )
            assert outbox_flag_interrupted() == 1
            return sent

        adapter.send = send_then_get_flagged  # type: ignore[method-assign]
        return adapter

    monkeypatch.setattr(outbox_module, "adapter_for", adapter_flagged_mid_send)
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.UNCERTAIN
    item = OutboxItem.objects.get(pk=message.outbox.pk)
    assert item.state == OutboxState.UNCERTAIN and item.attempts == 1
    late = ticket.events.get(kind=EventKind.LATE_RESULT)
    assert late.data["outcome"] == "posted" and late.data["external_id"]
    assert late.data["url"] == f"https://x.com/AcmeCare/status/{late.data['external_id']}"
    assert not ticket.events.filter(kind=EventKind.REPLY_SENT).exists()
    assert ticket.sla_timers.get().state == TimerState.ACTIVE


def test_settle_race_a_stalled_send_finishing_after_not_posted_changes_nothing(
    agent: Persona, make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    """The race as it happened: a send stalls past housekeeping's limit, housekeeping flags it,
    the agent settles "not posted" (the step reopens), then the stalled send completes. Its
    late answer is recorded for the agent and moves nothing: no ``reply_sent``, no SLA met,
    the item stays failed, and the outbox never sends it again."""
    import threading

    from django.db import connection

    ticket = _ticket_from_a_mention(make_account, x_sandbox_clean)
    message = _queued_reply_without_task(ticket, agent, "Hi!")
    x_sandbox_clean.control.inject_delay(4, count=1)  # X posts it, then answers 4 s later
    results: list[str] = []

    def stalled_send() -> None:
        try:
            results.append(outbox_send(item_id=message.outbox.pk))
        finally:
            connection.close()

    sender = threading.Thread(target=stalled_send)
    sender.start()
    for _ in range(100):  # wait until the send is on its way to X
        if OutboxItem.objects.get(pk=message.outbox.pk).state == OutboxState.SENDING:
            break
        threading.Event().wait(0.02)
    assert outbox_flag_interrupted(older_than=timedelta(0)) == 1
    outbox_settle_uncertain(
        ticket=ticket, message_id=message.pk, by=agent.user, outcome=SettleOutcome.NOT_POSTED
    )
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW  # the step reopened
    sender.join(timeout=30)
    assert results == [OutboxState.FAILED]  # the state the settle left, untouched

    item = OutboxItem.objects.get(pk=message.outbox.pk)
    assert item.state == OutboxState.FAILED
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    kinds = list(ticket.events.values_list("kind", flat=True))
    assert EventKind.REPLY_SENT not in kinds and SlaEventKind.SLA_MET not in kinds
    assert kinds[-4:] == [
        EventKind.SEND_INTERRUPTED,
        EventKind.SETTLED_NOT_POSTED,
        EventKind.STEP_REOPENED,
        EventKind.LATE_RESULT,
    ]
    late = ticket.events.get(kind=EventKind.LATE_RESULT)
    assert late.data["outcome"] == "posted"
    assert ticket.sla_timers.get().state == TimerState.ACTIVE
    # Nothing sends it again: redelivered tasks find it settled.
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.FAILED
    posts = [
        r
        for r in x_sandbox_clean.control.requests_log()
        if r["method"] == "POST" and r["path"] == "/2/tweets"
    ]
    assert len(posts) == 1


@pytest.mark.parametrize("fault", ["delay", "drop"])
def test_a_write_whose_answer_never_came_is_uncertain_and_not_resent(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox, settings: object, fault: str
) -> None:
    """X took the DM, but the answer was lost: sending again would message the customer twice."""
    ack = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry!")
    outbox_send(item_id=ack.outbox.pk)
    dm = ticket_take_step(ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="DM us?")
    settings.CHANNEL_HTTP_TIMEOUT_SECONDS = 1  # type: ignore[attr-defined]
    # Two calls: the adapter first asks whether Jo can receive DMs (its answer lost too: the
    # send goes ahead), then sends.
    if fault == "delay":
        x_sandbox_clean.control.inject_delay(2.5, count=2)
    else:
        x_sandbox_clean.control.inject_drop(count=2)
    assert outbox_send(item_id=dm.outbox.pk) == OutboxState.UNCERTAIN
    assert outbox_send(item_id=dm.outbox.pk) == OutboxState.UNCERTAIN  # a re-delivered task
    assert [e["text"] for e in x_sandbox_clean.control.dm_events("2001")] == ["DM us?"]
    uncertain = ticket.events.get(kind=EventKind.REPLY_UNCERTAIN)
    assert uncertain.data["error"]
    ticket.refresh_from_db()
    assert ticket.status == Status.OFFLINE  # most likely it went out: the step stands


def test_two_senders_racing_for_one_item_post_it_once(
    agent: Persona, make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    """Two workers got the same task (a redelivery): the claim lets exactly one call X."""
    import threading

    from django.db import connection

    ticket = _ticket_from_a_mention(make_account, x_sandbox_clean)
    message = _queued_reply_without_task(ticket, agent, "On it!")
    start = threading.Barrier(2)
    results: list[str] = []

    def send() -> None:
        start.wait()
        try:
            results.append(outbox_send(item_id=message.outbox.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    posts = [
        r
        for r in x_sandbox_clean.control.requests_log()
        if r["method"] == "POST" and r["path"] == "/2/tweets"
    ]
    assert len(posts) == 1
    assert OutboxState.SENT in results and len(results) == 2
    assert OutboxItem.objects.get(pk=message.outbox.pk).state == OutboxState.SENT


def test_duplicate_refusal_after_an_earlier_attempt_is_uncertain_not_failed(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    """A first attempt went through but its answer was lost; the retry is refused as a repeat."""
    from channels_social.registry import adapter_for

    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    adapter_for(ticket.social_account).send(
        OutboundKind.PUBLIC_REPLY,
        SendTarget(in_reply_to_external_id=message.in_reply_to_external_id),
        "On it!",
    )  # the lost first attempt
    OutboxItem.objects.filter(pk=message.outbox.pk).update(attempts=1)
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.UNCERTAIN
    ticket.refresh_from_db()
    assert ticket.status == Status.ACKNOWLEDGED  # not reopened: it is most likely on X


def test_an_item_gives_up_after_its_attempts_whoever_scheduled_them(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    from tickets.services import MAX_SEND_ATTEMPTS

    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    OutboxItem.objects.filter(pk=message.outbox.pk).update(attempts=MAX_SEND_ATTEMPTS - 1)
    x_sandbox_clean.control.inject_faults(status=503, count=1)
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.FAILED


def test_a_refusing_proxy_means_the_reply_never_left(
    ticket: Ticket, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real API (no base URL) requests honours HTTPS_PROXY; a dead proxy sends nothing."""
    SocialAccount.objects.update(api_base_url="")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.setenv("NO_PROXY", "")
    message = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi!")
    with pytest.raises(TransientSendError):
        outbox_send(item_id=message.outbox.pk)
    assert OutboxItem.objects.get(pk=message.outbox.pk).state == OutboxState.QUEUED


def test_the_queued_note_goes_once_the_reply_has_gone(
    ticket: Ticket, agent: Persona, x_sandbox_clean: XSandbox
) -> None:
    """Found walking the demo: after a reply the page said "Acknowledge: queued to send." above
    the next step's box long after the reply had been delivered (the note sat in the composer,
    which the live update never redraws). It now stands beside the send button, in the section
    the live update redraws, and goes when the reply has gone."""
    client = agent.client()
    detail = reverse("tickets:detail", args=[ticket.pk])
    step_url = reverse("tickets:step", args=[ticket.pk, Step.ACKNOWLEDGE])
    page = client.get(detail).content.decode()
    seen = re.search(r'name="seen" value="([^"]*)"', page)
    response = client.post(
        step_url,
        {"text": "So sorry about this, Jo. We're on it.", "seen": seen.group(1) if seen else ""},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 200, body
    item = OutboxItem.objects.get()
    # A worker of this session may have sent it already: then the note says so.
    note = re.search(r'id="reply-sent-note">([^<]*)<', body)
    assert note and note.group(1) in ("Acknowledge: queued to send.", "Acknowledge: sent.")
    assert "queued to send" not in body.replace(note.group(0), "")  # said once, beside the button

    assert outbox_send(item_id=item.pk) == OutboxState.SENT
    live = client.get(detail, live_vals(body), HTTP_HX_REQUEST="true")
    redrawn = live.content.decode()
    assert live.status_code == 200
    assert 'id="step-submit-box"' in redrawn
    assert 'id="reply-sent-note"' not in redrawn
    assert re.search(
        r'<button id="step-submit" class="primary" type="submit" name="step" value="take_offline">',
        redrawn,
    )
