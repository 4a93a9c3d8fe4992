"""Settings → Brands and channels: admins of the organisation only; credentials write-only and
encrypted; listening queries validated as X would; every change audited; health live."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import AuditEntry, Role
from channels_social.models import (
    Brand,
    ListeningQuery,
    Platform,
    PollCursor,
    RateBudget,
    SocialAccount,
    x_query_problems,
)
from channels_social.services import account_poll
from tests.conftest import Persona, _persona
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tests.factories import BrandFactory
from tests.sandbox_fixtures import XSandbox

pytestmark = pytest.mark.django_db

HOME = "channels_social:settings-channels"
X_KEYS = {
    "consumer_key": "ck-typed",
    "consumer_secret": "cs-very-secret",
    "access_token": "1000-typed-access-token",
    "access_token_secret": "ts-very-secret",
}


@pytest.fixture
def brand(org) -> Brand:
    return BrandFactory(organization=org, name="Acme")


@pytest.fixture
def other_admin(other_org) -> Persona:
    return _persona(other_org, Role.ADMIN, "oscar")


def _channel_form(**changes: object) -> dict[str, object]:
    return {"username": "AcmeCare", "external_id": "1000", "where": "sandbox", **X_KEYS, **changes}


def test_only_the_organisations_admins_reach_it(
    org_admin: Persona,
    manager: Persona,
    agent: Persona,
    other_admin: Persona,
    client,
    brand,
    make_account: Callable[..., SocialAccount],
) -> None:
    account = make_account(brand=brand)
    query = ListeningQuery.objects.create(
        organization=brand.organization, brand=brand, query="acme"
    )
    home = reverse(HOME)
    assert org_admin.client().get(home).status_code == 200
    assert manager.client().get(home).status_code == 404
    assert agent.client().get(home).status_code == 404
    assert client.get(home).status_code == 302
    # An admin of another organisation: each of Acme's ids is a 404, for reading and writing.
    olga = other_admin.client()
    for name, args in [
        ("settings-brand", [brand.pk]),
        ("settings-channel", [account.pk]),
        ("settings-channel-new", [brand.pk, "x"]),
        ("settings-query", [query.pk]),
        ("settings-query-new", [brand.pk]),
    ]:
        assert olga.get(reverse(f"channels_social:{name}", args=args)).status_code == 404
    for name, args in [
        ("settings-channel-toggle", [account.pk]),
        ("settings-channel-recheck", [account.pk]),
        ("settings-query-delete", [query.pk]),
    ]:
        assert olga.post(reverse(f"channels_social:{name}", args=args)).status_code == 404
    assert SocialAccount.objects.get(pk=account.pk).enabled
    assert ListeningQuery.objects.filter(pk=query.pk).exists()
    assert "Acme" not in olga.get(home).content.decode()
    # The section is in the settings navigation.
    assert home in org_admin.client().get(reverse("accounts:settings")).content.decode()


def test_brands_are_created_renamed_and_audited(org_admin: Persona, org, brand) -> None:
    client = org_admin.client()
    response = client.post(reverse("channels_social:settings-brand-new"), {"name": " acme "})
    assert response.status_code == 422 and "already a brand called acme" in response.text
    response = client.post(reverse("channels_social:settings-brand-new"), {"name": "Globex Care"})
    assert response.status_code == 302
    created = Brand.objects.get(organization=org, name="Globex Care")
    client.post(reverse("channels_social:settings-brand", args=[created.pk]), {"name": "Globex"})
    entries = AuditEntry.objects.filter(organization=org, object_type="brand").order_by("pk")
    assert [(e.action, e.before, e.after) for e in entries] == [
        ("created", {}, {"name": "Globex Care"}),
        ("updated", {"name": "Globex Care"}, {"name": "Globex"}),
    ]
    assert entries[0].actor == org_admin.user


def test_a_channel_is_connected_with_write_only_encrypted_credentials(
    org_admin: Persona, org, brand
) -> None:
    client = org_admin.client()
    url = reverse("channels_social:settings-channel-new", args=[brand.pk, "x"])
    form_page = client.get(url).content.decode()
    assert 'type="password"' in form_page and "Consumer key" in form_page
    missing = client.post(url, _channel_form(consumer_secret=""))
    assert missing.status_code == 422 and "This field is required" in missing.text
    # A free API address is not a field: the sandbox is the operator's, from the settings.
    assert client.post(url, _channel_form(api_base_url="http://10.0.0.1/")).status_code == 302

    account = SocialAccount.objects.get(organization=org, external_id="1000")
    assert account.platform == Platform.X and account.brand == brand
    assert account.api_base_url == settings.X_SANDBOX_URL
    assert account.credentials == X_KEYS
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials FROM channels_social_socialaccount WHERE id = %s", [account.pk]
        )
        assert "very-secret" not in cursor.fetchone()[0]
    edit = client.get(reverse("channels_social:settings-channel", args=[account.pk])).text
    assert "very-secret" not in edit and "typed-access-token" not in edit
    assert "Stored (•••••••• hidden)" in edit
    entry = AuditEntry.objects.get(organization=org, object_type="channel", action="created")
    assert "very-secret" not in str(entry.before) + str(entry.after)
    assert entry.after["credentials"] == "(replaced)"

    # Saved again with the secrets left empty: they stay; a new one typed replaces only it.
    client.post(
        reverse("channels_social:settings-channel", args=[account.pk]),
        _channel_form(consumer_key="", consumer_secret="", access_token="", access_token_secret=""),
    )
    assert SocialAccount.objects.get(pk=account.pk).credentials == X_KEYS
    client.post(
        reverse("channels_social:settings-channel", args=[account.pk]),
        _channel_form(
            consumer_key="", consumer_secret="cs-new", access_token="", access_token_secret=""
        ),
    )
    assert SocialAccount.objects.get(pk=account.pk).credentials == {
        **X_KEYS,
        "consumer_secret": "cs-new",
    }


def test_a_facebook_page_asks_for_its_page_token_and_can_point_at_the_real_graph(
    org_admin: Persona, org, brand
) -> None:
    client = org_admin.client()
    url = reverse("channels_social:settings-channel-new", args=[brand.pk, "facebook"])
    assert "Page access token" in client.get(url).text
    response = client.post(
        url,
        {
            "username": "Acme",
            "external_id": FB_PAGE_ID,
            "where": "real",
            "page_access_token": "EAA-secret",
        },
    )
    assert response.status_code == 302
    page = SocialAccount.objects.get(organization=org, platform=Platform.FACEBOOK)
    assert page.api_base_url == "" and page.credentials == {"page_access_token": "EAA-secret"}
    again = client.post(
        url,
        {"username": "Acme", "external_id": FB_PAGE_ID, "where": "real", "page_access_token": "x"},
    )
    assert again.status_code == 422 and "already connected" in again.text


def test_turning_a_channel_off_and_on_is_audited(
    org_admin: Persona, org, brand, make_account: Callable[..., SocialAccount]
) -> None:
    account = make_account(brand=brand)
    toggle = reverse("channels_social:settings-channel-toggle", args=[account.pk])
    org_admin.client().post(toggle)
    assert not SocialAccount.objects.get(pk=account.pk).enabled
    org_admin.client().post(toggle)
    assert SocialAccount.objects.get(pk=account.pk).enabled
    actions = list(
        AuditEntry.objects.filter(object_type="channel")
        .order_by("pk")
        .values_list("action", "after")
    )
    assert [(a, after["enabled"]) for a, after in actions] == [
        ("disabled", False),
        ("enabled", True),
    ]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("acme (refund", "brackets"),
        ("acme lolz:yes", "no lolz: operator"),
        ("acme is:angry", "is:angry is not an X operator"),
        ("acme has:pictures", "has:pictures is not an X operator"),
        ("is:reply has:media", "at least one word"),
        ("-acme -refund", "at least one word"),
        ("acme or refund", 'needs "OR" in capitals'),
        ("from:", "needs a value"),
    ],
)
def test_listening_queries_x_would_refuse_are_refused_in_words(query: str, problem: str) -> None:
    problems = x_query_problems(query)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "query",
    [
        "acme",
        '"acme app" -giveaway',
        "#thissucks acme OR @AcmeCare",
        "(acme OR globex) lang:en -is:retweet has:media",
        "from:jo acme",
        "https://acme.example/status",
    ],
)
def test_listening_queries_x_accepts_pass(query: str) -> None:
    assert x_query_problems(query) == []


def test_listening_queries_are_created_edited_deleted_and_audited(
    org_admin: Persona, org, brand, make_account: Callable[..., SocialAccount]
) -> None:
    client = org_admin.client()
    new = reverse("channels_social:settings-query-new", args=[brand.pk])
    too_long = client.post(new, {"query": "acme " * 200, "enabled": "on"})
    assert too_long.status_code == 422 and "X searches at most 512" in too_long.text
    refused = client.post(new, {"query": "acme is:angry", "enabled": "on"})
    assert refused.status_code == 422 and "is:angry is not an X operator" in refused.text
    assert client.post(new, {"query": "  acme   refund ", "enabled": "on"}).status_code == 302
    query = ListeningQuery.objects.get(brand=brand)
    assert query.query == "acme refund" and query.organization == org
    assert client.post(new, {"query": "acme refund", "enabled": "on"}).status_code == 422

    client.post(
        reverse("channels_social:settings-query", args=[query.pk]), {"query": "acme refund"}
    )
    assert not ListeningQuery.objects.get(pk=query.pk).enabled  # unticked: paused
    account = make_account(brand=brand)
    PollCursor.objects.create(account=account, stream="search", key=str(query.pk), position="9")
    client.post(reverse("channels_social:settings-query-delete", args=[query.pk]))
    assert not ListeningQuery.objects.filter(pk=query.pk).exists()
    assert not PollCursor.objects.filter(stream="search", key=str(query.pk)).exists()
    entries = AuditEntry.objects.filter(object_type="listening query").order_by("pk")
    assert [e.action for e in entries] == ["created", "updated", "deleted"]
    assert entries[1].before == {"enabled": True} and entries[1].after == {"enabled": False}


def test_health_shows_polls_errors_and_budgets_and_refreshes_as_a_partial(
    org_admin: Persona,
    brand,
    make_account: Callable[..., SocialAccount],
    django_assert_num_queries,
) -> None:
    now = timezone.now()
    ok = make_account(
        brand=brand,
        username="AcmeCare",
        last_polled_at=now - timedelta(seconds=5),
        next_poll_at=now + timedelta(seconds=40),
    )
    RateBudget.objects.create(
        account=ok,
        endpoint="GET /2/users/:id/mentions",
        limit=450,
        remaining=448,
        reset_at=now + timedelta(minutes=9),
        observed_at=now,
    )
    make_account(
        brand=brand,
        username="AcmeHelp",
        last_polled_at=now - timedelta(seconds=5),
        last_poll_error="X is having trouble: Service Unavailable",
        last_poll_error_at=now,
    )
    make_account(
        brand=brand,
        username="AcmeGone",
        enabled=False,
        auth_failed_at=now,
        disabled_reason="X no longer accepts this handle's keys",
    )
    client = org_admin.client()
    # Session, user, membership; brands, their accounts, budgets and queries: whatever the count.
    with django_assert_num_queries(7):
        page = client.get(reverse(HOME)).text
    assert 'hx-trigger="every 10s"' in page and "<h1>Brands and channels</h1>" in page
    partial = client.get(reverse(HOME), headers={"HX-Request": "true"}).text
    assert partial.lstrip().startswith('<section id="channel-health"') and "<h1>" not in partial
    for text in (
        "448 of 450 calls left",
        "GET /2/users/:id/mentions",
        "X is having trouble: Service Unavailable",
        "Disconnected",
        "X no longer accepts this handle&#x27;s keys",
        "Re-check now",
    ):
        assert text in partial, text


@pytest.mark.django_db(transaction=True)
def test_a_revoked_token_is_shown_and_new_credentials_typed_in_the_app_fix_it(
    org_admin: Persona, org, brand, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    client = org_admin.client()
    client.post(
        reverse("channels_social:settings-channel-new", args=[brand.pk, "x"]), _channel_form()
    )
    account = SocialAccount.objects.get(organization=org, external_id="1000")
    # The sandbox of this test run, and a connection a minute ago (so a new mention counts).
    SocialAccount.objects.filter(pk=account.pk).update(
        api_base_url=x_sandbox_clean.url, connected_at=timezone.now() - timedelta(minutes=1)
    )
    x_sandbox_clean.control.revoke_token(X_KEYS["access_token"])
    assert account_poll(account_id=account.pk).startswith("disabled")
    page = client.get(reverse(HOME), headers={"HX-Request": "true"}).text
    assert "Disconnected" in page and "no longer accepts" in page

    edit = reverse("channels_social:settings-channel", args=[account.pk])
    form = _channel_form(
        access_token="1000-regenerated", consumer_key="", consumer_secret="", access_token_secret=""
    )
    assert client.post(edit, form).status_code == 302
    account = SocialAccount.objects.get(pk=account.pk)
    # The sandbox URL choice moved it back to the settings' sandbox; point it at this run's.
    SocialAccount.objects.filter(pk=account.pk).update(api_base_url=x_sandbox_clean.url)
    assert account.enabled and account.auth_failed_at is None
    assert AuditEntry.objects.filter(action="reconnected", actor=org_admin.user).exists()
    x_sandbox_clean.control.post_mention("AcmeCare", "2001", "jo", 10, "Hello again?")
    assert account_poll(account_id=account.pk).startswith("ok: 1 new")


@pytest.mark.django_db(transaction=True)
def test_the_recheck_button_probes_the_page_and_says_what_it_found(
    org_admin: Persona,
    org,
    brand,
    facebook_sandbox_clean: FacebookSandbox,
    make_account: Callable[..., SocialAccount],
) -> None:
    facebook_sandbox_clean.register_page(name="Acme")
    page = make_account(
        brand=brand,
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=facebook_sandbox_clean.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
    )
    facebook_sandbox_clean.control.revoke_token(FB_PAGE_TOKEN, subcode=458)
    account_poll(account_id=page.pk)
    client = org_admin.client()
    recheck = reverse("channels_social:settings-channel-recheck", args=[page.pk])
    shown = client.post(recheck, follow=True).text
    assert "the app was removed from the page" in shown
    assert not SocialAccount.objects.get(pk=page.pk).enabled
    facebook_sandbox_clean.control.restore_token(FB_PAGE_TOKEN)
    shown = client.post(recheck, follow=True).text
    assert "accepts the credentials of Acme" in shown
    assert SocialAccount.objects.get(pk=page.pk).enabled


def test_an_operator_saving_new_credentials_in_the_django_admin_reconnects_too(
    org_admin: Persona, brand, make_account: Callable[..., SocialAccount]
) -> None:
    org_admin.user.is_staff = True
    org_admin.user.save()
    account = make_account(
        brand=brand, enabled=False, auth_failed_at=timezone.now(), disabled_reason="Refused."
    )
    url = reverse("admin:channels_social_socialaccount_change", args=[account.pk])
    form = {
        "brand": brand.pk,
        "platform": "x",
        "external_id": account.external_id,
        "username": account.username,
        "api_base_url": "",
        "access_token": f"{account.external_id}-new",
    }
    # Saved without new credentials (and unticked): still off, still disconnected.
    org_admin.client().post(url, {**form, "access_token": ""})
    assert SocialAccount.objects.get(pk=account.pk).auth_failed_at is not None
    assert org_admin.client().post(url, form).status_code == 302
    account = SocialAccount.objects.get(pk=account.pk)
    assert account.enabled and account.auth_failed_at is None and account.disabled_reason == ""
    assert account.credentials["access_token"] == f"{account.external_id}-new"
