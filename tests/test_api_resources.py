"""The REST API's customers, ticket notes, escalation rules and outbound webhooks: scoped to
the caller's organisation (another's object is a 404), roles enforced, changes through the
same services and forms as the web pages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from careinbox.accounts.models import Membership
from careinbox.api.models import ApiToken
from careinbox.audit import AuditEntry
from careinbox.notifications.models import Notification
from monitoring.models import EscalationRule
from monitoring.webhooks.models import WebhookDelivery, WebhookEndpoint
from monitoring.webhooks.services import delivery_attempt
from monitoring.webhooks.signing import verify
from tests.conftest import Persona
from tests.factories import TicketFactory
from tests.webhook_receiver import Receiver
from tickets.customer_models import Customer, CustomerEvent, CustomerIdentity
from tickets.models import EventKind, Note

pytestmark = pytest.mark.django_db


def api(persona: Persona) -> APIClient:
    membership = Membership.objects.get(user=persona.user, organization=persona.organization)
    _, secret = ApiToken.issue(membership, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _customer(persona: Persona, name: str = "Dana Price", handle: str = "dana") -> Customer:
    customer = Customer.objects.create(organization=persona.organization, display_name=name)
    CustomerIdentity.objects.create(
        organization=persona.organization,
        customer=customer,
        platform="x",
        external_id=f"{handle}-1",
        username=handle,
    )
    return customer


# --- Customers -------------------------------------------------------------------------------


def test_customers_are_listed_searched_and_shown_with_identities_and_tickets(
    agent: Persona, outsider: Persona
) -> None:
    dana = _customer(agent, "Dana Price", "dana")
    _customer(agent, "Sam Lee", "samlee")
    theirs = _customer(outsider, "Dana Globex", "dana_g")
    ticket = TicketFactory(social_account__brand__organization=agent.organization, customer=dana)
    client = api(agent)

    listed = client.get("/api/v1/customers/").json()
    assert listed["count"] == 2
    found = client.get("/api/v1/customers/", {"search": "dana"}).json()["results"]
    assert [c["id"] for c in found] == [dana.pk]
    by_handle = client.get("/api/v1/customers/", {"search": "samle"}).json()["results"]
    assert [c["display_name"] for c in by_handle] == ["Sam Lee"]

    shown = client.get(f"/api/v1/customers/{dana.pk}/").json()
    assert [i["username"] for i in shown["identities"]] == ["dana"]
    tickets = client.get(f"/api/v1/customers/{dana.pk}/tickets/").json()
    assert [t["id"] for t in tickets["results"]] == [ticket.pk]

    assert client.get(f"/api/v1/customers/{theirs.pk}/").status_code == 404
    assert client.get(f"/api/v1/customers/{theirs.pk}/tickets/").status_code == 404
    assert client.patch(f"/api/v1/customers/{theirs.pk}/", {"phone": "1"}).status_code == 404


def test_contact_details_change_through_the_profiles_service(agent: Persona) -> None:
    dana = _customer(agent)
    client = api(agent)
    response = client.patch(
        f"/api/v1/customers/{dana.pk}/", {"email": "dana@example.com", "order_number": "A-1"}
    )
    assert response.status_code == 200, response.json()
    dana.refresh_from_db()
    assert (dana.email, dana.order_number, dana.phone) == ("dana@example.com", "A-1", "")
    event = CustomerEvent.objects.get(customer=dana)
    assert event.actor == agent.user and event.data["after"]["email"] == "dana@example.com"
    # Only what is sent changes.
    client.patch(f"/api/v1/customers/{dana.pk}/", {"phone": "+44 20 7946 0000"}, format="json")
    dana.refresh_from_db()
    assert (dana.email, dana.phone) == ("dana@example.com", "+44 20 7946 0000")
    bad = client.patch(f"/api/v1/customers/{dana.pk}/", {"email": "not-an-address"})
    assert bad.status_code == 400 and "email" in bad.json()["fields"]
    dana.refresh_from_db()
    assert dana.email == "dana@example.com"  # nothing lost


# --- Notes -----------------------------------------------------------------------------------


def test_notes_are_added_with_mentions_through_the_ticket_pages_service(
    agent: Persona, manager: Persona, outsider: Persona
) -> None:
    ticket = TicketFactory(social_account__brand__organization=agent.organization)
    client = api(agent)
    response = client.post(
        f"/api/v1/tickets/{ticket.pk}/notes/",
        {"body": "@mark can you approve a refund?"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["mentions"] == ["mark"]
    assert response.json()["author"] == "alice"
    note = Note.objects.get(ticket=ticket)
    assert ticket.events.filter(kind=EventKind.NOTE_ADDED).count() == 1
    assert Notification.objects.filter(recipient=manager.user, kind="mention").count() == 1
    listed = client.get(f"/api/v1/tickets/{ticket.pk}/notes/").json()
    assert [n["id"] for n in listed["results"]] == [note.pk]
    empty = client.post(f"/api/v1/tickets/{ticket.pk}/notes/", {"body": "   "}, format="json")
    assert empty.status_code == 400
    assert Note.objects.count() == 1
    other = api(outsider)
    assert other.get(f"/api/v1/tickets/{ticket.pk}/notes/").status_code == 404
    assert (
        other.post(f"/api/v1/tickets/{ticket.pk}/notes/", {"body": "hi"}, format="json").status_code
        == 404
    )


# --- Escalation rules ------------------------------------------------------------------------

RULE = {
    "name": "Big accounts at risk",
    "conditions": [
        {"kind": "sla", "metric": "first_response", "state": "warning"},
        {"kind": "followers", "at_least": 10000},
    ],
    "levels": [
        {"after_minutes": 0, "actions": {"notify_roles": ["manager"]}},
        {"after_minutes": 15, "actions": {"raise_priority": 1, "add_tag": "VIP Risk"}},
    ],
}


def test_escalation_rules_are_admin_crud_validated_like_the_settings_page(
    org_admin: Persona, manager: Persona, outsider: Persona
) -> None:
    client = api(org_admin)
    response = client.post("/api/v1/escalation-rules/", RULE, format="json")
    assert response.status_code == 201, response.json()
    rule = EscalationRule.objects.get(organization=org_admin.organization)
    assert rule.conditions == RULE["conditions"]
    # The form's own normalising: the tag as the page stores it.
    assert rule.levels[1]["actions"] == {"raise_priority": 1, "add_tag": "vip risk"}
    assert AuditEntry.objects.filter(object_type="escalation rule", action="created").exists()
    assert "First response SLA" in response.json()["conditions_described"][0]

    changed = client.patch(
        f"/api/v1/escalation-rules/{rule.pk}/", {"enabled": False}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    rule.refresh_from_db()
    assert rule.enabled is False and rule.conditions == RULE["conditions"]

    # The page's messages, at the API.
    later = {**RULE, "name": "Other", "levels": [RULE["levels"][1], RULE["levels"][0]]}
    refused = client.post("/api/v1/escalation-rules/", later, format="json")
    assert refused.status_code == 400
    assert "must come later than level 1" in json.dumps(refused.json())
    none = client.post(
        "/api/v1/escalation-rules/", {**RULE, "name": "None", "conditions": []}, format="json"
    )
    assert none.status_code == 400 and "at least one condition" in json.dumps(none.json())
    unknown = client.post(
        "/api/v1/escalation-rules/",
        {**RULE, "name": "X", "conditions": [{"kind": "moon_phase"}]},
        format="json",
    )
    assert unknown.status_code == 400 and "no condition kind" in json.dumps(unknown.json())
    same_name = client.post("/api/v1/escalation-rules/", RULE, format="json")
    assert same_name.status_code == 409 and "Another rule has this name" in json.dumps(
        same_name.json()
    )
    assert EscalationRule.objects.count() == 1

    assert api(manager).get("/api/v1/escalation-rules/").status_code == 403
    assert api(manager).post("/api/v1/escalation-rules/", RULE, format="json").status_code == 403
    stranger = api(outsider)
    Membership.objects.filter(user=outsider.user).update(role="admin")
    assert stranger.get(f"/api/v1/escalation-rules/{rule.pk}/").status_code == 404
    assert stranger.delete(f"/api/v1/escalation-rules/{rule.pk}/").status_code == 404

    assert client.delete(f"/api/v1/escalation-rules/{rule.pk}/").status_code == 204
    assert not EscalationRule.objects.exists()
    assert AuditEntry.objects.filter(object_type="escalation rule", action="deleted").exists()


# --- Webhooks --------------------------------------------------------------------------------


def test_webhook_endpoints_and_deliveries_through_the_api(
    org_admin: Persona, agent: Persona, outsider: Persona, receiver: Receiver, settings: Any
) -> None:
    client = api(org_admin)
    created = client.post(
        "/api/v1/webhooks/",
        {"name": "CRM", "url": receiver.url, "events": ["ticket.created", "ticket.closed"]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    secret = body["signing_secret"]
    assert secret.startswith("whsec_") and body["secret"] == f"whsec_…{secret[-4:]}"
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    shown = client.get(f"/api/v1/webhooks/{endpoint.pk}/").json()
    assert "signing_secret" not in shown and secret not in json.dumps(shown)

    ping = client.post(f"/api/v1/webhooks/{endpoint.pk}/ping/")
    assert ping.status_code == 202
    delivery_attempt(delivery_id=ping.json()["id"])
    (request,) = receiver.received
    assert verify(
        secret,
        body=request.body,
        timestamp=request.headers["X-CareInbox-Timestamp"],
        header=request.headers["X-CareInbox-Signature"],
    )
    log = client.get("/api/v1/webhook-deliveries/", {"endpoint": endpoint.pk}).json()
    (entry,) = log["results"]
    assert entry["state"] == "succeeded" and entry["attempt_log"][0]["status_code"] == 200
    again = client.post(f"/api/v1/webhook-deliveries/{entry['id']}/redeliver/")
    assert again.status_code == 202 and again.json()["event_id"] == entry["event_id"]
    busy = client.post(f"/api/v1/webhook-deliveries/{entry['id']}/redeliver/")
    assert busy.status_code == 409

    rotated = client.post(f"/api/v1/webhooks/{endpoint.pk}/rotate-secret/").json()
    assert rotated["signing_secret"] != secret
    patched = client.patch(
        f"/api/v1/webhooks/{endpoint.pk}/",
        {"enabled": False, "events": ["sla.breached"]},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.events, endpoint.name) == (False, ["sla.breached"], "CRM")

    # The form's checks: the address, the events, the name.
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    private = client.post(
        "/api/v1/webhooks/",
        {"name": "Internal", "url": "http://localhost/hooks", "events": ["ticket.created"]},
        format="json",
    )
    assert private.status_code == 400 and "public addresses only" in json.dumps(private.json())
    taken = client.post(
        "/api/v1/webhooks/",
        {"name": "crm", "url": "https://example.com/hooks", "events": ["ticket.created"]},
        format="json",
    )
    assert taken.status_code == 409 and "Another endpoint has this name" in taken.json()["detail"]
    bad_event = client.post(
        "/api/v1/webhooks/",
        {"name": "X", "url": "https://example.com/", "events": ["ticket.exploded"]},
        format="json",
    )
    assert bad_event.status_code == 400
    assert WebhookEndpoint.objects.count() == 1

    # Admins only; another organisation's endpoint and deliveries do not exist.
    assert api(agent).get("/api/v1/webhooks/").status_code == 403
    Membership.objects.filter(user=outsider.user).update(role="admin")
    stranger = api(outsider)
    assert stranger.get(f"/api/v1/webhooks/{endpoint.pk}/").status_code == 404
    assert stranger.post(f"/api/v1/webhooks/{endpoint.pk}/ping/").status_code == 404
    assert stranger.get(f"/api/v1/webhook-deliveries/{entry['id']}/").status_code == 404
    assert stranger.get("/api/v1/webhook-deliveries/").json()["count"] == 0

    assert client.delete(f"/api/v1/webhooks/{endpoint.pk}/").status_code == 204
    assert not WebhookDelivery.objects.exists()
