"""Every URL of the URL conf, HTML and API, in two matrices (issue 12):

- anonymous: every URL, GET and POST, is either public (a short, named list) or refuses with a
  redirect to the login page, a 401/403, a 404 or a 405, and never a 5xx;
- another organisation: every URL that names an object, GET and POST, as an *admin* of another
  organisation (the strongest role, so the role is never the reason), answers 404 for Acme's
  object, never 2xx, 3xx or 5xx.

- each role of the *same* organisation (anonymous, agent, manager, admin): every URL and
  method (GET and POST; PUT, PATCH and DELETE too under /api/) answers as the declared table
  ``ROLES`` says: allowed for the URL's role and above, a 404 (HTML) or 403 (API) below it, the
  login page (HTML) or 401 (API) for anonymous, 405 for a method the URL does not take. Each
  request runs in a savepoint rolled back afterwards, so every one meets the same objects.

A URL the matrices do not know fails the test, so a new URL must be added here to be covered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.http import HttpResponse
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


# --- Per role, in the same organisation -------------------------------------------------------

PUB = "public"  # every role, anonymous included, gets the same answer (never a 5xx)
A, M, AD = Role.AGENT, Role.MANAGER, Role.ADMIN
RANK = {A: 1, M: 2, AD: 3}

# Who may call each URL, per method: the least role that may (and every role above it). A method
# the URL does not list answers 405 (or, to a role below the URL's least role, the refusal).
ROLES: dict[str, dict[str, str]] = {
    # Public by design (see PUBLIC above)
    "login": {"get": PUB, "post": PUB},
    "logout": {"post": PUB},
    "api-token": {"post": PUB},
    "api-schema": {"get": PUB},
    "api-docs": {"get": PUB},
    "invitations:accept": {"get": PUB, "post": PUB},
    "monitoring:health": {"get": PUB},
    "channels_social:facebook_webhook": {"get": PUB, "post": PUB},
    # The API (a role that may not is a 403)
    "api-root": {"get": A},
    "api-me": {"get": A},
    "api-metrics-today": {"get": M},
    "ticket-list": {"get": A},
    "ticket-detail": {"get": A},
    "ticket-messages": {"get": A},
    "ticket-events": {"get": A},
    "ticket-steps": {"post": A},
    "ticket-assign": {"post": A},
    "ticket-priority": {"post": A},
    "ticket-tags": {"post": A},
    "ticket-remove-tag": {"post": A},
    "tag-list": {"get": A},
    "sla-policy-list": {"get": M},
    "sla-policy-detail": {"get": M},
    "sla-timer-list": {"get": A},
    "brand-list": {"get": A},
    "brand-detail": {"get": A},
    "channel-list": {"get": AD},
    "channel-detail": {"get": AD, "patch": AD},
    # Everyone's own pages
    "api:tokens": {"get": A, "post": A},
    "api:revoke": {"post": A},
    "notifications:list": {"get": A},
    "notifications:badge": {"get": A},
    "notifications:read": {"post": A},
    "notifications:read-all": {"post": A},
    # The inbox and the ticket: agents and up
    "tickets:inbox": {"get": A},
    "tickets:bulk": {"post": A},
    "tickets:saved_view_create": {"post": A},
    "tickets:saved_view_delete": {"post": A},
    "tickets:detail": {"get": A},
    "tickets:assign_me": {"post": A},
    "tickets:step": {"post": A},
    "tickets:settle": {"post": A},
    "tickets:assign": {"post": A},
    "tickets:claim": {"post": A},
    "tickets:tag-add": {"post": A},
    "tickets:tag-remove": {"post": A},
    "tickets:note": {"post": A},
    "tickets:promise": {"post": A},
    "tickets:promise-kept": {"post": A},
    "tickets:skip": {"post": A},
    "tickets:close-without-close-out": {"post": A},
    "tickets:hide": {"post": A},
    "tickets:reply": {"post": A},
    "tickets:reply-check": {"post": A},
    "tickets:canned-insert": {"get": A},
    "tickets:priority": {"post": A},
    "tickets:customer": {"get": A},
    "tickets:customer-contact": {"post": A},
    "tickets:customer-note": {"post": A},
    "tickets:customer-link": {"post": A},
    "tickets:customer-unlink": {"post": A},
    "tickets:customer-sidebar": {"get": A},
    "tickets:merge": {"post": A},
    "tickets:split": {"post": A},
    "tickets:merge-offer-dismiss": {"post": A},
    # Managers
    "monitoring:dashboard": {"get": M},
    "tickets:approvals": {"get": M},
    "tickets:approval-decide": {"post": M},
    "tickets:canned-list": {"get": M, "post": M},
    "tickets:canned-edit": {"get": M, "post": M},
    "tickets:routing": {"get": M, "post": M},
    # Organisation admins: the settings
    "accounts:settings": {"get": AD},
    "accounts:members": {"get": AD},
    "accounts:member-invite": {"post": AD},
    "accounts:member-role": {"post": AD},
    "accounts:member-active": {"post": AD},
    "accounts:member-availability": {"post": AD},
    "accounts:member-resend": {"post": AD},
    "accounts:teams": {"get": AD, "post": AD},
    "accounts:team": {"get": AD, "post": AD},
    "accounts:team-delete": {"post": AD},
    "accounts:team-member-add": {"post": AD},
    "accounts:team-member-remove": {"post": AD},
    "accounts:organization": {"get": AD, "post": AD},
    "accounts:audit": {"get": AD},
    "escalation:rules": {"get": AD},
    "escalation:create": {"get": AD, "post": AD},
    "escalation:dry-run": {"post": AD},
    "escalation:edit": {"get": AD, "post": AD},
    "escalation:delete": {"post": AD},
    "monitoring:settings-policies": {"get": AD},
    "monitoring:settings-policy-create": {"get": AD, "post": AD},
    "monitoring:settings-policy-edit": {"get": AD, "post": AD},
    "monitoring:settings-policy-move": {"post": AD},
    "monitoring:settings-policy-delete": {"get": AD, "post": AD},
    "channels_social:settings-channels": {"get": AD},
    "channels_social:settings-brand-new": {"get": AD, "post": AD},
    "channels_social:settings-brand": {"get": AD, "post": AD},
    "channels_social:settings-channel-new": {"get": AD, "post": AD},
    "channels_social:settings-channel": {"get": AD, "post": AD},
    "channels_social:settings-channel-toggle": {"post": AD},
    "channels_social:settings-channel-recheck": {"post": AD},
    "channels_social:settings-query-new": {"get": AD, "post": AD},
    "channels_social:settings-query": {"get": AD, "post": AD},
    "channels_social:settings-query-delete": {"post": AD},
    "tickets:priority-rules": {"get": AD, "post": AD},
    "tickets:settings-threading": {"get": AD, "post": AD},
    # Landing: managers and admins to the dashboard, agents to the inbox
    "monitoring:landing": {"get": A},
    # Customers: agents see and edit contact details; a person's data request is a manager's
    "tickets:customers": {"get": A},
    "tickets:customer-export": {"get": M},
    "tickets:customer-erase": {"post": M},
    "customer-list": {"get": A},
    "customer-detail": {"get": A, "patch": A},
    "customer-tickets": {"get": A},
    "customer-export": {"get": M},
    "customer-erase": {"post": M},
    "ticket-notes": {"get": A, "post": A},
    # Moderation: deleting a customer's post is a manager's call
    "tickets:delete-post": {"post": M},
    # Each agent's own availability
    "tickets:my-availability": {"get": A, "post": A},
    # Reports
    "monitoring:report-csv": {"get": M},
    "monitoring:report-tickets": {"get": M},
    # Escalation rules and outbound webhooks in the API: admins
    "escalation-rule-list": {"get": AD, "post": AD},
    "escalation-rule-detail": {"get": AD, "patch": AD, "delete": AD},
    "webhook-list": {"get": AD, "post": AD},
    "webhook-detail": {"get": AD, "patch": AD, "delete": AD},
    "webhook-ping": {"post": AD},
    "webhook-rotate-secret": {"post": AD},
    "webhook-delivery-list": {"get": AD},
    "webhook-delivery-detail": {"get": AD},
    "webhook-delivery-redeliver": {"post": AD},
    # Outbound webhooks in the settings: admins
    "webhooks:endpoints": {"get": AD},
    "webhooks:endpoint-new": {"get": AD, "post": AD},
    "webhooks:endpoint": {"get": AD, "post": AD},
    "webhooks:endpoint-delete": {"post": AD},
    "webhooks:endpoint-rotate": {"post": AD},
    "webhooks:endpoint-test": {"post": AD},
    "webhooks:endpoint-toggle": {"post": AD},
    "webhooks:delivery": {"get": AD},
    "webhooks:delivery-redeliver": {"post": AD},
}

# What a request needs for the view to get past its own lookups (so that "allowed" is seen as
# allowed, not as a 404 for a missing parameter).
QUERY: dict[str, Callable[[dict[str, Any]], str]] = {
    "tickets:canned-insert": lambda o: f"?canned={o['canned']}",
    "monitoring:report-csv": lambda o: "?table=waiting",
    "monitoring:report-tickets": lambda o: "?source=tickets",
}
DATA: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "tickets:customer-link": lambda o: {"identity": o["identity"]},
}

HTML_METHODS = ("get", "post")
API_METHODS = ("get", "post", "put", "patch", "delete")


def test_the_role_table_knows_every_url() -> None:
    assert set(ROLES) == url_names(), (
        f"declare in ROLES: {sorted(url_names() - set(ROLES))}; "
        f"gone: {sorted(set(ROLES) - url_names())}"
    )


class _Rollback(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _rolled_back(call: Callable[..., HttpResponse], *args: Any, **kwargs: Any) -> HttpResponse:
    """The response to one request whose database changes are then undone."""
    try:
        with transaction.atomic():
            raise _Rollback(call(*args, **kwargs))
    except _Rollback as done:
        return done.response


def _outcome(response: HttpResponse, api: bool) -> str:
    status = response.status_code
    if status >= 500:
        return f"{status} (server error)"
    if status == 405:
        return "405"
    if api and status == 401:
        return "login"
    if not api and status == 302 and response["Location"].startswith(reverse("login")):
        return "login"
    if status == (403 if api else 404):
        return "refused"
    if status in (401, 403, 404):
        return str(status)
    return "allowed"


def _expected(name: str, method: str, role: str | None) -> str:
    declared = ROLES[name]
    required = declared.get(method)
    if required is None:
        least = min((RANK[r] for r in declared.values() if r in RANK), default=0)
        if role is None:
            return "login|405"
        return "refused|405" if RANK[role] < least else "405"
    if role is None:
        return "login"
    return "allowed" if RANK[role] >= RANK[required] else "refused"


@pytest.fixture
def personas(agent: Any, manager: Any, org_admin: Any) -> dict[str, Any]:
    return {A: agent, M: manager, AD: org_admin}


def _own_objects(persona: Any) -> dict[str, Any]:
    """What a URL names that only its owner may touch: each role acts on its own."""
    org = persona.organization
    membership = Membership.objects.get(user=persona.user, organization=org)
    return {
        "saved_view": SavedView.objects.create(
            organization=org, owner=persona.user, name=f"{persona.role}'s view"
        ).pk,
        "notification": Notification.objects.create(
            organization=org, recipient=persona.user, title="Hi"
        ).pk,
        "token": ApiToken.issue(membership, "to revoke")[0].pk,
    }


def test_each_role_reaches_what_the_table_says(
    acme: dict[str, Any], personas: dict[str, Any]
) -> None:
    callers: dict[str | None, tuple[Client, dict[str, str], dict[str, Any]]] = {
        None: (Client(raise_request_exception=False), {}, acme)
    }
    for role, persona in personas.items():
        client = Client(raise_request_exception=False)
        client.force_login(persona.user)
        membership = Membership.objects.get(user=persona.user)
        secret = ApiToken.issue(membership, "matrix")[1]
        callers[role] = (
            client,
            {"HTTP_AUTHORIZATION": f"Bearer {secret}"},
            {**acme, **_own_objects(persona)},
        )
    problems: list[str] = []
    covered = 0
    for name in sorted(ROLES):
        declared = ROLES[name]
        for role, (client, auth, objects) in callers.items():
            path = _path(name, objects) + (QUERY[name](objects) if name in QUERY else "")
            api = path.startswith("/api/")
            for method in API_METHODS if api else HTML_METHODS:
                if name == "logout":  # signs the caller out: a client of its own
                    client = Client(raise_request_exception=False)
                    if role is not None:
                        client.force_login(personas[role].user)
                kwargs: dict[str, Any] = dict(auth) if api else {}
                if api and method != "get":
                    kwargs.update(data="{}", content_type="application/json")
                elif method == "post" and name in DATA:
                    kwargs["data"] = DATA[name](objects)
                response = _rolled_back(getattr(client, method), path, **kwargs)
                covered += 1
                if declared.get(method) == PUB:
                    outcome = "public" if response.status_code < 500 else "server error"
                    problems += [] if outcome == "public" else [f"{method} {path}: 5xx"]
                    continue
                got, wanted = _outcome(response, api), _expected(name, method, role)
                if got not in wanted.split("|"):
                    problems.append(
                        f"{method.upper()} {path} ({name}) as {role or 'anonymous'}: "
                        f"{response.status_code} = {got}, the table says {wanted}"
                    )
    assert problems == []
    assert covered > 4 * 2 * len(ROLES)  # every URL, every method, every role


def test_public_urls_answer_every_role_alike(
    acme: dict[str, Any], personas: dict[str, Any]
) -> None:
    """A public URL does not change its answer with who asks (nor leaks more to a member)."""
    problems = []
    for name, declared in sorted(ROLES.items()):
        for method, required in declared.items():
            if required != PUB or name == "logout":
                continue
            path = _path(name, acme)
            statuses = set()
            for persona in (None, *personas.values()):
                client = Client(raise_request_exception=False)
                if persona is not None:
                    client.force_login(persona.user)
                statuses.add(_rolled_back(getattr(client, method), path).status_code)
            if len(statuses) != 1 or max(statuses) >= 500:
                problems.append(f"{method.upper()} {path}: {sorted(statuses)}")
    assert problems == []


# --- Inside a URL: the assignment rule, every way of assigning --------------------------------
# A manager assigns and reassigns anyone's ticket; an agent claims one nobody has and hands on
# their own, never a colleague's (README, "Team work on a ticket"). Each way of assigning (the
# ticket page's form, claim, the ``m`` key, the inbox's bulk actions, the API) must say so.

ASSIGN_WAYS: dict[str, Callable[[Any, Any, Any], tuple[str, dict[str, Any]]]] = {
    "form: to me": lambda t, me, other: (
        reverse("tickets:assign", args=[t.pk]),
        {"assignee": me.user.pk},
    ),
    "form: to someone": lambda t, me, other: (
        reverse("tickets:assign", args=[t.pk]),
        {"assignee": other.user.pk},
    ),
    "form: unassign": lambda t, me, other: (reverse("tickets:assign", args=[t.pk]), {}),
    "claim": lambda t, me, other: (reverse("tickets:claim", args=[t.pk]), {}),
    "m key": lambda t, me, other: (reverse("tickets:assign_me", args=[t.pk]), {}),
    "bulk: to me": lambda t, me, other: (
        reverse("tickets:bulk"),
        {"action": "assign_me", "ticket": [t.pk]},
    ),
    "bulk: to someone": lambda t, me, other: (
        reverse("tickets:bulk"),
        {"action": "assign", "assignee": other.user.pk, "ticket": [t.pk]},
    ),
    "bulk: unassign": lambda t, me, other: (
        reverse("tickets:bulk"),
        {"action": "unassign", "ticket": [t.pk]},
    ),
    "api: to me": lambda t, me, other: (
        reverse("ticket-assign", args=[t.pk]),
        {"user": me.user.pk},
    ),
    "api: to someone": lambda t, me, other: (
        reverse("ticket-assign", args=[t.pk]),
        {"user": other.user.pk},
    ),
    "api: unassign": lambda t, me, other: (reverse("ticket-assign", args=[t.pk]), {"user": None}),
}


def _assign_by(persona: Any, path: str, data: dict[str, Any]) -> HttpResponse:
    if path.startswith("/api/"):
        secret = ApiToken.issue(Membership.objects.get(user=persona.user), "assign")[1]
        return Client(raise_request_exception=False).post(
            path,
            data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
    # The inbox's bulk form answers with a redirect to the inbox, which shows the outcome.
    return persona.client().post(path, data, follow=path == reverse("tickets:bulk"))


@pytest.mark.parametrize("way", sorted(ASSIGN_WAYS))
def test_an_agent_never_takes_nor_gives_away_a_colleagues_ticket(
    way: str, org: Organization, agent: Any, manager: Any
) -> None:
    colleague = UserFactory(username="colin")
    MembershipFactory(user=colleague, organization=org, role=Role.AGENT)
    ticket = TicketFactory(organization=org, social_account__brand__organization=org)
    ticket.assign(colleague, by=manager.user, reason="set up")
    events = ticket.events.count()
    path, data = ASSIGN_WAYS[way](ticket, agent, manager)
    response = _assign_by(agent, path, data)
    # Refused as each way refuses: the ticket page with the reason (422), the inbox with it
    # (after a redirect), the API's 403.
    refused = 403 if way.startswith("api") else 200 if way.startswith("bulk") else 422
    assert response.status_code == refused, (way, response.status_code)
    assert "colleague" in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.assigned_to == colleague, f"{way}: an agent moved a colleague's ticket"
    assert ticket.events.count() == events


@pytest.mark.parametrize("way", ["form: to someone", "bulk: to someone", "api: to someone"])
def test_an_agent_does_not_hand_out_a_ticket_nobody_has(
    way: str, org: Organization, agent: Any, manager: Any
) -> None:
    ticket = TicketFactory(organization=org, social_account__brand__organization=org)
    response = _assign_by(agent, *ASSIGN_WAYS[way](ticket, agent, manager))
    assert response.status_code < 500
    ticket.refresh_from_db()
    assert ticket.assigned_to is None and ticket.events.filter(kind="assigned").count() == 0


@pytest.mark.parametrize("way", sorted(ASSIGN_WAYS))
def test_a_manager_reassigns_anyones_ticket(
    way: str, org: Organization, agent: Any, manager: Any
) -> None:
    colleague = UserFactory(username="colin")
    MembershipFactory(user=colleague, organization=org, role=Role.AGENT)
    ticket = TicketFactory(organization=org, social_account__brand__organization=org)
    ticket.assign(colleague, by=manager.user, reason="set up")
    path, data = ASSIGN_WAYS[way](ticket, manager, agent)
    response = _assign_by(manager, path, data)
    assert response.status_code in (200, 302), response.content[:300]
    ticket.refresh_from_db()
    assert ticket.assigned_to != colleague, f"{way}: a manager could not reassign"
