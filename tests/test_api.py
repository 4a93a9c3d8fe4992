"""The REST API: tokens, scoping to the caller's organisation, roles, filters, actions through the
same services as the inbox, and clear error bodies."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from careinbox.accounts.models import Membership, Team
from careinbox.api.models import ApiToken
from monitoring.models import SlaPolicy
from tests.conftest import Persona
from tests.factories import InboundMessageFactory, SocialAccountFactory, TicketFactory
from tickets.models import EventKind, Message, OutboxItem, Status

pytestmark = pytest.mark.django_db


def api(persona: Persona) -> APIClient:
    membership = Membership.objects.get(user=persona.user, organization=persona.organization)
    _, secret = ApiToken.issue(membership, "test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_without_or_with_a_bad_token_the_api_says_why(agent: Persona) -> None:
    client = APIClient()
    response = client.get("/api/v1/tickets/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    client.credentials(HTTP_AUTHORIZATION="Bearer ci_not-a-real-token")
    response = client.get("/api/v1/tickets/")
    assert response.status_code == 401 and "not valid" in response.json()["detail"]


def test_only_a_digest_is_kept_and_a_revoked_token_stops_working(agent: Persona) -> None:
    membership = Membership.objects.get(user=agent.user)
    token, secret = ApiToken.issue(membership, "CRM")
    assert secret not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/me/").json()["role"] == "agent"
    token.revoke()
    assert client.get("/api/v1/me/").status_code == 401


def test_a_deactivated_members_token_stops_working(agent: Persona) -> None:
    client = api(agent)
    assert client.get("/api/v1/me/").status_code == 200
    Membership.objects.filter(user=agent.user).update(is_active=False)
    assert client.get("/api/v1/me/").status_code == 401


def test_tokens_are_made_and_revoked_in_the_app(agent: Persona) -> None:
    browser = agent.client()
    page = browser.post(reverse("api:tokens"), {"name": "Zapier"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(name="Zapier")
    secret = page.context["new_secret"]
    assert secret.startswith("ci_") and secret in page.content.decode()
    # Shown once: the next visit lists it by its prefix only.
    again = browser.get(reverse("api:tokens")).content.decode()
    assert secret not in again and token.key_prefix in again
    browser.post(reverse("api:revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_nobody_revokes_someone_elses_token(agent: Persona, manager: Persona) -> None:
    theirs, _ = ApiToken.issue(Membership.objects.get(user=manager.user), "mine")
    assert agent.client().post(reverse("api:revoke", args=[theirs.pk])).status_code == 404


def test_the_management_command_prints_a_working_token(agent: Persona, capsys) -> None:  # type: ignore[no-untyped-def]
    call_command("create_api_token", "alice", "--name", "ops")
    secret = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/me/").json()["username"] == "alice"


def test_another_organisations_tickets_do_not_exist(agent: Persona, outsider: Persona) -> None:
    mine = TicketFactory(
        organization=agent.organization, social_account__brand__organization=agent.organization
    )
    theirs = TicketFactory()
    theirs_org = theirs.organization
    Membership.objects.filter(user=outsider.user).update(organization=theirs_org)
    client = api(agent)
    listed = client.get("/api/v1/tickets/").json()
    assert [row["id"] for row in listed["results"]] == [mine.pk]
    for url in (
        f"/api/v1/tickets/{theirs.pk}/",
        f"/api/v1/tickets/{theirs.pk}/messages/",
        f"/api/v1/tickets/{theirs.pk}/events/",
    ):
        assert client.get(url).status_code == 404, url
    response = client.post(f"/api/v1/tickets/{theirs.pk}/tags/", {"tag": "x"}, format="json")
    assert response.status_code == 404 and response.json() == {
        "detail": "Not found.",
        "code": "not_found",
    }
    assert not theirs.tags.exists()


def test_roles_decide_what_each_member_may_read(
    agent: Persona, manager: Persona, org_admin: Persona
) -> None:
    SlaPolicy.objects.get_or_create(organization=agent.organization, defaults={"name": "Default"})
    SocialAccountFactory(
        brand__organization=agent.organization, credentials={"bearer_token": "sekrit-1"}
    )
    assert api(agent).get("/api/v1/sla-policies/").status_code == 403
    assert api(manager).get("/api/v1/sla-policies/").status_code == 200
    assert api(agent).get("/api/v1/metrics/today/").status_code == 403
    assert api(manager).get("/api/v1/metrics/today/").json()["open_tickets"] == 0
    assert api(manager).get("/api/v1/channels/").status_code == 403
    response = api(org_admin).get("/api/v1/channels/")
    assert response.status_code == 200 and "sekrit-1" not in response.content.decode()
    assert response.json()["results"][0]["has_credentials"] is True


def test_an_admin_turns_a_channel_off_and_nothing_else(org_admin: Persona) -> None:
    account = SocialAccountFactory(brand__organization=org_admin.organization, username="acme")
    client = api(org_admin)
    response = client.patch(
        f"/api/v1/channels/{account.pk}/", {"enabled": False, "username": "evil"}, format="json"
    )
    assert response.status_code == 200
    account.refresh_from_db()
    assert account.enabled is False and account.username == "acme"


def test_filters_ordering_and_pagination(agent: Persona) -> None:
    org = agent.organization
    account = SocialAccountFactory(brand__organization=org)
    low = TicketFactory(social_account=account, priority=4, customer_followers=10)
    high = TicketFactory(social_account=account, priority=1, customer_followers=5000)
    closed = TicketFactory(social_account=account, status=Status.CLOSED)
    high.add_tag("outage", by=None)
    client = api(agent)

    def ids(query: str) -> list[int]:
        return [row["id"] for row in client.get(f"/api/v1/tickets/?{query}").json()["results"]]

    assert set(ids("open=true")) == {low.pk, high.pk}
    assert ids("status=closed") == [closed.pk]
    assert ids("tag=outage") == [high.pk]
    assert ids("min_followers=1000") == [high.pk]
    assert ids("open=true&ordering=priority") == [high.pk, low.pk]
    page = client.get("/api/v1/tickets/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    bad = client.get("/api/v1/tickets/?priority=9")
    assert (
        bad.status_code == 400
        and bad.json()["code"] == "invalid"
        and "priority" in bad.json()["fields"]
    )


def test_a_care_step_goes_out_through_the_outbox(agent: Persona) -> None:
    account = SocialAccountFactory(brand__organization=agent.organization)
    ticket = TicketFactory(social_account=account)
    InboundMessageFactory(ticket=ticket)
    client = api(agent)
    out_of_order = client.post(
        f"/api/v1/tickets/{ticket.pk}/steps/", {"step": "resolve", "text": "Done"}, format="json"
    )
    assert out_of_order.status_code == 409 and out_of_order.json()["code"] == "step_refused"
    assert not Message.objects.filter(ticket=ticket, direction="out").exists()
    response = client.post(
        f"/api/v1/tickets/{ticket.pk}/steps/",
        {"step": "acknowledge", "text": "Sorry about this, we're on it."},
        format="json",
    )
    assert response.status_code == 202, response.json()
    sent = response.json()["message"]
    assert sent["delivery"] == "queued" and response.json()["held_for_approval"] is None
    assert OutboxItem.objects.filter(message_id=sent["id"]).exists()
    empty = client.post(
        f"/api/v1/tickets/{ticket.pk}/steps/", {"step": "take_offline", "text": ""}, format="json"
    )
    assert empty.status_code == 400 and "text" in empty.json()["fields"]


def test_assign_priority_and_tags_are_recorded(
    agent: Persona, manager: Persona, outsider: Persona
) -> None:
    ticket = TicketFactory(
        organization=agent.organization, social_account__brand__organization=agent.organization
    )
    team = Team.objects.create(organization=agent.organization, name="Billing")
    client = api(agent)
    assert (
        client.post(
            f"/api/v1/tickets/{ticket.pk}/assign/", {"user": outsider.user.pk}, format="json"
        ).status_code
        == 400
    )
    # Handing out a ticket nobody has is a manager's (the ticket page's rule): a 403 for an agent.
    refused = client.post(
        f"/api/v1/tickets/{ticket.pk}/assign/", {"user": manager.user.pk}, format="json"
    )
    assert refused.status_code == 403 and "a manager assigns it" in refused.json()["detail"]
    response = api(manager).post(
        f"/api/v1/tickets/{ticket.pk}/assign/",
        {"user": manager.user.pk, "team": team.pk},
        format="json",
    )
    assert response.status_code == 200 and response.json()["assigned_to"] == manager.user.pk
    assert (
        client.post(
            f"/api/v1/tickets/{ticket.pk}/priority/",
            {"priority": 1, "reason": "VIP"},
            format="json",
        ).json()["priority"]
        == 1
    )
    assert client.post(
        f"/api/v1/tickets/{ticket.pk}/tags/", {"tag": "#Refund"}, format="json"
    ).json()["tags"] == ["refund"]
    kinds = set(ticket.events.values_list("kind", flat=True))
    assert {EventKind.ASSIGNED, EventKind.PRIORITY_CHANGED, EventKind.TAGGED} <= kinds
    events = client.get(f"/api/v1/tickets/{ticket.pk}/events/").json()["results"]
    assert [event["kind"] for event in events][-3:] == ["assigned", "priority_changed", "tagged"]


def test_the_token_endpoint_signs_in_and_is_throttled_like_the_login_form(agent: Persona) -> None:
    client = APIClient()
    ok = client.post("/api/v1/auth/token/", {"username": "alice", "password": "pw"}, format="json")
    assert ok.status_code == 201 and ok.json()["role"] == "agent"
    for n in range(settings.AXES_FAILURE_LIMIT):
        wrong = client.post(
            "/api/v1/auth/token/", {"username": "alice", "password": f"no-{n}"}, format="json"
        )
        assert wrong.status_code in {401, 429}
    locked = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "pw"}, format="json"
    )
    assert locked.status_code == 429
    assert ApiToken.objects.count() == 1


def test_schema_and_docs_are_served(agent: Persona) -> None:
    # Public, like most SaaS APIs' references: it names endpoints, never data.
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    browser = agent.client()
    assert schema.status_code == 200 and "/api/v1/tickets/" in schema.content.decode()
    docs = browser.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "<script>" not in page.replace(" ", "")  # the split view: no inline script (our CSP)


def test_the_reply_guard_answers_with_its_flags_and_nothing_is_queued(agent: Persona) -> None:
    account = SocialAccountFactory(brand__organization=agent.organization)
    ticket = TicketFactory(social_account=account)
    InboundMessageFactory(ticket=ticket, text="Your app deleted my order. Awful.")
    client = api(agent)
    response = client.post(
        f"/api/v1/tickets/{ticket.pk}/steps/",
        {"step": "acknowledge", "text": "Please delete this tweet and DM us."},
        format="json",
    )
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["code"] == "reply_guard" and body["flags"]
    assert any("delete" in flag["code"] for flag in body["flags"])
    assert not Message.objects.filter(ticket=ticket, direction="out").exists()


def test_an_instant_postgresql_cannot_hold_is_a_clear_400_not_a_500(agent: Persona) -> None:
    """Found by schemathesis: ISO 8601 allows a UTC offset of +18:26, PostgreSQL does not."""
    TicketFactory(
        organization=agent.organization, social_account__brand__organization=agent.organization
    )
    client = api(agent)
    ok = client.get("/api/v1/tickets/", {"opened_before": "0404-04-08T23:23:00+18:26"})
    assert ok.status_code == 200 and ok.json()["count"] == 0
    edge = client.get("/api/v1/tickets/", {"opened_after": "0001-01-01T00:10:00+00:50"})
    assert edge.status_code == 400 and "opened_at" in edge.json()["fields"]


def test_an_id_no_column_can_hold_matches_nothing(agent: Persona) -> None:
    """Found by schemathesis on SQLite (an OverflowError, so a 500)."""
    TicketFactory(
        organization=agent.organization, social_account__brand__organization=agent.organization
    )
    client = api(agent)
    huge = "8333909249405213575607968787781910528"
    assert client.get("/api/v1/tickets/", {"team": huge}).json()["count"] == 0
    assert client.get("/api/v1/tickets/", {"min_followers": f"-{huge}"}).json()["count"] == 1
    assert client.get("/api/v1/sla-timers/", {"ticket": huge}).status_code == 200
