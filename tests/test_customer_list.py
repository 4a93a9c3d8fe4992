"""The customer list: search by name, handle and contact details, filter by VIP and platform,
25 a page, each row linking to the profile, at a fixed number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from careinbox.accounts.models import Organization
from channels_social.models import Platform
from tests.conftest import Persona
from tests.factories import CustomerFactory, CustomerIdentityFactory, TicketFactory
from tickets.models import PriorityRules, Status

URL = reverse("tickets:customers")


def _customer(org: Organization, name: str, username: str, **kwargs: object):  # type: ignore[no-untyped-def]
    platform = kwargs.pop("platform", Platform.X)
    customer = CustomerFactory(organization=org, display_name=name, **kwargs)
    CustomerIdentityFactory(customer=customer, username=username, platform=platform)
    return customer


def _names(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [row["customer"].display_name for row in response.context["rows"]]


def test_search_by_name_handle_and_contact_details(agent: Persona, outsider: Persona) -> None:
    org = agent.organization
    dana = _customer(org, "Dana Lee", "danalee", email="dana@example.com")
    _customer(org, "Sam Green", "samg", phone="+44 7700 900123", order_number="A-5521")
    _customer(org, "Ravi Patel", "rpatel", platform=Platform.FACEBOOK)
    _customer(outsider.organization, "Dana Other", "dana_elsewhere")
    client = agent.client()

    page = client.get(URL)
    assert page.status_code == 200
    assert sorted(_names(page)) == ["Dana Lee", "Ravi Patel", "Sam Green"]  # ours only
    assert f'href="{reverse("tickets:customer", args=[dana.pk])}"' in page.content.decode()
    assert _names(client.get(URL, {"q": "dana"})) == ["Dana Lee"]
    assert _names(client.get(URL, {"q": "@samg"})) == ["Sam Green"]  # the handle, with @
    assert _names(client.get(URL, {"q": "dana@example"})) == ["Dana Lee"]  # e-mail
    assert _names(client.get(URL, {"q": "900123"})) == ["Sam Green"]  # phone
    assert _names(client.get(URL, {"q": "a-5521"})) == ["Sam Green"]  # order number
    assert _names(client.get(URL, {"q": "lee dana"})) == ["Dana Lee"]  # every word
    assert _names(client.get(URL, {"q": "nobody-like-this"})) == []
    assert "No customer matches." in client.get(URL, {"q": "zzz"}).content.decode()
    assert _names(client.get(URL, {"platform": "facebook"})) == ["Ravi Patel"]
    # A bad filter value is ignored, not an error.
    assert client.get(URL, {"platform": "myspace"}).status_code == 200


def test_vip_filter_and_badge_come_from_the_priority_rules(agent: Persona) -> None:
    org = agent.organization
    _customer(org, "Big Co", "BigCo")
    _customer(org, "Small Fry", "small")
    PriorityRules.objects.create(organization=org, vip_handles=["bigco"])
    response = agent.client().get(URL, {"vip": "on"})
    assert _names(response) == ["Big Co"]
    assert 'class="badge vip">VIP<' in response.content.decode()


def test_ticket_counts_and_pagination(agent: Persona) -> None:
    org = agent.organization
    for n in range(30):
        _customer(org, f"Person {n:02}", f"p{n:02}")
    first = CustomerFactory(organization=org, display_name="With tickets")
    CustomerIdentityFactory(customer=first, username="withtickets")
    TicketFactory(social_account__brand__organization=org, customer=first)
    TicketFactory(social_account__brand__organization=org, customer=first, status=Status.CLOSED)
    client = agent.client()
    page_one = client.get(URL)
    assert len(page_one.context["rows"]) == 25
    assert page_one.context["page"].paginator.count == 31
    page_two = client.get(URL, {"page": "2"})
    assert len(page_two.context["rows"]) == 6
    found = client.get(URL, {"q": "withtickets"})
    assert found.context["rows"][0]["customer"].ticket_count == 2
    assert found.context["rows"][0]["customer"].open_count == 1
    assert "2 <small>(1 open)</small>" in found.content.decode()
    # The page links keep the filters.
    filtered = client.get(URL, {"q": "person"})
    assert "?q=person&amp;page=2" in filtered.content.decode()


@pytest.mark.parametrize("filters", [{}, {"q": "person"}, {"vip": "on", "platform": "x"}])
def test_the_list_costs_the_same_queries_for_3_or_30_customers(
    agent: Persona, filters: dict[str, str]
) -> None:
    org = agent.organization
    PriorityRules.objects.create(organization=org, vip_handles=["p01"])
    client = agent.client()
    client.get(URL)  # warm the session and the middleware's lookups

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL, filters).status_code == 200
        return len(queries)

    for n in range(3):
        customer = _customer(org, f"Person {n:02}", f"p{n:02}", email=f"p{n}@example.com")
        CustomerIdentityFactory(customer=customer, platform=Platform.FACEBOOK)
        TicketFactory(social_account__brand__organization=org, customer=customer)
    few = count()
    for n in range(3, 30):
        customer = _customer(org, f"Person {n:02}", f"p{n:02}")
        CustomerIdentityFactory(customer=customer, platform=Platform.FACEBOOK)
        TicketFactory(social_account__brand__organization=org, customer=customer)
    many = count()
    assert few == many
    assert many <= 10


def test_the_list_is_for_members(outsider: Persona) -> None:
    from django.test import Client

    response = Client().get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert outsider.client().get(URL).status_code == 200  # their own (empty) list
