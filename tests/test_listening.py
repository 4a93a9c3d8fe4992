"""Listening queries: the searches an admin writes per brand, run by tweepy against the X
emulator's recent search, each with its own cursor; matches not addressed to the brand open
tickets under the brand's X handle, marked as found by listening."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from channels_social.base import Stream
from channels_social.models import (
    LISTENING_QUERY_MAX_LENGTH,
    Brand,
    ListeningQuery,
    SocialAccount,
)
from channels_social.services import account_poll, cursor_position
from channels_social.x.adapter import XAdapter
from tests.conftest import Persona
from tests.factories import BrandFactory
from tests.sandbox_fixtures import XSandbox
from tickets.models import Message, Ticket

BRAND = "1000"


def _listen(brand: Brand, query: str, **kwargs: object) -> ListeningQuery:
    return ListeningQuery.objects.create(
        organization=brand.organization, brand=brand, query=query, **kwargs
    )


@pytest.fixture
def account(make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox) -> SocialAccount:
    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    return make_account(external_id=BRAND, username="AcmeCare", api_base_url=x_sandbox_clean.url)


def _searches(sandbox: XSandbox) -> list[dict[str, list[str]]]:
    return [
        e["query"] for e in sandbox.control.requests_log() if e["path"] == "/2/tweets/search/recent"
    ]


@pytest.mark.django_db(transaction=True)
def test_matches_open_tickets_marked_as_found_by_listening_with_a_cursor_per_query(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    hashtag = _listen(account.brand, "#thissucks")
    phrase = _listen(account.brand, '"acme blender"')
    control = x_sandbox_clean.control
    angry = control.post_tweet("2001", "dana", "Day 3 without internet #ThisSucks", followers=50)
    control.post_tweet("2002", "sam", "#thissucksless is a band")  # another hashtag
    blender = control.post_tweet("2003", "lee", "My Acme blender just died")
    control.post_tweet("2004", "kim", "acme and a blender, unrelated")  # not the phrase
    control.post_tweet("2005", "rt", retweet_of=angry["id"])  # retweets are left out
    control.post_tweet(BRAND, "AcmeCare", "Sorry #thissucks folks")  # the brand's own post
    addressed = control.post_mention("AcmeCare", "2006", "ann", 5, "my acme blender #thissucks")

    assert account_poll(account_id=account.pk).startswith("ok: 3 new, 3 tickets")
    tickets = {t.customer_username: t for t in Ticket.objects.all()}
    assert set(tickets) == {"dana", "lee", "ann"}
    assert all(t.social_account_id == account.pk for t in tickets.values())
    found = dict(Message.objects.values_list("author_username", "found_by"))
    assert found == {
        "dana": "listening:#thissucks",
        "lee": 'listening:"acme blender"',
        "ann": "",  # it speaks to the brand: a mention, however it was found
    }
    assert tickets["lee"].root_message.external_id == blender["id"]  # type: ignore[union-attr]
    assert cursor_position(account, Stream.SEARCH, str(hashtag.pk)) == addressed["id"]
    assert cursor_position(account, Stream.SEARCH, str(phrase.pk)) == addressed["id"]

    later = control.post_tweet("2007", "max", "Acme blender smoke #thissucks")
    assert account_poll(account_id=account.pk).startswith("ok: 1 new, 1 tickets")
    queries = _searches(x_sandbox_clean)
    assert queries[0]["query"] == ["#thissucks -is:retweet -from:AcmeCare"]
    assert "start_time" in queries[0] and "since_id" not in queries[0]
    assert [q["since_id"] for q in queries[2:]] == [[addressed["id"]], [addressed["id"]]]
    assert cursor_position(account, Stream.SEARCH, str(hashtag.pk)) == later["id"]


@pytest.mark.django_db(transaction=True)
def test_a_new_query_starts_from_when_it_was_written(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.control.post_tweet(
        "2001",
        "dana",
        "old news #thissucks",
        created_at=(timezone.now() - timedelta(days=2)).isoformat(),
    )
    account.connected_at = timezone.now() - timedelta(days=5)
    account.save()
    _listen(account.brand, "#thissucks")
    assert account_poll(account_id=account.pk).startswith("ok: 0 new")


@pytest.mark.django_db(transaction=True)
def test_only_one_handle_of_a_brand_searches_and_disabled_queries_are_not_run(
    make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    x_sandbox_clean.register_brand(id="1001", username="AcmeHelp")
    first = make_account(external_id=BRAND, username="AcmeCare", api_base_url=x_sandbox_clean.url)
    second = make_account(
        external_id="1001", username="AcmeHelp", api_base_url=x_sandbox_clean.url, brand=first.brand
    )
    query = _listen(first.brand, "acme")
    _listen(first.brand, "globex", enabled=False)
    assert XAdapter(first).stream_keys(Stream.SEARCH) == [str(query.pk)]
    assert XAdapter(second).stream_keys(Stream.SEARCH) == []
    account_poll(account_id=second.pk)
    account_poll(account_id=first.pk)
    assert len(_searches(x_sandbox_clean)) == 1


def test_query_validation() -> None:
    ok = ListeningQuery(query='"acme blender" OR #thissucks -refund')
    ok.clean_fields(exclude=["organization", "brand"])
    for bad, words in (
        ("   ", "cannot be empty"),
        ('"acme blender', "not closed"),
        ("a" * (LISTENING_QUERY_MAX_LENGTH + 1), "X searches at most 512"),
    ):
        with pytest.raises(ValidationError) as error:
            ListeningQuery(query=bad).clean_fields(exclude=["organization", "brand"])
        assert words in str(error.value)
    # The longest query the admin may write still fits X's limit with CareInbox's filters.
    longest = "a" * LISTENING_QUERY_MAX_LENGTH + " -is:retweet -from:" + "h" * 15
    assert len(longest) == 512


@pytest.fixture
def staff_admin(org_admin: Persona) -> Persona:
    org_admin.user.is_staff = True
    org_admin.user.save()
    return org_admin


@pytest.mark.django_db
def test_org_admins_manage_their_own_queries_only(
    staff_admin: Persona, outsider: Persona, agent: Persona
) -> None:
    ours = BrandFactory(organization=staff_admin.organization, name="Acme")
    theirs = BrandFactory(organization=outsider.organization, name="Globex")
    _listen(theirs, "globex sucks")
    client = staff_admin.client()
    response = client.post(
        reverse("admin:channels_social_listeningquery_add"),
        {"brand": ours.pk, "query": "#thissucks", "enabled": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created = ListeningQuery.objects.get(query="#thissucks")
    assert created.organization == staff_admin.organization
    page = client.get(reverse("admin:channels_social_listeningquery_changelist")).content.decode()
    assert "#thissucks" in page and "globex sucks" not in page
    # Another organisation's brand is not offered.
    refused = client.post(
        reverse("admin:channels_social_listeningquery_add"),
        {"brand": theirs.pk, "query": "spy", "enabled": "on"},
    )
    assert refused.status_code == 200 and not ListeningQuery.objects.filter(query="spy").exists()
    too_long = client.post(
        reverse("admin:channels_social_listeningquery_add"),
        {"brand": ours.pk, "query": "a" * (LISTENING_QUERY_MAX_LENGTH + 1), "enabled": "on"},
    )
    assert too_long.status_code == 200
    assert agent.client().get(
        reverse("admin:channels_social_listeningquery_changelist")
    ).status_code in (302, 403)
