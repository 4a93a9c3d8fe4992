"""Canned responses: placeholders filled per customer, variants so no two customers get the
same bytes, inserted from the composer, managed in the settings (audited)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from careinbox.accounts.models import AuditEntry
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.canned import render_for, split_variants
from tickets.models import CannedResponse, Direction, Message, Ticket

THANKS = [
    "Thanks {name}! We'll pass that on to the team.",
    "That's lovely to hear, {name}, thank you!",
]


@pytest.fixture
def ticket(agent: Persona) -> Ticket:
    ticket = TicketFactory(
        social_account__brand__organization=agent.organization,
        social_account__external_id="1000",
        customer_username="dana_k",
        customer_display_name="Dana Kowalski",
    )
    InboundMessageFactory(ticket=ticket)
    return ticket


def _canned(org, variants: list[str], title: str = "Thanks") -> CannedResponse:  # type: ignore[no-untyped-def]
    return CannedResponse.objects.create(organization=org, title=title, variants=variants)


def _sent(ticket: Ticket, text: str) -> None:
    Message.objects.create(
        organization=ticket.organization,
        ticket=ticket,
        platform=ticket.platform,
        kind="reply",
        direction=Direction.OUTBOUND,
        text=text,
        created_at=ticket.opened_at,
    )


def test_placeholders_are_filled_for_the_customer(ticket: Ticket, agent: Persona) -> None:
    agent.user.first_name = "Alice"
    response = _canned(
        ticket.organization, ["Hi {name} ({handle}), {agent} here: {dm_link} · {brand}"]
    )
    text = render_for(response, ticket, agent.user).text
    assert text == (
        "Hi Dana (@dana_k), Alice here: "
        f"https://twitter.com/messages/compose?recipient_id=1000 · {ticket.brand}"
    )


def test_variants_rotate_and_skip_what_a_customer_already_had(ticket: Ticket) -> None:
    response = _canned(ticket.organization, THANKS)
    first = render_for(response, ticket, None)
    response.refresh_from_db()
    second = render_for(response, ticket, None)
    assert {first.variant, second.variant} == {0, 1}
    # Variant 0 went out already (to this name): the next pick skips it even in its turn.
    _sent(ticket, "Thanks Dana! We'll pass that on to the team.")
    response.refresh_from_db()
    response.uses = 0
    response.save()
    assert render_for(response, ticket, None).text == "That's lovely to hear, Dana, thank you!"


def test_when_every_variant_went_out_the_ticket_reference_keeps_it_unique(ticket: Ticket) -> None:
    response = _canned(ticket.organization, ["We're on it!"])
    _sent(ticket, "We're on it!")
    rendered = render_for(response, ticket, None)
    assert rendered.disambiguated and rendered.text == f"We're on it! (ref {ticket.pk})"


def test_variants_are_split_on_a_line_of_dashes() -> None:
    assert split_variants("One\r\n---\r\nTwo\n  ----  \nThree\n") == ["One", "Two", "Three"]


def test_composer_inserts_a_rendered_variant(
    ticket: Ticket, agent: Persona, outsider: Persona
) -> None:
    response = _canned(ticket.organization, THANKS)
    url = reverse("tickets:canned-insert", args=[ticket.pk]) + f"?canned={response.pk}"
    htmx = agent.client().get(url, headers={"HX-Request": "true"})
    assert htmx.status_code == 200
    body = htmx.content.decode()
    assert body.strip().startswith('<textarea id="step-text"') and "Dana" in body
    page = agent.client().get(url)  # without JavaScript: the ticket page with it as the draft
    assert page.status_code == 200 and "Dana" in page.content.decode()
    assert outsider.client().get(url).status_code == 404
    other = _canned(TicketFactory().organization, THANKS, title="Theirs")
    foreign = reverse("tickets:canned-insert", args=[ticket.pk]) + f"?canned={other.pk}"
    assert agent.client().get(foreign).status_code == 404


def test_ticket_page_offers_the_steps_canned_responses(ticket: Ticket, agent: Persona) -> None:
    _canned(ticket.organization, THANKS, title="Say thanks")
    CannedResponse.objects.create(
        organization=ticket.organization, title="Resolve only", step="resolve", variants=["Done."]
    )
    body = agent.client().get(reverse("tickets:detail", args=[ticket.pk])).content.decode()
    assert "Say thanks" in body and "Resolve only" not in body


def test_settings_create_edit_delete_are_audited(manager: Persona, org) -> None:  # type: ignore[no-untyped-def]
    client = manager.client()
    url = reverse("tickets:canned-list")
    created = client.post(
        url,
        {"title": "Sorry", "step": "", "variants_text": "Sorry {name}!\n---\nSo sorry, {name}."},
    )
    assert created.status_code == 302
    response = CannedResponse.objects.get(organization=org)
    assert response.variants == ["Sorry {name}!", "So sorry, {name}."]
    edit = reverse("tickets:canned-edit", args=[response.pk])
    assert (
        client.post(
            edit, {"title": "Sorry", "step": "acknowledge", "variants_text": "Sorry {name}!"}
        ).status_code
        == 302
    )
    assert client.post(edit, {"delete": "1"}).status_code == 302
    assert not CannedResponse.objects.exists()
    entries = list(AuditEntry.objects.filter(organization=org).order_by("pk"))
    assert [e.action for e in entries] == ["created", "updated", "deleted"]
    assert entries[1].before == {"step": "", "variants": ["Sorry {name}!", "So sorry, {name}."]}
    assert entries[1].after == {"step": "acknowledge", "variants": ["Sorry {name}!"]}
    assert all(e.actor == manager.user for e in entries)


def test_settings_refuse_unknown_placeholders_and_twin_variants(manager: Persona) -> None:
    url = reverse("tickets:canned-list")
    bad = manager.client().post(url, {"title": "X", "variants_text": "Hi {firstname}"})
    assert bad.status_code == 422 and "{firstname}" in bad.content.decode()
    twins = manager.client().post(url, {"title": "X", "variants_text": "Hi\n---\nHi"})
    assert twins.status_code == 422 and "Two variants are the same" in twins.content.decode()
    assert not CannedResponse.objects.exists() and not AuditEntry.objects.exists()


def test_settings_are_for_managers_of_the_organisation(
    agent: Persona, outsider: Persona, manager: Persona
) -> None:
    response = _canned(manager.organization, THANKS)
    assert agent.client().get(reverse("tickets:canned-list")).status_code == 404
    edit = reverse("tickets:canned-edit", args=[response.pk])
    assert outsider.client().get(edit).status_code == 404
    assert manager.client().get(edit).status_code == 200
