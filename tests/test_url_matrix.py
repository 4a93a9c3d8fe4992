"""Every URL of the URL conf, HTML and API, in two matrices (issue 12):

- anonymous: every URL, GET and POST, is either public (a short, named list) or refuses with a
  redirect to the login page, a 401/403, a 404 or a 405, and never a 5xx;
- another organisation: every URL that names an object, GET and POST, as an *admin* of another
  organisation (the strongest role, so the role is never the reason), answers 404 for Acme's
  object, never 2xx, 3xx or 5xx.

A URL the matrices do not know fails the test, so a new URL must be added here to be covered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from careinbox.accounts.models import Membership, Organization, Role, Team
from careinbox.api.models import ApiToken
from careinbox.notifications.models import Notification
from channels_social.models import ListeningQuery
from monitoring.models import EscalationRule, SlaPolicy
from monitoring.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories import InboundMessageFactory, MembershipFactory, TicketFactory, UserFactory
from tickets.customer_models import Customer, CustomerIdentity
from tickets.models import ApprovalRequest, CannedResponse, Promise, SavedView, Step

pytestmark = pytest.mark.django_db

# Reachable without signing in, by design (a sign-in page, a webhook that checks a signature,
# the health check for load balancers, the API's schema and its token exchange, an invitation).
PUBLIC = {
    "login",
    "logout",
    "api-token",
    "api-schema",
    "api-docs",
    "api-root",
    "monitoring:health",
    "channels_social:facebook_webhook",
    "invitations:accept",
}


def _patterns(
    patterns: list[Any], prefix: str = "", ns: str = ""
) -> Iterator[tuple[str, str, Any]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if str(entry.pattern).startswith("admin/"):
                continue  # Django's admin: operators only, its own permission system
            namespace = ns + (f"{entry.namespace}:" if entry.namespace else "")
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern), namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix + str(entry.pattern), ns + entry.name, entry


def url_names() -> set[str]:
    return {name for _, name, _ in _patterns(get_resolver().url_patterns)}


@pytest.fixture
def acme(org: Organization, agent: Any, org_admin: Any) -> dict[str, Any]:
    """One of every object a URL can name, in Acme."""
    ticket = TicketFactory(organization=org, social_account__brand__organization=org)
    other = TicketFactory(social_account=ticket.social_account)
    message = InboundMessageFactory(ticket=ticket)
    customer = Customer.objects.create(organization=org, display_name="Jo")
    identity = CustomerIdentity.objects.create(
        organization=org, customer=customer, platform="x", external_id="777", username="jo"
    )
    admin_membership = Membership.objects.get(user=org_admin.user, organization=org)
    member = Membership.objects.get(user=agent.user, organization=org)
    team = Team.objects.create(organization=org, name="Billing")
    team.members.add(member)
    webhook = WebhookEndpoint.objects.create(
        organization=org, name="CRM", url="http://127.0.0.1:9/hooks", events=["ticket.created"]
    )
    delivery = WebhookDelivery.objects.create(
        organization=org, endpoint=webhook, event_id="evt_1", event_type="ping", body="{}"
    )
    return {
        "webhook": webhook.pk,
        "delivery": delivery.pk,
        "ticket": ticket.pk,
        "other_ticket": other.pk,
        "message": message.pk,
        "customer": customer.pk,
        "identity": identity.pk,
        "member": member.pk,
        "team": team.pk,
        "brand": ticket.brand_id,
        "channel": ticket.social_account_id,
        "query": ListeningQuery.objects.create(
            organization=org, brand_id=ticket.brand_id, query="acme late"
        ).pk,
        "policy": SlaPolicy.objects.filter(organization=org).first().pk  # type: ignore[union-attr]
        if SlaPolicy.objects.filter(organization=org).exists()
        else SlaPolicy.objects.create(organization=org, name="Default").pk,
        "rule": EscalationRule.objects.create(
            organization=org, name="R", conditions=[], levels=[]
        ).pk,
        "promise": Promise.objects.create(
            organization=org,
            ticket=ticket,
            text="Call back",
            due_at=timezone.now() + timedelta(hours=2),
            remind_at=timezone.now() + timedelta(hours=1),
        ).pk,
        "approval": ApprovalRequest.objects.create(
            organization=org,
            ticket=ticket,
            step=Step.ACKNOWLEDGE,
            text="Sorry",
            requested_by=agent.user,
        ).pk,
        "canned": CannedResponse.objects.create(organization=org, title="Hello").pk,
        "saved_view": SavedView.objects.create(organization=org, owner=agent.user, name="Mine").pk,
        "notification": Notification.objects.create(
            organization=org, recipient=agent.user, title="Hi"
        ).pk,
        "token": ApiToken.issue(admin_membership, "t")[0].pk,
    }


# How each URL that names an object is filled with Acme's objects.
OBJECT_URLS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ticket-detail": lambda o: {"pk": o["ticket"]},
    "ticket-assign": lambda o: {"pk": o["ticket"]},
    "ticket-events": lambda o: {"pk": o["ticket"]},
    "ticket-messages": lambda o: {"pk": o["ticket"]},
    "ticket-priority": lambda o: {"pk": o["ticket"]},
    "ticket-remove-tag": lambda o: {"pk": o["ticket"]},
    "ticket-steps": lambda o: {"pk": o["ticket"]},
    "ticket-tags": lambda o: {"pk": o["ticket"]},
    "customer-export": lambda o: {"pk": o["customer"]},
    "customer-erase": lambda o: {"pk": o["customer"]},
    "sla-policy-detail": lambda o: {"pk": o["policy"]},
    "brand-detail": lambda o: {"pk": o["brand"]},
    "channel-detail": lambda o: {"pk": o["channel"]},
    "api:revoke": lambda o: {"pk": o["token"]},
    "escalation:edit": lambda o: {"pk": o["rule"]},
    "escalation:delete": lambda o: {"pk": o["rule"]},
    "accounts:member-role": lambda o: {"pk": o["member"]},
    "accounts:member-active": lambda o: {"pk": o["member"]},
    "accounts:member-availability": lambda o: {"pk": o["member"]},
    "accounts:member-resend": lambda o: {"pk": o["member"]},
    "accounts:team": lambda o: {"pk": o["team"]},
    "accounts:team-delete": lambda o: {"pk": o["team"]},
    "accounts:team-member-add": lambda o: {"pk": o["team"]},
    "accounts:team-member-remove": lambda o: {"pk": o["team"], "member_pk": o["member"]},
    "notifications:read": lambda o: {"pk": o["notification"]},
    "monitoring:settings-policy-edit": lambda o: {"pk": o["policy"]},
    "monitoring:settings-policy-move": lambda o: {"pk": o["policy"], "direction": "up"},
    "monitoring:settings-policy-delete": lambda o: {"pk": o["policy"]},
    "channels_social:settings-brand": lambda o: {"pk": o["brand"]},
    "channels_social:settings-channel-new": lambda o: {"brand_pk": o["brand"], "platform": "x"},
    "channels_social:settings-query-new": lambda o: {"brand_pk": o["brand"]},
    "channels_social:settings-query": lambda o: {"pk": o["query"]},
    "channels_social:settings-query-delete": lambda o: {"pk": o["query"]},
    "channels_social:settings-channel": lambda o: {"pk": o["channel"]},
    "channels_social:settings-channel-toggle": lambda o: {"pk": o["channel"]},
    "channels_social:settings-channel-recheck": lambda o: {"pk": o["channel"]},
    "tickets:saved_view_delete": lambda o: {"pk": o["saved_view"]},
    "tickets:detail": lambda o: {"pk": o["ticket"]},
    "tickets:assign_me": lambda o: {"pk": o["ticket"]},
    "tickets:step": lambda o: {"pk": o["ticket"], "step": "acknowledge"},
    "tickets:settle": lambda o: {"pk": o["ticket"], "message_id": o["message"]},
    "tickets:assign": lambda o: {"pk": o["ticket"]},
    "tickets:claim": lambda o: {"pk": o["ticket"]},
    "tickets:tag-add": lambda o: {"pk": o["ticket"]},
    "tickets:tag-remove": lambda o: {"pk": o["ticket"]},
    "tickets:note": lambda o: {"pk": o["ticket"]},
    "tickets:promise": lambda o: {"pk": o["ticket"]},
    "tickets:promise-kept": lambda o: {"pk": o["ticket"], "promise_id": o["promise"]},
    "tickets:skip": lambda o: {"pk": o["ticket"], "step": "acknowledge"},
    "tickets:close-without-close-out": lambda o: {"pk": o["ticket"]},
    "tickets:hide": lambda o: {"pk": o["ticket"], "message_id": o["message"]},
    "tickets:delete-post": lambda o: {"pk": o["ticket"], "message_id": o["message"]},
    "tickets:reply": lambda o: {"pk": o["ticket"], "step": "acknowledge"},
    "tickets:reply-check": lambda o: {"pk": o["ticket"], "step": "acknowledge"},
    "tickets:canned-insert": lambda o: {"pk": o["ticket"]},
    "tickets:priority": lambda o: {"pk": o["ticket"]},
    "tickets:approval-decide": lambda o: {"approval_id": o["approval"]},
    "tickets:canned-edit": lambda o: {"canned_id": o["canned"]},
    "tickets:customer": lambda o: {"pk": o["customer"]},
    "tickets:customer-contact": lambda o: {"pk": o["customer"]},
    "tickets:customer-note": lambda o: {"pk": o["customer"]},
    "tickets:customer-link": lambda o: {"pk": o["customer"]},
    "tickets:customer-export": lambda o: {"pk": o["customer"]},
    "tickets:customer-erase": lambda o: {"pk": o["customer"]},
    "tickets:customer-unlink": lambda o: {"pk": o["customer"], "identity_id": o["identity"]},
    "tickets:customer-sidebar": lambda o: {"pk": o["ticket"]},
    "tickets:merge": lambda o: {"pk": o["ticket"]},
    "tickets:split": lambda o: {"pk": o["ticket"]},
    "tickets:merge-offer-dismiss": lambda o: {"pk": o["ticket"], "candidate_id": o["other_ticket"]},
    "customer-detail": lambda o: {"pk": o["customer"]},
    "customer-tickets": lambda o: {"pk": o["customer"]},
    "ticket-notes": lambda o: {"pk": o["ticket"]},
    "escalation-rule-detail": lambda o: {"pk": o["rule"]},
    "webhook-detail": lambda o: {"pk": o["webhook"]},
    "webhook-ping": lambda o: {"pk": o["webhook"]},
    "webhook-rotate-secret": lambda o: {"pk": o["webhook"]},
    "webhook-delivery-detail": lambda o: {"pk": o["delivery"]},
    "webhook-delivery-redeliver": lambda o: {"pk": o["delivery"]},
    "webhooks:endpoint": lambda o: {"pk": o["webhook"]},
    "webhooks:endpoint-toggle": lambda o: {"pk": o["webhook"]},
    "webhooks:endpoint-rotate": lambda o: {"pk": o["webhook"]},
    "webhooks:endpoint-test": lambda o: {"pk": o["webhook"]},
    "webhooks:endpoint-delete": lambda o: {"pk": o["webhook"]},
    "webhooks:delivery": lambda o: {"pk": o["delivery"]},
    "webhooks:delivery-redeliver": lambda o: {"pk": o["delivery"]},
}

# URLs that name no object (lists, forms to create, pages of one's own).
PLAIN_URLS = {
    "api-me",
    "api-metrics-today",
    "ticket-list",
    "tag-list",
    "sla-policy-list",
    "sla-timer-list",
    "brand-list",
    "channel-list",
    "api:tokens",
    "escalation:rules",
    "escalation:create",
    "escalation:dry-run",
    "accounts:settings",
    "accounts:members",
    "accounts:member-invite",
    "accounts:teams",
    "accounts:organization",
    "accounts:audit",
    "notifications:list",
    "notifications:badge",
    "notifications:read-all",
    "monitoring:dashboard",
    "monitoring:landing",
    "monitoring:report-csv",
    "monitoring:report-tickets",
    "monitoring:settings-policies",
    "monitoring:settings-policy-create",
    "channels_social:settings-channels",
    "channels_social:settings-brand-new",
    "tickets:inbox",
    "tickets:bulk",
    "tickets:saved_view_create",
    "tickets:routing",
    "tickets:my-availability",
    "tickets:customers",
    "tickets:approvals",
    "tickets:canned-list",
    "tickets:priority-rules",
    "tickets:settings-threading",
    "customer-list",
    "escalation-rule-list",
    "webhook-list",
    "webhook-delivery-list",
    "webhooks:endpoints",
    "webhooks:endpoint-new",
}


def test_the_matrices_know_every_url() -> None:
    unknown = url_names() - PUBLIC - set(OBJECT_URLS) - PLAIN_URLS
    assert unknown == set(), f"add these URLs to tests/test_url_matrix.py: {sorted(unknown)}"


def _path(name: str, objects: dict[str, Any]) -> str:
    kwargs = OBJECT_URLS[name](objects) if name in OBJECT_URLS else {}
    if name == "invitations:accept":
        kwargs = {"uidb64": "MQ", "token": "not-a-token"}
    return reverse(name, kwargs=kwargs)


def test_anonymous_reaches_only_the_public_urls(acme: dict[str, Any]) -> None:
    client = Client(raise_request_exception=False)
    problems = []
    for name in sorted(url_names()):
        path = _path(name, acme)
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            status = response.status_code
            to_login = status == 302 and response["Location"].startswith(reverse("login"))
            if status >= 500:
                problems.append(f"{method.upper()} {path}: {status}")
            elif not (name in PUBLIC or to_login or status in {401, 403, 404, 405}):
                problems.append(f"{method.upper()} {path} ({name}): {status} for anonymous")
    assert problems == []


def test_another_organisations_admin_gets_404_for_every_object(
    acme: dict[str, Any], other_org: Organization
) -> None:
    outsider = UserFactory(username="globex-admin")
    MembershipFactory(user=outsider, organization=other_org, role=Role.ADMIN)
    client = Client(raise_request_exception=False)
    client.force_login(outsider)
    api = Client(raise_request_exception=False)
    secret = ApiToken.issue(Membership.objects.get(user=outsider), "x")[1]
    problems = []
    for name in sorted(OBJECT_URLS):
        path = _path(name, acme)
        caller = api if path.startswith("/api/") else client
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if caller is api else {}
        for method in ("get", "post"):
            status = getattr(caller, method)(path, **headers).status_code
            if status not in {404, 405}:
                problems.append(f"{method.upper()} {path} ({name}): {status}")
    assert problems == []
