"""Customer profiles through the services and the web views: handle, name, links to the
profile and the posts, reach, verified, every ticket; contact details and notes an agent
records; linking one person's X and Facebook identities (and unlinking); the organisation's
threading settings; another organisation's ids are a 404; the profile's query count is fixed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse

from careinbox.accounts.models import AuditEntry
from channels_social.models import Platform, SocialAccount
from tests.conftest import Persona
from tests.factories import SocialAccountFactory
from tests.test_threading import START, post
from tickets.models import (
    Customer,
    CustomerEvent,
    CustomerEventKind,
    CustomerIdentity,
    MessageKind,
    ThreadingSettings,
    Ticket,
)
from tickets.services import ingest_posts
from tickets.services.customers import CustomerError, customer_link, customer_update_contact

pytestmark = pytest.mark.django_db


@pytest.fixture
def x_account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


@pytest.fixture
def page(make_account: Callable[..., SocialAccount], x_account: SocialAccount) -> SocialAccount:
    return make_account(
        platform=Platform.FACEBOOK, external_id="500", username="Acme", brand=x_account.brand
    )


def _dana_on_x(account: SocialAccount, tickets: int = 1) -> Customer:
    for n in range(tickets):
        ingest_posts(
            account,
            [post(f"complaint number {n} about order {n}", at=START + timedelta(days=3 * n),
                  followers=1200, verified=True)],
        )  # fmt: skip
    return CustomerIdentity.objects.get(platform=Platform.X, external_id="2001").customer


def _dana_on_facebook(page: SocialAccount) -> Customer:
    ingest_posts(
        page,
        [post("The blender broke", author="fb-77", username="Dana Smith",
              kind=MessageKind.VISITOR_POST, external_id="500_9", followers=0)],
    )  # fmt: skip
    return CustomerIdentity.objects.get(platform=Platform.FACEBOOK).customer


def test_the_profile_shows_identities_links_reach_and_every_ticket(
    x_account: SocialAccount, agent: Persona
) -> None:
    customer = _dana_on_x(x_account, tickets=2)
    ticket = Ticket.objects.order_by("pk").first()
    assert ticket is not None and ticket.root_message is not None
    html = agent.client().get(reverse("tickets:customer", args=[customer.pk])).content.decode()
    assert "https://x.com/dana" in html  # the profile on X
    assert f"https://x.com/dana/status/{ticket.root_message.external_id}" in html  # the post
    assert "1,200 followers" in html and "verified" in html
    for t in Ticket.objects.all():
        assert f'href="/tickets/{t.pk}/"' in html
    assert "2 tickets, 2 open" in html


def test_the_ticket_page_shows_the_customer_sidebar(
    x_account: SocialAccount, agent: Persona
) -> None:
    customer = _dana_on_x(x_account, tickets=2)
    first, second = Ticket.objects.order_by("pk")
    html = agent.client().get(reverse("tickets:detail", args=[second.pk])).content.decode()
    assert f'href="/customers/{customer.pk}/"' in html
    assert 'href="https://x.com/dana"' in html
    assert f'href="/tickets/{first.pk}/"' in html  # their other ticket


# One baseline per view (NetBox's way): a new query per ticket shows at once.
PROFILE_QUERIES = 10


@pytest.mark.parametrize("tickets", [1, 12])
def test_the_profile_query_count_does_not_grow_with_tickets(
    x_account: SocialAccount,
    page: SocialAccount,
    agent: Persona,
    tickets: int,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    customer = _dana_on_x(x_account, tickets=tickets)
    customer_link(
        customer=customer, identity=_dana_on_facebook(page).identities.get(), by=agent.user
    )
    customer_update_contact(customer=customer, by=agent.user, email="dana@example.com")
    client = agent.client()
    with django_assert_max_num_queries(PROFILE_QUERIES):
        response = client.get(reverse("tickets:customer", args=[customer.pk]), {"q": "dan"})
    assert response.status_code == 200
    assert response.content.decode().count('href="/tickets/') == tickets + 1


# Contact details and notes --------------------------------------------------------------------


def test_contact_details_taken_offline_are_kept_and_recorded(
    x_account: SocialAccount, agent: Persona
) -> None:
    customer = _dana_on_x(x_account)
    url = reverse("tickets:customer-contact", args=[customer.pk])
    data = {"email": "dana@example.com", "phone": "+44 20 7946 0000", "order_number": "A-1234"}
    response = agent.client().post(url, data)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.email, customer.phone, customer.order_number) == tuple(data.values())
    event = CustomerEvent.objects.get(customer=customer)
    assert (event.kind, event.actor) == (CustomerEventKind.CONTACT_UPDATED, agent.user)
    assert event.data == {"before": {k: "" for k in data}, "after": data}
    # The same values again record nothing.
    agent.client().post(url, data)
    assert CustomerEvent.objects.filter(customer=customer).count() == 1


def test_a_bad_email_is_refused_and_nothing_changes(
    x_account: SocialAccount, agent: Persona
) -> None:
    customer = _dana_on_x(x_account)
    response = agent.client().post(
        reverse("tickets:customer-contact", args=[customer.pk]),
        {"email": "not an address", "phone": "123"},
    )
    assert response.status_code == 422
    assert "Enter a valid email address" in response.content.decode()
    customer.refresh_from_db()
    assert (customer.email, customer.phone) == ("", "")
    with pytest.raises(CustomerError, match="not an e-mail address"):
        customer_update_contact(customer=customer, by=agent.user, email="nope")
    assert not CustomerEvent.objects.exists()


def test_notes_are_kept_with_their_author(x_account: SocialAccount, agent: Persona) -> None:
    customer = _dana_on_x(x_account)
    url = reverse("tickets:customer-note", args=[customer.pk])
    agent.client().post(url, {"text": "Prefers e-mail; VIP since 2019"})
    assert agent.client().post(url, {"text": "   "}).status_code == 422
    note = customer.notes.get()
    assert (note.text, note.author) == ("Prefers e-mail; VIP since 2019", agent.user)
    assert CustomerEvent.objects.filter(kind=CustomerEventKind.NOTE_ADDED).count() == 1
    html = agent.client().get(reverse("tickets:customer", args=[customer.pk])).content.decode()
    assert "Prefers e-mail; VIP since 2019" in html


# Linking identities ---------------------------------------------------------------------------


def test_an_agent_links_the_same_persons_x_and_facebook_and_unlinks_them(
    x_account: SocialAccount, page: SocialAccount, agent: Persona
) -> None:
    on_x = _dana_on_x(x_account)
    on_facebook = _dana_on_facebook(page)
    customer_update_contact(customer=on_facebook, by=agent.user, phone="+44 1")
    facebook = on_facebook.identities.get()
    client = agent.client()
    found = client.get(reverse("tickets:customer", args=[on_x.pk]), {"q": "Dana Smith"})
    assert f'name="identity" value="{facebook.pk}"' in found.content.decode()
    response = client.post(
        reverse("tickets:customer-link", args=[on_x.pk]), {"identity": facebook.pk}
    )
    assert response.status_code == 302
    assert not Customer.objects.filter(pk=on_facebook.pk).exists()
    on_x.refresh_from_db()
    assert {i.platform for i in on_x.identities.all()} == {Platform.X, Platform.FACEBOOK}
    assert set(Ticket.objects.values_list("customer", flat=True)) == {on_x.pk}
    assert on_x.phone == "+44 1"  # taken from the linked customer, which had it
    linked = on_x.events.get(kind=CustomerEventKind.IDENTITY_LINKED)
    assert (linked.actor, linked.data["tickets"]) == (agent.user, 1)
    html = client.get(reverse("tickets:customer", args=[on_x.pk])).content.decode()
    assert "https://www.facebook.com/profile.php?id=fb-77" in html
    # Unlinked: Facebook is a customer of its own again, with its ticket.
    client.post(reverse("tickets:customer-unlink", args=[on_x.pk, facebook.pk]))
    facebook.refresh_from_db()
    assert facebook.customer_id != on_x.pk
    assert Ticket.objects.get(platform=Platform.FACEBOOK).customer_id == facebook.customer_id
    assert Ticket.objects.get(platform=Platform.X).customer_id == on_x.pk
    assert on_x.events.filter(kind=CustomerEventKind.IDENTITY_UNLINKED).count() == 1
    assert facebook.customer.events.filter(kind=CustomerEventKind.IDENTITY_UNLINKED).count() == 1
    # The only identity left cannot be unlinked.
    x_identity = on_x.identities.get()
    response = client.post(reverse("tickets:customer-unlink", args=[on_x.pk, x_identity.pk]))
    assert response.status_code == 422
    assert "only identity" in response.content.decode()


def test_a_new_ticket_of_a_linked_identity_goes_to_the_linked_customer(
    x_account: SocialAccount, page: SocialAccount, agent: Persona
) -> None:
    on_x = _dana_on_x(x_account)
    customer_link(customer=on_x, identity=_dana_on_facebook(page).identities.get(), by=agent.user)
    ingest_posts(
        page,
        [post("Now the toaster too", author="fb-77", username="Dana Smith",
              kind=MessageKind.VISITOR_POST, external_id="500_10", at=START + timedelta(days=9))],
    )  # fmt: skip
    assert set(Ticket.objects.values_list("customer", flat=True)) == {on_x.pk}


def test_another_organisations_customers_and_identities_are_a_404(
    x_account: SocialAccount, agent: Persona, outsider: Persona
) -> None:
    ours = _dana_on_x(x_account)
    theirs_account = SocialAccountFactory(brand__organization=outsider.organization)
    ingest_posts(theirs_account, [post("their complaint", author="9009", username="zed")])
    theirs = CustomerIdentity.objects.get(external_id="9009")
    identity = ours.identities.get()
    for url, data in [
        (reverse("tickets:customer-contact", args=[ours.pk]), {"email": "x@example.com"}),
        (reverse("tickets:customer-note", args=[ours.pk]), {"text": "hi"}),
        (reverse("tickets:customer-link", args=[ours.pk]), {"identity": identity.pk}),
        (reverse("tickets:customer-unlink", args=[ours.pk, identity.pk]), {}),
    ]:
        assert outsider.client().post(url, data).status_code == 404
    assert outsider.client().get(reverse("tickets:customer", args=[ours.pk])).status_code == 404
    # Our agent cannot pull their identity in, nor search their customers.
    response = agent.client().post(
        reverse("tickets:customer-link", args=[ours.pk]), {"identity": theirs.pk}
    )
    assert response.status_code == 404
    found = agent.client().get(reverse("tickets:customer", args=[ours.pk]), {"q": "zed"})
    assert "@zed" not in found.content.decode()
    ours.refresh_from_db()
    assert (ours.email, ours.identities.count()) == ("", 1)
    assert not CustomerEvent.objects.exists()


# Threading settings ---------------------------------------------------------------------------


def test_an_admin_sets_the_threading_windows_audited(org_admin: Persona, agent: Persona) -> None:
    url = reverse("tickets:settings-threading")
    assert agent.client().get(url).status_code == 404
    client = org_admin.client()
    assert "Threading" in client.get(reverse("accounts:settings")).content.decode()
    data = {
        "duplicate_window_hours": 24,
        "join_similarity": 85,
        "offer_similarity": 65,
        "reopen_window_days": 3,
    }
    assert client.post(url, data).status_code == 302
    saved = ThreadingSettings.objects.get(organization=org_admin.organization)
    assert (saved.reopen_window_days, saved.join_similarity) == (3, 85)
    entry = AuditEntry.objects.get(object_type="threading settings")
    assert (entry.action, entry.actor, entry.after["reopen_window_days"]) == (
        "created",
        org_admin.user,
        3,
    )
    bad = client.post(url, {**data, "offer_similarity": 95})
    assert bad.status_code == 422
    assert "cannot be above the join threshold" in bad.content.decode()
    assert client.post(url, {**data, "join_similarity": 150}).status_code == 422
    saved.refresh_from_db()
    assert saved.join_similarity == 85


# The data migration ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_existing_tickets_get_one_customer_per_identity() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("tickets", "0013_customers_threading_merge")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    try:
        org = old.get_model("accounts", "Organization").objects.create(name="Old", slug="old")
        brand = old.get_model("channels_social", "Brand").objects.create(organization=org, name="B")
        account = old.get_model("channels_social", "SocialAccount").objects.create(
            organization=org, brand=brand, platform="x", external_id="9", username="old"
        )
        Ticket_ = old.get_model("tickets", "Ticket")
        common = {"organization": org, "brand": brand, "social_account": account, "platform": "x"}
        for n, (customer, name) in enumerate([("1", "jo"), ("1", "jo_new"), ("2", "sam")]):
            Ticket_.objects.create(
                **common,
                customer_external_id=customer,
                customer_username=name,
                customer_followers=10 * n,
                opened_at=START + timedelta(days=n),
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    jo = CustomerIdentity.objects.get(external_id="1")
    assert (jo.username, jo.followers) == ("jo_new", 10)  # the newest ticket's
    assert Ticket.objects.filter(customer=jo.customer).count() == 2
    assert CustomerIdentity.objects.get(external_id="2").customer.display_name == "sam"
    assert not Ticket.objects.filter(customer__isnull=True).exists()
