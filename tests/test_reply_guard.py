"""The reply guard: each flag on the labelled set (precision and recall), and its enforcement
in ``ticket_take_step`` and the composer (agent vs manager)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import EventKind, Message, OutboxItem, Sentiment, Status, Step, Ticket
from tickets.reply_guard import FLAG_CODES, check_reply, measure
from tickets.services import ticket_take_step
from tickets.services.steps import GuardRefused

DATA = Path(__file__).parent / "data" / "reply_guard_replies.tsv"
PUBLIC_STEPS = {Step.ACKNOWLEDGE, Step.CLOSE_OUT}


def load() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def flags_for(row: dict[str, str]) -> set[str]:
    kind = "public_reply" if row["step"] in PUBLIC_STEPS else "private_message"
    found = check_reply(
        row["text"],
        platform="x",
        kind=kind,
        ticket_negative=row["sentiment"] == "negative",
        step=row["step"],
    )
    return {flag.code for flag in found}


def scores(rows: list[dict[str, str]]) -> dict[str, tuple[float, float, int]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for row in rows:
        expected = set() if row["flags"] == "-" else set(row["flags"].split(","))
        got = flags_for(row)
        for code in FLAG_CODES:
            tp[code] += code in got and code in expected
            fp[code] += code in got and code not in expected
            fn[code] += code not in got and code in expected
    out = {}
    for code in FLAG_CODES:
        precision = tp[code] / (tp[code] + fp[code]) if tp[code] + fp[code] else 1.0
        recall = tp[code] / (tp[code] + fn[code]) if tp[code] + fn[code] else 1.0
        out[code] = (precision, recall, tp[code] + fn[code])
    return out


def test_the_set_has_good_and_bad_replies_for_every_flag() -> None:
    rows = load()
    assert len(rows) >= 150
    # The same reply may appear in two situations (a stock phrase to a complaint and to praise).
    assert len({(row["sentiment"], row["step"], row["text"]) for row in rows}) == len(rows)
    expected = Counter(
        code for row in rows if row["flags"] != "-" for code in row["flags"].split(",")
    )
    assert set(expected) == set(FLAG_CODES) and min(expected.values()) >= 5, expected
    assert sum(row["flags"] == "-" for row in rows) >= 60  # good replies, to catch false flags


def test_precision_and_recall_per_flag() -> None:
    rows = load()
    for name, subset in (
        ("holdout", [r for r in rows if r["split"] == "holdout"]),
        ("dev + holdout", [r for r in rows if r["split"] != "late"]),
        ("late (written after the rules, to fool them)", [r for r in rows if r["split"] == "late"]),
    ):
        figures = scores(subset)
        print(f"\nreply guard, {name}: {len(subset)} replies")
        for code, (precision, recall, n) in figures.items():
            print(f"  {code:15} precision {precision:.2f}  recall {recall:.2f}  ({n} expected)")
            if not name.startswith("late"):
                assert precision >= 0.9 and recall >= 0.9, (name, code, precision, recall)
    # The late rows show where the rules are weak (docs/quality.md); they still catch most.
    late = scores([r for r in rows if r["split"] == "late"])
    assert late["delete_request"][:2] == (1.0, 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "Sorry! Could you delete the app and reinstall it? That clears the cache.",
        "So sorry, we've removed the charge from your account.",
        "Sorry about that, please remove the battery for 10 seconds and try again.",
    ],
)
def test_troubleshooting_is_no_delete_request(text: str) -> None:
    flags = check_reply(
        text, platform="x", kind="public_reply", ticket_negative=True, step="acknowledge"
    )
    assert [f.code for f in flags] == []


def test_x_weighted_count_and_the_uncounted_leading_mention() -> None:
    assert measure("@dana " + "a" * 280, platform="x", kind="public_reply") == (
        280,
        280,
        "weighted characters",
    )
    assert measure("😀" * 10, platform="x", kind="public_reply")[0] == 20  # emoji weigh 2
    assert (
        measure("see https://example.com/a/very/long/path", platform="x", kind="public_reply")[0]
        == 27
    )
    assert measure("a" * 300, platform="x", kind="private_message") == (300, 10_000, "characters")
    flags = check_reply(
        "ab " * 100, platform="x", kind="public_reply", ticket_negative=False, step="close_out"
    )
    assert flags[0].code == "too_long" and "299 characters by X's count" in flags[0].why


@pytest.fixture
def angry_ticket(agent: Persona) -> Ticket:
    ticket = TicketFactory(
        social_account__brand__organization=agent.organization, sentiment=Sentiment.NEGATIVE
    )
    InboundMessageFactory(ticket=ticket, text="Lost my parcel AGAIN @BrandCare")
    return ticket


DELETE_ASK = "So sorry! Could you delete this tweet while we sort it in DM?"


def _nothing_queued(ticket: Ticket) -> None:
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert not Message.objects.filter(ticket=ticket, direction="out").exists()
    assert not OutboxItem.objects.filter(message__ticket=ticket).exists()


def test_a_delete_request_blocks_an_agent_even_with_override(
    angry_ticket: Ticket, agent: Persona
) -> None:
    for override in (False, True):
        with pytest.raises(GuardRefused) as refused:
            ticket_take_step(
                ticket=angry_ticket,
                step=Step.ACKNOWLEDGE,
                by=agent.user,
                text=DELETE_ASK,
                override_guard=override,
            )
        assert [f.code for f in refused.value.flags] == ["delete_request"]
        assert "delete their post" in str(refused.value)
    _nothing_queued(angry_ticket)


def test_a_manager_overrides_a_delete_request_and_it_is_recorded(
    angry_ticket: Ticket, manager: Persona
) -> None:
    message = ticket_take_step(
        ticket=angry_ticket,
        step=Step.ACKNOWLEDGE,
        by=manager.user,
        text=DELETE_ASK,
        override_guard=True,
    )
    assert isinstance(message, Message) and message.outbox.state == "queued"
    event = angry_ticket.events.get(kind=EventKind.GUARD_OVERRIDDEN)
    assert event.actor == manager.user and event.message == message
    assert [f["code"] for f in event.data["flags"]] == ["delete_request"]


def test_warnings_wait_for_confirmation_then_are_recorded(
    angry_ticket: Ticket, agent: Persona
) -> None:
    text = "You should have checked the tracking page."
    with pytest.raises(GuardRefused) as refused:
        ticket_take_step(
            ticket=angry_ticket,
            step=Step.ACKNOWLEDGE,
            by=agent.user,
            text=text,
            confirm_warnings=False,
        )
    assert refused.value.needs_confirmation
    assert {f.code for f in refused.value.flags} == {"defensive", "no_apology"}
    _nothing_queued(angry_ticket)
    message = ticket_take_step(
        ticket=angry_ticket, step=Step.ACKNOWLEDGE, by=agent.user, text=text, confirm_warnings=True
    )
    event = angry_ticket.events.get(kind=EventKind.GUARD_WARNINGS_SENT)
    assert event.message == message and event.actor == agent.user
    assert {f["code"] for f in event.data["flags"]} == {"defensive", "no_apology"}


def test_composer_shows_each_flag_and_the_agent_cannot_override(
    angry_ticket: Ticket, agent: Persona
) -> None:
    url = reverse("tickets:reply", args=[angry_ticket.pk, Step.ACKNOWLEDGE])
    response = agent.client().post(url, {"text": DELETE_ASK, "override_guard": "1"})
    assert response.status_code == 422
    body = response.content.decode()
    assert "Asks the customer to delete their post" in body
    assert "Only a manager can override this" in body
    assert DELETE_ASK.replace("'", "&#x27;") in body  # the draft is kept
    _nothing_queued(angry_ticket)


def test_composer_warning_then_send_anyway(angry_ticket: Ticket, agent: Persona) -> None:
    url = reverse("tickets:reply", args=[angry_ticket.pk, Step.ACKNOWLEDGE])
    client = agent.client()
    first = client.post(url, {"text": "Please DM us your order number."})
    assert first.status_code == 422
    assert (
        "says no sorry" in first.content.decode()
        and 'name="confirm_warnings"' in first.content.decode()
    )
    second = client.post(url, {"text": "Please DM us your order number.", "confirm_warnings": "1"})
    assert second.status_code == 302
    angry_ticket.refresh_from_db()
    assert angry_ticket.status == Status.ACKNOWLEDGED


def test_manager_override_through_the_composer(angry_ticket: Ticket, manager: Persona) -> None:
    url = reverse("tickets:reply", args=[angry_ticket.pk, Step.ACKNOWLEDGE])
    client = manager.client()
    refused = client.post(url, {"text": DELETE_ASK})
    assert refused.status_code == 422 and 'name="override_guard"' in refused.content.decode()
    assert client.post(url, {"text": DELETE_ASK, "override_guard": "1"}).status_code == 302
    assert angry_ticket.events.filter(kind=EventKind.GUARD_OVERRIDDEN, actor=manager.user).exists()


def test_live_check_counts_and_flags(
    angry_ticket: Ticket, agent: Persona, outsider: Persona
) -> None:
    url = reverse("tickets:reply-check", args=[angry_ticket.pk, Step.ACKNOWLEDGE])
    response = agent.client().post(url, {"text": "Calm down 😀"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "12 / 280 weighted characters" in body
    assert "Sounds defensive" in body and "says no sorry" in body
    assert outsider.client().post(url, {"text": "x"}).status_code == 404


def test_facebook_limits_are_the_adapters() -> None:
    assert measure("hello", platform="facebook", kind="public_reply") == (5, 8_000, "characters")
    assert measure("hi", platform="facebook", kind="private_reply")[1] == 2_000
    flags = check_reply(
        "x" * 2_001,
        platform="facebook",
        kind="private_message",
        ticket_negative=False,
        step="resolve",
    )
    assert [f.code for f in flags] == ["too_long"] and "2,000" in flags[0].why
