"""The data migration from one SLA policy per organisation: it becomes the first of its list,
24/7 in UTC, and running timers follow it, warn at 75 % and read "running"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("monitoring", "0001_initial"), ("tickets", "0004_event_kind_open_set")]


def _migrate(targets: list[tuple[str, str]] | None):  # type: ignore[no-untyped-def]
    """Migrate to ``targets`` in one plan (None: the latest of everything): one walk over the
    migrations' states, which is most of the time the round trip takes, not one per target."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    executor.loader.build_graph()
    final = targets or executor.loader.graph.leaf_nodes()
    return executor.loader.project_state(final).apps


def test_one_policy_per_organisation_becomes_an_ordered_list() -> None:
    old = _migrate(BEFORE)
    try:
        org = old.get_model("accounts", "Organization").objects.create(name="Old", slug="old")
        brand = old.get_model("channels_social", "Brand").objects.create(
            organization=org, name="Old"
        )
        account = old.get_model("channels_social", "SocialAccount").objects.create(
            organization=org, brand=brand, platform="x", external_id="9", username="old"
        )
        started = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        ticket = old.get_model("tickets", "Ticket").objects.create(
            organization=org,
            brand=brand,
            social_account=account,
            platform="x",
            priority=2,
            customer_external_id="1",
            customer_username="jo",
            opened_at=started,
            sla_due_at=started + timedelta(minutes=20),
        )
        old.get_model("monitoring", "SlaPolicy").objects.create(
            organization=org, first_response_minutes=20
        )
        old.get_model("monitoring", "SlaTimer").objects.create(
            organization=org,
            ticket=ticket,
            metric="first_response",
            target_minutes=20,
            started_at=started,
            due_at=started + timedelta(minutes=20),
            state="active",
        )
    finally:
        new = _migrate(None)
    [policy] = new.get_model("monitoring", "SlaPolicy").objects.all()
    assert (policy.name, policy.position, policy.first_response_minutes) == ("Default", 0, 20)
    assert policy.time_zone == "UTC" and policy.calendar["hours"]["sat"] == "00:00-24:00"
    [timer] = new.get_model("monitoring", "SlaTimer").objects.all()
    assert (timer.state, timer.policy_id) == ("running", policy.pk)
    assert timer.warn_at == started + timedelta(minutes=15)
    migrated = new.get_model("tickets", "Ticket").objects.get()
    assert migrated.sla_risk_at == started + timedelta(minutes=20) - timedelta(minutes=30)
