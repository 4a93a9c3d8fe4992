"""Customer data protection (issue 12): export everything held about one customer (page, API,
``manage.py export_customer``) and erase it on request (page, API, ``manage.py erase_customer``).

Erasure: afterwards nothing that identified them (handle, name, their texts, contact details,
platform ids) is on any page, in the API, in search or in an export, while every count stays
(tickets, messages, SLA timers, the dashboard). Managers and admins only; both audited."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from careinbox.accounts.models import AuditEntry
from channels_social.models import QuarantinedPost, SocialAccount
from monitoring.models import SlaTimer
from tests.conftest import Persona
from tests.test_api import api
from tests.test_threading import START, post
from tickets.models import (
    Customer,
    CustomerIdentity,
    Direction,
    Message,
    MessageKind,
    OutboxItem,
    OutboxState,
    Ticket,
    TicketEvent,
)
from tickets.services import ingest_posts
from tickets.services.customers import customer_add_note, customer_update_contact
from tickets.services.privacy import ERASED_TEXT, customer_erase, erased_id
from tickets.services.teamwork import note_add

pytestmark = pytest.mark.django_db

SECRET_BITS = [
    "dana",  # the handle (and the name, "Dana")
    "blender exploded",  # their post
    "still no refund",
    "dana@example.com",
    "+44 7700 900123",
    "ORD-99812",
    "prefers phone calls",
    "2001",  # their X user id
]


@pytest.fixture
def x_account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


@pytest.fixture
def dana(x_account: SocialAccount, agent: Persona) -> Customer:
    """Dana on X: two tickets, a follow-up, a brand reply naming her, notes, contact details,
    and an item of hers in quarantine; plus Sam, another customer, who must stay untouched."""
    first = post("@AcmeCare my blender exploded, order ORD-99812", at=START)
    ingest_posts(x_account, [first])
    ingest_posts(
        x_account,
        [
            post("@AcmeCare still no refund for the blender", at=START + timedelta(days=9)),
            post("@AcmeCare my kettle leaks", author="3003", username="sam", at=START),
        ],
    )
    ticket = Ticket.objects.get(root_message__external_id=first.external_id)
    reply = Message.objects.create(
        organization=ticket.organization,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.REPLY,
        direction=Direction.OUTBOUND,
        external_id="9990001",
        in_reply_to_external_id=first.external_id,
        text="Hi @dana, sorry about that Dana, we are on it",
        created_at=START + timedelta(minutes=5),
    )
    OutboxItem.objects.create(
        organization=ticket.organization, message=reply, state=OutboxState.SENT, sent_at=START
    )
    note_add(ticket=ticket, by=agent.user, body="dana sounded upset; call back")
    customer = CustomerIdentity.objects.get(external_id="2001").customer
    customer_update_contact(
        customer=customer,
        by=agent.user,
        email="dana@example.com",
        phone="+44 7700 900123",
        order_number="ORD-99812",
    )
    customer_add_note(customer=customer, by=agent.user, text="prefers phone calls")
    QuarantinedPost.objects.create(
        organization=ticket.organization,
        account=x_account,
        stream="mentions",
        external_id="555",
        error="unreadable",
        payload=json.dumps({"id": "555", "author_id": "2001", "text": "dana again"}),
    )
    return customer


def _counts() -> dict[str, int]:
    return {
        "tickets": Ticket.objects.count(),
        "messages": Message.objects.count(),
        "inbound": Message.objects.filter(direction=Direction.INBOUND).count(),
        "events": TicketEvent.objects.count(),
        "sla_timers": SlaTimer.objects.count(),
        "followers": sum(Ticket.objects.values_list("customer_followers", flat=True)),
    }


def _leaks(text: str) -> list[str]:
    lowered = text.lower()
    return [bit for bit in SECRET_BITS if bit.lower() in lowered]


# Export -----------------------------------------------------------------------------------------


def test_a_manager_downloads_everything_held_about_the_customer(
    dana: Customer, manager: Persona
) -> None:
    response = manager.client().get(reverse("tickets:customer-export", args=[dana.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="customer-{dana.pk}.json"'
    data = json.loads(response.content)
    assert data["customer"]["email"] == "dana@example.com"
    assert data["customer"]["order_number"] == "ORD-99812"
    assert [i["username"] for i in data["identities"]] == ["dana"]
    assert data["identities"][0]["platform_id"] == "2001"
    assert [n["text"] for n in data["notes"]] == ["prefers phone calls"]
    assert len(data["tickets"]) == 2
    texts = [m["text"] for t in data["tickets"] for m in t["messages"]]
    assert "@AcmeCare my blender exploded, order ORD-99812" in texts
    assert "Hi @dana, sorry about that Dana, we are on it" in texts  # the brand's reply to her
    assert "@AcmeCare my kettle leaks" not in texts  # Sam's
    notes = [n["text"] for t in data["tickets"] for n in t["internal_notes"]]
    assert notes == ["dana sounded upset; call back"]
    assert any(e["kind"] == "contact_updated" for e in data["history"])
    entry = AuditEntry.objects.get(action="exported")
    assert entry.actor == manager.user and entry.object_id == str(dana.pk)
    assert _leaks(json.dumps([entry.before, entry.after, entry.object_repr])) == []


def test_export_and_erase_are_for_managers_and_admins_only(
    dana: Customer, agent: Persona, outsider: Persona
) -> None:
    for persona in (agent, outsider):
        client = persona.client()
        assert client.get(reverse("tickets:customer-export", args=[dana.pk])).status_code == 404
        erase = client.post(reverse("tickets:customer-erase", args=[dana.pk]), {"confirm": "ERASE"})
        assert erase.status_code == 404
    assert api(agent).get(f"/api/v1/customers/{dana.pk}/export/").status_code == 403
    assert api(agent).post(f"/api/v1/customers/{dana.pk}/erase/").status_code == 403
    assert api(outsider).get(f"/api/v1/customers/{dana.pk}/export/").status_code == 403
    page = agent.client().get(reverse("tickets:customer", args=[dana.pk])).content.decode()
    assert "Erase their personal data" not in page and "Export everything" not in page
    assert Customer.objects.get(pk=dana.pk).erased_at is None
    assert not AuditEntry.objects.filter(action__in=["exported", "erased"]).exists()


def test_the_api_and_the_command_export_the_same_data(
    dana: Customer, org_admin: Persona, tmp_path: Path
) -> None:
    response = api(org_admin).get(f"/api/v1/customers/{dana.pk}/export/")
    assert response.status_code == 200
    from_api = response.json()
    target = tmp_path / "dana.json"
    call_command("export_customer", str(dana.pk), org=dana.organization.slug, output=target)
    from_command = json.loads(target.read_text())
    for data in (from_api, from_command):
        data.pop("exported_at")
    assert from_api == from_command
    assert from_api["customer"]["phone"] == "+44 7700 900123"
    assert AuditEntry.objects.filter(action="exported").count() == 2
    with pytest.raises(CommandError, match="no customer 999999"):
        call_command("export_customer", "999999", org=dana.organization.slug)


# Erasure ----------------------------------------------------------------------------------------


def test_erasure_needs_the_confirmation_word_and_changes_nothing_without_it(
    dana: Customer, manager: Persona
) -> None:
    response = manager.client().post(
        reverse("tickets:customer-erase", args=[dana.pk]), {"confirm": "yes"}
    )
    assert response.status_code == 422
    assert "Type ERASE to confirm" in response.content.decode()
    assert Customer.objects.get(pk=dana.pk).email == "dana@example.com"
    assert CustomerIdentity.objects.get(customer=dana).username == "dana"


def test_erased_data_is_gone_from_pages_api_search_and_export_and_counts_stay(
    dana: Customer, manager: Persona, org_admin: Persona, agent: Persona
) -> None:
    before = _counts()
    sam_before = list(Message.objects.filter(author_username="sam").values_list("text", flat=True))
    client = manager.client()
    dashboard_before = client.get(reverse("monitoring:dashboard")).status_code

    response = client.post(reverse("tickets:customer-erase", args=[dana.pk]), {"confirm": "ERASE"})
    assert response.status_code == 302

    assert _counts() == before  # tickets, messages, events, timers, reach: all still counted
    assert client.get(reverse("monitoring:dashboard")).status_code == dashboard_before == 200
    customer = Customer.objects.get(pk=dana.pk)
    assert customer.erased_at is not None and str(customer) == f"Erased customer {dana.pk}"
    tickets = list(Ticket.objects.filter(customer=customer))
    assert len(tickets) == 2

    pages = [
        reverse("tickets:inbox"),
        reverse("tickets:inbox") + "?view=all",
        reverse("tickets:customer", args=[dana.pk]),
        *[reverse("tickets:detail", args=[t.pk]) for t in tickets],
    ]
    for url in pages:
        html = agent.client().get(url).content.decode()
        assert _leaks(html) == [], url
    for query in ("dana", "blender", "refund", "ord-99812"):
        found = agent.client().get(reverse("tickets:inbox"), {"q": query, "view": "all"})
        # The search box shows the query itself; nothing else of hers may come back.
        assert [bit for bit in _leaks(found.content.decode()) if bit.lower() != query] == []
        assert not any(f'href="/tickets/{t.pk}/"' in found.content.decode() for t in tickets)
    rest = api(agent)
    for ticket in tickets:
        for path in ("", "messages/", "events/"):
            body = rest.get(f"/api/v1/tickets/{ticket.pk}/{path}").content.decode()
            assert _leaks(body) == [], path
    exported = api(org_admin).get(f"/api/v1/customers/{dana.pk}/export/").content.decode()
    assert _leaks(exported) == []
    assert ERASED_TEXT in exported

    # Identities keep a stable hash, not the id: threads keep their shape.
    identity = CustomerIdentity.objects.get(customer=customer)
    assert identity.external_id == erased_id(customer.organization_id, "x", "2001")
    assert not QuarantinedPost.objects.exists()  # her unreadable post held in quarantine
    # Sam, another customer, is untouched.
    assert (
        list(Message.objects.filter(author_username="sam").values_list("text", flat=True))
        == sam_before
    )

    entry = AuditEntry.objects.get(action="erased")
    assert entry.actor == manager.user and entry.object_repr == f"Customer {dana.pk}"
    assert entry.after["tickets"] == 2 and entry.after["messages_erased"] == 2
    assert _leaks(json.dumps([entry.before, entry.after])) == []


def test_erasing_twice_is_refused_and_the_api_and_command_erase_too(
    dana: Customer, x_account: SocialAccount, manager: Persona
) -> None:
    response = api(manager).post(f"/api/v1/customers/{dana.pk}/erase/")
    assert response.status_code == 200 and response.json()["erased"]["identities"] == 1
    again = api(manager).post(f"/api/v1/customers/{dana.pk}/erase/")
    assert again.status_code == 409 and again.json()["code"] == "already_erased"

    ingest_posts(x_account, [post("@AcmeCare hello again", author="3003", username="sam")])
    sam = CustomerIdentity.objects.get(external_id="3003").customer
    with pytest.raises(CommandError, match="--yes"):
        call_command("erase_customer", str(sam.pk), org=sam.organization.slug)
    assert Customer.objects.get(pk=sam.pk).erased_at is None
    call_command("erase_customer", str(sam.pk), org=sam.organization.slug, yes=True)
    assert Customer.objects.get(pk=sam.pk).erased_at is not None
    assert not Message.objects.filter(text__icontains="kettle").exists()
    assert AuditEntry.objects.filter(action="erased").count() == 2


def test_a_new_post_after_erasure_starts_a_new_customer(
    dana: Customer, x_account: SocialAccount, manager: Persona
) -> None:
    """Erasure is not a block: if they write again, that is new data, a new customer."""
    customer_erase(customer=dana, by=manager.user)
    ingest_posts(x_account, [post("@AcmeCare it is me again", at=START + timedelta(days=20))])
    fresh = CustomerIdentity.objects.get(external_id="2001").customer
    assert fresh.pk != dana.pk and fresh.erased_at is None
