"""schemathesis against our own OpenAPI schema, in-process through WSGI: for every operation a
bounded number of generated requests (valid and invalid), as an agent and as an admin; no answer
may be a 5xx or break the schema (status codes, content types, bodies, headers)."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from careinbox.accounts.models import Membership, Role
from careinbox.api.models import ApiToken
from careinbox.wsgi import application
from tests.factories import (
    InboundMessageFactory,
    MembershipFactory,
    OrganizationFactory,
    SocialAccountFactory,
    TicketFactory,
    UserFactory,
)


def _load_schema() -> schemathesis.schemas.BaseSchema:
    """Our schema as drf-spectacular generates it (pytest-django has set Django up by now),
    called through the WSGI app in-process."""
    raw = json.loads(
        json.dumps(SchemaGenerator().get_schema(request=None, public=True), cls=DjangoJSONEncoder)
    )
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = application
    # NUL is refused in every string with a 400 (Django and DRF), which a JSON schema cannot
    # say; ``test_a_nul_character_is_a_clear_400`` proves that answer, so the fuzzer skips NUL.
    loaded.config.generation.allow_x00 = False
    return loaded


schema = _load_schema()


@pytest.fixture(autouse=True)
def _in_process_requests(settings):  # type: ignore[no-untyped-def]
    """Like Django's test client: requests must not close the test's database connection."""
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


EXAMPLES = 12


@pytest.fixture
def admin_token(db: None) -> str:
    organization = OrganizationFactory(slug="fuzz")
    user = UserFactory(username="fuzz-admin")
    membership = MembershipFactory(user=user, organization=organization, role=Role.ADMIN)
    account = SocialAccountFactory(brand__organization=organization)
    for _ in range(3):
        ticket = TicketFactory(social_account=account)
        InboundMessageFactory(ticket=ticket, text="Order late 😡 <script>alert(1)</script>")
    # Another organisation's rows, so that every id the generator tries may hit one.
    TicketFactory()
    assert isinstance(membership, Membership)
    return ApiToken.issue(membership, "fuzz")[1]


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_operation_breaks_the_schema_or_the_server(
    case: schemathesis.Case, admin_token: str
) -> None:
    excluded = []
    if case.operation.path.startswith("/api/v1/escalation-rules/") and case.method in {
        "POST",
        "PATCH",
    }:
        # A rule's meaning (at least one condition, levels later than the one before, each
        # with an action) is the settings form's to judge, and no JSON schema can say it: a
        # well-formed rule may still be a 400 with the form's reason. Every other check (no
        # 5xx, documented status codes and bodies) still runs on these operations.
        excluded.append(schemathesis.checks.positive_data_acceptance)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_token}"}, excluded_checks=excluded
    )


@pytest.mark.django_db
def test_a_nul_character_is_a_clear_400(admin_token: str) -> None:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_token}")
    response = client.post(
        "/api/v1/auth/token/", {"username": "a\x00b", "password": "x"}, format="json"
    )
    assert response.status_code == 400 and "username" in response.json()["fields"]
