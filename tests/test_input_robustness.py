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
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.db.models import F, Model
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from careinbox.accounts.models import Membership, Organization, Role, Team, User
from careinbox.api.models import ApiToken
from channels_social.models import ListeningQuery
from monitoring.webhooks.models import WebhookDelivery
from tests.factories import InboundMessageFactory, MembershipFactory, TicketFactory, UserFactory
from tests.test_url_matrix import API_METHODS, HTML_METHODS, ROLES, _path, acme  # noqa: F401
from tickets.customer_models import Customer, CustomerIdentity
from tickets.models import CannedResponse, Promise, Ticket

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


def fingerprinted_models() -> list[tuple[type[Model], str]]:
    """Every model whose rows belong to an organisation, with the column that says which: its
    ``organization`` foreign key, or for ``accounts.User`` its id (a member of the organisation)."""
    found = []
    for model in apps.get_models():
        label = model._meta.label
        if label in VOLATILE or model._meta.app_label in ("admin", "contenttypes", "auth"):
            continue
        fields = {f.name for f in model._meta.concrete_fields}
        if "organization" in fields:
            found.append((model, model._meta.get_field("organization").column))
        elif label == "accounts.User":
            found.append((model, model._meta.pk.column))
    return found


def digest_per_model(organization: Organization) -> dict[str, str]:
    """The straightforward fingerprint, one ORM query per model (~45 queries): the reference
    ``digest`` is checked against (``test_the_one_query_digest_sees_what_the_per_model_one_sees``).
    """
    fingerprints = {}
    for model, _ in fingerprinted_models():
        if model is User:
            rows = model._default_manager.filter(memberships__organization=organization)
        else:
            rows = model._default_manager.filter(organization=organization)
        values = list(rows.order_by("pk").values_list())
        fingerprints[model._meta.label] = hashlib.sha256(repr(values).encode()).hexdigest()
    return fingerprints


def digest(organization: Organization) -> dict[str, str]:
    """A fingerprint of every row belonging to ``organization`` (and its members), per model:
    every column of every row, in ONE query (a UNION ALL of each model's rows as text), hashed
    here. The per-model ORM version cost ~45 queries per call, twice per request (~75 % of the
    test's time)."""
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        return digest_per_model(organization)
    qn = connection.ops.quote_name
    membership = Membership._meta
    # Every piece of the SQL text is ours: table and column names from the models, quoted.
    user_id, org_id = (qn(membership.get_field(name).column) for name in ("user", "organization"))
    members = f"SELECT {user_id} FROM {qn(membership.db_table)} WHERE {org_id} = %s"  # noqa: S608
    selects, params = [], []
    hashes = {}
    for model, column in fingerprinted_models():
        meta = model._meta
        if vendor == "postgresql":
            row = "CAST(ROW(r.*) AS text)"  # every column; strings quoted, floats exact
        else:  # quote(): an unambiguous literal per value (exact for floats, X'..' for blobs)
            row = " || ',' || ".join(f"quote(r.{qn(f.column)})" for f in meta.concrete_fields)
        owner = f"IN ({members})" if model is User else "= %s"
        pk, table, owner_column = qn(meta.pk.column), qn(meta.db_table), qn(column)
        selects.append(
            f"SELECT %s AS label, CAST(r.{pk} AS text) AS k, {row} AS v"  # noqa: S608
            f" FROM {table} AS r WHERE r.{owner_column} {owner}"
        )
        params += [meta.label, organization.pk]
        hashes[meta.label] = hashlib.sha256()  # a model without rows has a fingerprint too
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(selects) + " ORDER BY 1, 2", params)
        for label, _, value in cursor.fetchall():
            hashes[label].update(f"{len(value)}:{value}\n".encode())
    return {label: h.hexdigest() for label, h in hashes.items()}


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
                        # Ours matters only for a refusal (an accepted request may change it).
                        refused = 400 <= response.status_code < 500
                        ours = digest(org) if refused else ours_before
                        raise _Rollback((response, ours, digest(other_org)))
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


def test_the_one_query_digest_sees_what_the_per_model_one_sees(
    acme: dict[str, Any],  # noqa: F811 (the matrix's fixture)
    agent: Any,
    org: Organization,
    other_org: Organization,
    globex_ids: dict[str, int],
) -> None:
    """Equivalence: for each kind of change, ``digest`` and ``digest_per_model`` report the same
    models changed, for both organisations (and both cover the same models)."""
    ticket = Ticket.objects.filter(pk=acme["ticket"])
    canned = CannedResponse.objects.filter(pk=acme["canned"])
    changes: dict[str, tuple[Callable[[], object], str | None, str | None]] = {
        "nothing": (lambda: None, None, None),
        "an integer + 1": (
            lambda: ticket.update(customer_followers=F("customer_followers") + 1),
            "tickets.Ticket",
            None,
        ),
        "a float + 1e-12": (
            lambda: ticket.update(sentiment_score=F("sentiment_score") + 1e-12),
            "tickets.Ticket",
            None,
        ),
        "a time + 1 µs": (
            lambda: ticket.update(updated_at=F("updated_at") + timedelta(microseconds=1)),
            "tickets.Ticket",
            None,
        ),
        "a JSON value": (lambda: ticket.update(priority_reasons=["vip"]), "tickets.Ticket", None),
        "a text with a comma, quotes, a newline": (
            lambda: canned.update(title='a,"b"\n(c)\''),
            "tickets.CannedResponse",
            None,
        ),
        "a NULL given a value": (
            lambda: Promise.objects.filter(pk=acme["promise"]).update(reminded_at=timezone.now()),
            "tickets.Promise",
            None,
        ),
        "a row deleted": (
            lambda: WebhookDelivery.objects.filter(pk=acme["delivery"]).delete(),
            "webhooks.WebhookDelivery",
            None,
        ),
        "a model's only row deleted": (
            lambda: ListeningQuery.objects.filter(organization=org).delete(),
            "channels_social.ListeningQuery",
            None,
        ),
        "a row added": (
            lambda: CannedResponse.objects.create(organization=org, title="New"),
            "tickets.CannedResponse",
            None,
        ),
        "a row moved to the other organisation": (
            lambda: canned.update(organization=other_org),
            "tickets.CannedResponse",
            "tickets.CannedResponse",
        ),
        "a member's email": (
            lambda: User.objects.filter(pk=agent.user.pk).update(email="new@example.com"),
            "accounts.User",
            None,
        ),
        "a membership removed": (
            lambda: Membership.objects.filter(pk=acme["member"]).delete(),
            "accounts.User",
            None,
        ),
        "the other organisation's ticket": (
            lambda: Ticket.objects.filter(pk=globex_ids["ticket"]).update(customer_followers=7),
            None,
            "tickets.Ticket",
        ),
    }
    orgs = (org, other_org)
    for organization in orgs:
        assert set(digest(organization)) == set(digest_per_model(organization))
    before = {o.pk: (digest(o), digest_per_model(o)) for o in orgs}
    for what, (change, ours, theirs) in changes.items():
        with transaction.atomic():
            change()
            after = {o.pk: (digest(o), digest_per_model(o)) for o in orgs}
            transaction.set_rollback(True)
        for organization, expected in ((org, ours), (other_org, theirs)):
            (new, reference), (new_after, reference_after) = (
                before[organization.pk],
                after[organization.pk],
            )
            seen = {k for k in new if new_after[k] != new[k]}
            assert seen == {k for k in reference if reference_after[k] != reference[k]}, what
            assert seen >= ({expected} if expected else set()), what
            if expected is None:
                assert seen == set(), what
