"""Teams, the organisation and the audit trail through the web views; the demo's Care team."""

from __future__ import annotations

import io
import re
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.demo_seed import DEMO_TEAM_NAME, seed_demo_team
from careinbox.accounts.models import AuditEntry, Membership, Organization, Role, Team
from careinbox.audit import record_change
from tests.conftest import Persona
from tests.factories import MembershipFactory, TicketFactory
from tickets.models import EventKind

pytestmark = pytest.mark.django_db


def _entries(org: Organization) -> list[tuple[str, dict[str, object], dict[str, object]]]:
    return [
        (entry.action, entry.before, entry.after)
        for entry in AuditEntry.objects.filter(organization=org).order_by("pk")
    ]


def test_team_create_rename_members_and_delete_each_audited(
    org, org_admin: Persona, agent: Persona, manager: Persona
) -> None:  # type: ignore[no-untyped-def]
    client = org_admin.client()
    created = client.post(reverse("accounts:teams"), {"name": "  Billing "})
    team = Team.objects.get(organization=org)
    assert created["Location"] == reverse("accounts:team", kwargs={"pk": team.pk})
    assert team.name == "Billing"
    duplicate = client.post(reverse("accounts:teams"), {"name": "billing"}, HTTP_HX_REQUEST="true")
    assert duplicate.status_code == 422 and "There is a team called billing" in duplicate.text

    url = reverse("accounts:team", kwargs={"pk": team.pk})
    renamed = client.post(url, {"name": "Billing & refunds"}, HTTP_HX_REQUEST="true")
    assert renamed.status_code == 200 and 'id="team-panel"' in renamed.text
    alice = Membership.objects.get(user=agent.user)
    mark = Membership.objects.get(user=manager.user)
    add = reverse("accounts:team-member-add", kwargs={"pk": team.pk})
    assert client.post(add, {"membership": alice.pk}, HTTP_HX_REQUEST="true").status_code == 200
    assert client.post(add, {"membership": mark.pk}).status_code == 302
    # Only members not in the team yet are offered (and accepted).
    assert client.post(add, {"membership": mark.pk}).status_code == 422
    remove = reverse("accounts:team-member-remove", kwargs={"pk": team.pk, "member_pk": mark.pk})
    assert client.post(remove, HTTP_HX_REQUEST="true").status_code == 200
    assert list(Team.objects.get(pk=team.pk).members.all()) == [alice]

    ticket = TicketFactory(social_account__brand__organization=org, team=team)
    deleted = client.post(reverse("accounts:team-delete", kwargs={"pk": team.pk}))
    assert deleted["Location"] == reverse("accounts:teams")
    assert not Team.objects.filter(pk=team.pk).exists()
    ticket.refresh_from_db()
    assert ticket.team is None
    # The ticket keeps working: its page opens and it can be assigned as before.
    assert (
        agent.client().get(reverse("tickets:detail", kwargs={"pk": ticket.pk})).status_code == 200
    )
    ticket.assign(agent.user, by=org_admin.user)
    assert ticket.events.filter(kind=EventKind.ASSIGNED).exists()

    alice_label, mark_label = "alice", "mark"
    assert _entries(org) == [
        ("created", {}, {"name": "Billing"}),
        ("updated", {"name": "Billing"}, {"name": "Billing & refunds"}),
        ("updated", {"members": []}, {"members": [alice_label]}),
        ("updated", {"members": [alice_label]}, {"members": [alice_label, mark_label]}),
        ("updated", {"members": [alice_label, mark_label]}, {"members": [alice_label]}),
        ("deleted", {"name": "Billing & refunds", "members": [alice_label]}, {}),
    ]
    assert {entry.actor for entry in AuditEntry.objects.all()} == {org_admin.user}


def test_organisation_name_and_time_zone_validated_and_audited(org, org_admin: Persona) -> None:  # type: ignore[no-untyped-def]
    client = org_admin.client()
    page = client.get(reverse("accounts:organization")).text
    assert 'list="time-zones"' in page and '<option value="Europe/Berlin">' in page
    bad = client.post(reverse("accounts:organization"), {"name": "Acme", "time_zone": "Mars/Base"})
    assert bad.status_code == 422 and "is not an IANA time zone" in bad.text
    near = client.post(reverse("accounts:organization"), {"name": "A", "time_zone": "Europe/Lon"})
    assert "did you mean Europe/London" in near.text
    assert 'value="Mars/Base"' in bad.text  # the input comes back to correct
    ok = client.post(
        reverse("accounts:organization"), {"name": "Acme Ltd", "time_zone": "Europe/Berlin"}
    )
    assert ok.status_code == 302
    org.refresh_from_db()
    assert (org.name, org.time_zone) == ("Acme Ltd", "Europe/Berlin")
    before = {"name": "Acme", "time_zone": "UTC"}
    after = {"name": "Acme Ltd", "time_zone": "Europe/Berlin"}
    assert _entries(org) == [("updated", before, after)]
    client.post(
        reverse("accounts:organization"), {"name": "Acme Ltd", "time_zone": "Europe/Berlin"}
    )
    assert len(_entries(org)) == 1  # saving unchanged values records nothing


def test_audit_trail_newest_first_paginated_filtered_and_escaped(
    org, org_admin: Persona, manager: Persona, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for number in range(30):
        record_change(
            org, org_admin.user, "created", object_type="team", after={"name": f"Team-{number:02}"}
        )
    record_change(
        org,
        manager.user,
        "updated",
        object_type="SLA policy",
        before={"name": "<script>alert(1)</script>"},
        after={"name": "Safe"},
    )
    record_change(org, None, "created", object_type="organization", after={"name": "x"})
    # Shown in the organisation's time zone.
    Organization.objects.filter(pk=org.pk).update(time_zone="Asia/Kolkata")
    newest = AuditEntry.objects.filter(organization=org).first()
    assert newest is not None
    shown = timezone.localtime(newest.created_at, ZoneInfo("Asia/Kolkata"))
    client = org_admin.client()
    with django_assert_num_queries(7):
        page = client.get(reverse("accounts:audit")).text
    assert "32 changes" in page and "Page 1 of 2" in page
    assert shown.strftime("%H:%M:%S") in page and "Asia/Kolkata time" in page
    first_row = page.index("(system)")
    assert first_row < page.index("&lt;script&gt;alert(1)&lt;/script&gt;") < page.index("Team-29")
    assert "<script>alert(1)</script>" not in page
    assert re.search(r"<dd><del>&lt;script&gt;.*?</del> → <ins>Safe</ins></dd>", page)

    older = client.get(reverse("accounts:audit"), {"page": 2}).text
    assert "Team-00" in older and "Team-29" not in older

    by_manager = client.get(reverse("accounts:audit"), {"actor": manager.user.pk}).text
    assert "1 change" in by_manager and "Team-" not in by_manager
    teams_only = client.get(
        reverse("accounts:audit"), {"object_type": "team", "page": 2}, HTTP_HX_REQUEST="true"
    ).text
    assert teams_only.lstrip().startswith('<section id="audit-table"')
    assert "30 changes" in teams_only and "object_type=team&amp;page=1" in teams_only
    # Another organisation's trail is not ours.
    other = Organization.objects.create(name="Globex", slug="globex")
    record_change(other, None, "created", object_type="team", after={"name": "Theirs"})
    assert "Theirs" not in client.get(reverse("accounts:audit"), {"page": 1}).text


def test_seed_demo_gives_the_demo_org_its_care_team_once() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    [team] = Team.objects.filter(name=DEMO_TEAM_NAME)
    # The agents (seed_demo_team), and the manager too: the demo's round-robin routing
    # (tickets.demo.seed_demo_teamwork) hands new tickets to both.
    usernames = sorted(m.user.username for m in team.members.all())
    assert usernames == ["agent", "manager"]


def test_demo_care_team_holds_the_agents_and_is_rerun_safe(org, agent: Persona) -> None:
    MembershipFactory(organization=org, role=Role.MANAGER)
    team = seed_demo_team(org)
    again = seed_demo_team(org)
    assert team.pk == again.pk and team.name == DEMO_TEAM_NAME
    assert Team.objects.filter(organization=org).count() == 1
    assert [m.user for m in team.members.all()] == [agent.user]
