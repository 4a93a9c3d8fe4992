"""Who reaches the settings sections: an org admin only (others 404, anonymous to sign-in), and
never another organisation's objects; the home lists every section with its description."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from careinbox.accounts.models import Membership, Team
from careinbox.settings_area import sections_for
from tests.conftest import Persona

pytestmark = pytest.mark.django_db

PAGES = [
    ("accounts:settings", {}),
    ("accounts:members", {}),
    ("accounts:teams", {}),
    ("accounts:organization", {}),
    ("accounts:audit", {}),
]


@pytest.fixture
def team(org) -> Team:  # type: ignore[no-untyped-def]
    return Team.objects.create(organization=org, name="Billing")


@pytest.mark.parametrize(("name", "kwargs"), PAGES)
def test_each_page_is_for_the_org_admin_only(
    name: str, kwargs: dict[str, int], org_admin: Persona, manager: Persona, agent: Persona
) -> None:
    url = reverse(name, kwargs=kwargs)
    page = org_admin.client().get(url)
    assert page.status_code == 200
    assert "← Back to the inbox" in page.content.decode()
    assert manager.client().get(url).status_code == 404
    assert agent.client().get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))


def test_the_team_page_too(team: Team, org_admin: Persona, manager: Persona) -> None:
    url = reverse("accounts:team", kwargs={"pk": team.pk})
    assert org_admin.client().get(url).status_code == 200
    assert manager.client().get(url).status_code == 404
    assert Client().get(url).status_code == 302


def test_an_admin_of_another_org_gets_404_for_our_ids(
    team: Team, agent: Persona, other_org, outsider: Persona
) -> None:  # type: ignore[no-untyped-def]
    Membership.objects.filter(user=outsider.user).update(role="admin")
    client = outsider.client()
    alice = Membership.objects.get(user=agent.user)
    assert client.get(reverse("accounts:team", kwargs={"pk": team.pk})).status_code == 404
    posts = [
        (reverse("accounts:team", kwargs={"pk": team.pk}), {"name": "Mine now"}),
        (reverse("accounts:team-delete", kwargs={"pk": team.pk}), {}),
        (reverse("accounts:member-role", kwargs={"pk": alice.pk}), {"role": "admin"}),
        (reverse("accounts:member-active", kwargs={"pk": alice.pk}), {"active": "0"}),
        (
            reverse("accounts:member-availability", kwargs={"pk": alice.pk}),
            {"capacity": "1", "is_away": "on"},
        ),
        (reverse("accounts:member-resend", kwargs={"pk": alice.pk}), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
    team.refresh_from_db()
    alice.refresh_from_db()
    assert team.name == "Billing"
    assert (alice.role, alice.is_active) == ("agent", True)
    assert (alice.is_away, alice.capacity) == (False, 20)
    # Our admin adding another organisation's member to our team: a refused choice.
    olga = Membership.objects.get(user=outsider.user)
    admin = Persona(user=agent.user, organization=agent.organization, role="admin")
    Membership.objects.filter(user=agent.user).update(role="admin")
    response = admin.client().post(
        reverse("accounts:team-member-add", kwargs={"pk": team.pk}), {"membership": olga.pk}
    )
    assert response.status_code == 422
    assert list(team.members.all()) == []
    remove = reverse("accounts:team-member-remove", kwargs={"pk": team.pk, "member_pk": olga.pk})
    assert admin.client().post(remove).status_code == 404


def test_home_lists_every_registered_section_with_its_description(org_admin: Persona) -> None:
    page = org_admin.client().get(reverse("accounts:settings")).content.decode()
    membership = Membership.objects.get(user=org_admin.user)
    sections = sections_for(membership)
    keys = [section.key for section in sections]
    assert keys[:3] == ["members", "teams", "organization"] and keys[-1] == "audit"
    for section in sections:
        assert escape(section.label) in page
        assert section.description and escape(section.description) in page
