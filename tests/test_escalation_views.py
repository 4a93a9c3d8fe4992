"""The "Escalation rules" settings section: admins only, another organisation's rule a 404,
every change audited, the form's checks, and the dry run (htmx partial and plain POST)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from careinbox.accounts.models import AuditEntry, Organization, Role, Team
from monitoring.models import EscalationRule, Metric
from tests.conftest import Persona, _persona
from tests.factories import InboundMessageFactory, TicketFactory
from tickets.models import Priority

pytestmark = pytest.mark.django_db


def _post_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "First response at risk",
        "enabled": "on",
        "position": "0",
        "c_sla_metric": Metric.FIRST_RESPONSE,
        "c_sla_state": "warning",
        "l1_after_minutes": "0",
        "l1_notify_roles": [Role.AGENT],
        "l1_add_tag": "At Risk",
        "l2_after_minutes": "15",
        "l2_notify_roles": [Role.MANAGER],
        "l2_raise_priority": str(Priority.URGENT),
        "l2_webhook_url": "https://hooks.example.com/services/T0/B0/secret-path",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def other_admin(other_org: Organization) -> Persona:
    return _persona(other_org, Role.ADMIN, "oscar")


def test_only_admins_reach_the_section(
    org_admin: Persona, manager: Persona, agent: Persona
) -> None:
    url = reverse("escalation:rules")
    assert org_admin.client().get(url).status_code == 200
    assert manager.client().get(url).status_code == 404
    assert agent.client().get(url).status_code == 404
    assert manager.client().post(reverse("escalation:create"), _post_data()).status_code == 404
    assert not EscalationRule.objects.exists()
    home = org_admin.client().get(reverse("accounts:settings")).content.decode()
    assert f'href="{url}"' in home  # registered as a settings section


def test_an_admin_writes_a_two_level_rule_and_it_is_audited(
    org: Organization, org_admin: Persona
) -> None:
    client = org_admin.client()
    response = client.post(reverse("escalation:create"), _post_data())
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = EscalationRule.objects.get(organization=org)
    assert rule.conditions == [{"kind": "sla", "metric": "first_response", "state": "warning"}]
    assert rule.levels == [
        {"after_minutes": 0, "actions": {"notify_roles": ["agent"], "add_tag": "at risk"}},
        {
            "after_minutes": 15,
            "actions": {
                "notify_roles": ["manager"],
                "webhook_url": "https://hooks.example.com/services/T0/B0/secret-path",
                "raise_priority": 1,
            },
        },
    ]
    entry = AuditEntry.objects.get(organization=org, action="created")
    assert entry.actor == org_admin.user and entry.object_type == "escalation rule"
    assert entry.after["levels"][1]["actions"]["webhook_url"] == "https://hooks.example.com/…"
    assert "secret-path" not in str(entry.after)

    page = client.get(reverse("escalation:rules")).content.decode()
    assert "First response SLA at risk" in page and "raise priority to Urgent" in page

    edit = reverse("escalation:edit", args=[rule.pk])
    form = client.get(edit).content.decode()
    assert 'value="at risk"' in form  # the stored rule comes back into the form
    response = client.post(edit, _post_data(l2_after_minutes="30", enabled=None))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.levels[1]["after_minutes"] == 30 and rule.enabled is False
    update = AuditEntry.objects.get(organization=org, action="updated")
    assert set(update.before) == {"enabled", "levels"} and update.after["enabled"] is False

    assert client.post(reverse("escalation:delete", args=[rule.pk])).status_code == 302
    assert not EscalationRule.objects.exists()
    deleted = AuditEntry.objects.get(organization=org, action="deleted")
    assert deleted.before["name"] == "First response at risk"


def test_another_organisations_rule_is_a_404(org: Organization, other_admin: Persona) -> None:
    rule = EscalationRule.objects.create(
        organization=org,
        name="Acme's",
        conditions=[{"kind": "followers", "at_least": 1}],
        levels=[],
    )
    client = other_admin.client()
    assert client.get(reverse("escalation:edit", args=[rule.pk])).status_code == 404
    assert client.post(reverse("escalation:edit", args=[rule.pk]), _post_data()).status_code == 404
    assert client.post(reverse("escalation:delete", args=[rule.pk])).status_code == 404
    assert (
        client.post(reverse("escalation:dry-run"), {**_post_data(), "rule": rule.pk}).status_code
        == 404
    )
    assert "Acme&#x27;s" not in client.get(reverse("escalation:rules")).content.decode()
    assert EscalationRule.objects.filter(pk=rule.pk).exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"c_sla_metric": ""}, "at least one condition"),
        ({"l2_after_minutes": "0"}, "must come later than level 1"),
        ({"l2_webhook_url": "ftp://example.com/x"}, "http:// or https://"),
        ({"l1_notify_roles": None, "l1_add_tag": ""}, "at least one action"),
        ({"l3_add_tag": "orphan"}, "after how many minutes"),
    ],
)
def test_a_bad_rule_is_refused_in_words_and_nothing_is_saved(
    org_admin: Persona, overrides: dict[str, Any], message: str
) -> None:
    response = org_admin.client().post(reverse("escalation:create"), _post_data(**overrides))
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not EscalationRule.objects.exists() and not AuditEntry.objects.exists()


def test_a_duplicate_name_is_refused(org: Organization, org_admin: Persona) -> None:
    client = org_admin.client()
    assert client.post(reverse("escalation:create"), _post_data()).status_code == 302
    response = client.post(reverse("escalation:create"), _post_data(name="first response AT RISK"))
    assert response.status_code == 422 and "Another rule has this name" in response.content.decode()


def test_the_dry_run_shows_the_count_and_the_first_twenty_linked_and_escaped(
    org: Organization, org_admin: Persona
) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    tickets = [
        TicketFactory(social_account__brand__organization=org, customer_followers=5000 + n)
        for n in range(23)
    ]
    InboundMessageFactory(ticket=tickets[0])
    tickets[0].customer_username = hostile
    tickets[0].save()
    TicketFactory(social_account__brand__organization=org, customer_followers=10)
    data = _post_data(c_sla_metric="", c_followers_at_least="1000", name="", l1_after_minutes="")
    response = org_admin.client().post(reverse("escalation:dry-run"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="dry-run"')  # only the partial
    assert "<strong>23</strong> open tickets match" in page
    assert page.count('href="/tickets/') == 20
    assert hostile not in page and "&lt;img src=x" in page
    assert not EscalationRule.objects.exists()  # a dry run saves nothing

    plain = org_admin.client().post(reverse("escalation:dry-run"), data)
    assert plain.status_code == 200 and "<strong>23</strong>" in plain.content.decode()
    assert "<form" in plain.content.decode()  # the whole form page without htmx


def test_the_form_offers_only_this_organisations_teams_and_people(
    org: Organization, org_admin: Persona, other_admin: Persona, other_org: Organization
) -> None:
    Team.objects.create(organization=org, name="Tier 2")
    Team.objects.create(organization=other_org, name="Globex Secret Team")
    page = org_admin.client().get(reverse("escalation:create")).content.decode()
    assert "Tier 2" in page and "Globex Secret Team" not in page and "oscar" not in page
    other_team = Team.objects.get(name="Globex Secret Team")
    response = org_admin.client().post(
        reverse("escalation:create"), _post_data(l1_assign_team=str(other_team.pk))
    )
    assert response.status_code == 422 and not EscalationRule.objects.exists()
