"""Every form and API input with garbage: a clear answer, never a 5xx, nothing changed.

For every URL and writing method of the role matrix (``tests/test_url_matrix.py``: every POST,
and PUT/PATCH/DELETE under /api/), as an organisation *admin* (so the role is never the reason
for a refusal), each of these payloads is sent, filling every field name the views and forms read
(found in the source, so a new field is covered too):

- wrong types (words where numbers, dates or choices belong, lists where one value does);
- out-of-range values (huge and negative numbers, a date in year 9999);
- other organisations' ids (a Globex user, team, ticket, customer identity, canned response...);
- NUL and 20,000 characters;
- under /api/ also a body that is not JSON, and JSON of the wrong shape.

Each request runs in a savepoint rolled back afterwards. Asserted: no 5xx; a 4xx answer left
every row of the organisation's data as it was; Globex's rows never change whatever the answer.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from django.http import HttpResponse
from django.test import Client

from careinbox.accounts.models import Membership, Organization, Role, Team
from careinbox.api.models import ApiToken
from tests.factories import InboundMessageFactory, MembershipFactory, TicketFactory, UserFactory
from tests.test_url_matrix import API_METHODS, HTML_METHODS, ROLES, _path, acme  # noqa: F401
from tickets.customer_models import Customer, CustomerIdentity
from tickets.models import CannedResponse

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
APPS = ("careinbox", "tickets", "channels_social", "monitoring")
# Written on every request by design, whatever its answer: not data the request changes.
VOLATILE = {"api.ApiToken", "axes.AccessAttempt", "axes.AccessLog", "sessions.Session"}


def field_names() -> set[str]:
    """Every request field a view or form of the project reads."""
    pattern = re.compile(
        r"POST\.get(?:list)?\(\"([a-z_]+)\"|^\s+([a-z_]+) = (?:forms|serializers)\.\w+",
        re.M,
    )
    names: set[str] = set()
    for app in APPS:
        for source in (ROOT / app).rglob("*.py"):
            if "migrations" in source.parts or "sandbox" in source.parts:
                continue
            for match in pattern.finditer(source.read_text()):
                names.add(match.group(1) or match.group(2))
    return names


def digest(organization: Organization) -> dict[str, str]:
    """A fingerprint of every row belonging to ``organization`` (and its members), per model."""
    fingerprints = {}
    for model in apps.get_models():
        label = model._meta.label
        if label in VOLATILE or model._meta.app_label in ("admin", "contenttypes", "auth"):
            continue
        fields = {f.name for f in model._meta.concrete_fields}
        if "organization" in fields:
            rows = model._default_manager.filter(organization=organization)
        elif label == "accounts.User":
            rows = model._default_manager.filter(memberships__organization=organization)
        else:
            continue
        values = list(rows.order_by("pk").values_list())
        fingerprints[label] = hashlib.sha256(repr(values).encode()).hexdigest()
    return fingerprints


class _Rollback(Exception):
    def __init__(self, result: tuple[HttpResponse, dict[str, str], dict[str, str]]) -> None:
        self.result = result


@pytest.fixture
def globex_ids(other_org: Organization) -> dict[str, int]:
    """Another organisation's objects, whose ids the payloads smuggle in."""
    user = UserFactory(username="gus")
    MembershipFactory(user=user, organization=other_org, role=Role.ADMIN)
    ticket = TicketFactory(organization=other_org, social_account__brand__organization=other_org)
    message = InboundMessageFactory(ticket=ticket)
    customer = Customer.objects.create(organization=other_org, display_name="Gus")
    identity = CustomerIdentity.objects.create(
        organization=other_org, customer=customer, platform="x", external_id="999", username="g"
    )
    return {
        "user": user.pk,
        "member": Membership.objects.get(user=user).pk,
        "team": Team.objects.create(organization=other_org, name="Globex care").pk,
        "ticket": ticket.pk,
        "message": message.pk,
        "identity": identity.pk,
        "brand": ticket.brand_id,
        "canned": CannedResponse.objects.create(organization=other_org, title="G").pk,
    }


def payloads(fields: set[str], theirs: dict[str, int]) -> dict[str, dict[str, Any]]:
    def other_id(name: str) -> int:
        for key in ("user", "team", "identity", "message", "brand", "canned", "member"):
            if key in name:
                return theirs[key]
        if name in ("assignee", "actor"):
            return theirs["user"]
        return theirs["ticket"]

    return {
        "wrong types": {name: "not-a-number" for name in fields}
        | {"ticket": ["x", "1.5"], "due_at": "yesterday-ish"},
        "out of range": {name: "-99999999999999999999999" for name in fields}
        | {"due_at": "9999-12-31T23:59", "remind_minutes_before": "99999999"},
        "other organisation's ids": {name: str(other_id(name)) for name in fields}
        | {"ticket": [str(theirs["ticket"])]},
        "NUL and 20,000 characters": {name: "\x00" + "x" * 20_000 for name in fields},
    }


def test_garbage_in_every_form_and_api_input_is_refused_cleanly(
    acme: dict[str, Any],  # noqa: F811 (the matrix's fixture)
    org: Organization,
    other_org: Organization,
    globex_ids: dict[str, int],
) -> None:
    admin = Membership.objects.get(organization=org, role=Role.ADMIN)
    client = Client(raise_request_exception=False)
    client.force_login(admin.user)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.issue(admin, 'garbage')[1]}"}
    fields = field_names()
    assert {"assignee", "team", "text", "due_at", "identity"} <= fields
    families = payloads(fields, globex_ids)
    ours_before, theirs_before = digest(org), digest(other_org)
    problems: list[str] = []
    answers: Counter[str] = Counter()
    for name in sorted(ROLES):
        if name in ("logout", "login", "api-token", "channels_social:facebook_webhook"):
            continue  # sign-in forms and the signed webhook have tests of their own
        path = _path(name, acme)
        api = path.startswith("/api/")
        for method in API_METHODS if api else HTML_METHODS:
            if method == "get" or method not in ROLES[name]:
                continue
            bodies: dict[str, Any] = dict(families)
            if api:
                bodies |= {"not JSON": "{not json", "a JSON list": "[1, 2]"}
            for family, body in bodies.items():
                kwargs: dict[str, Any] = dict(bearer) if api else {}
                kwargs["data"] = body
                if api:
                    kwargs["content_type"] = "application/json"
                try:
                    with transaction.atomic():
                        response = getattr(client, method)(path, **kwargs)
                        raise _Rollback((response, digest(org), digest(other_org)))
                except _Rollback as done:
                    response, ours, theirs = done.result
                status = response.status_code
                answers[f"{status // 100}xx"] += 1
                where = f"{method.upper()} {path} ({name}) with {family}"
                if status >= 500:
                    problems.append(f"{where}: {status}")
                if 400 <= status < 500 and ours != ours_before:
                    changed = sorted(k for k in ours if ours[k] != ours_before.get(k))
                    problems.append(f"{where}: {status} but changed {changed}")
                if theirs != theirs_before:
                    changed = sorted(k for k in theirs if theirs[k] != theirs_before.get(k))
                    problems.append(f"{where}: changed Globex's {changed}")
    assert problems == [], "\n".join(problems)
    assert answers["4xx"] > 100, answers  # most garbage is refused outright
