"""Admins configure their own organisation only; channel credentials are encrypted at rest."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from django.db import connection
from django.urls import reverse

from channels_social.base import Stream
from channels_social.models import PollCursor, SocialAccount
from monitoring.models import SlaPolicy
from tests.conftest import Persona
from tests.factories import SocialAccountFactory


def _account_form(account: SocialAccount, **changes: object) -> dict[str, object]:
    """The social account admin form as submitted for ``account``, with ``changes``."""
    return {
        "brand": account.brand_id,
        "platform": "x",
        "external_id": account.external_id,
        "username": account.username,
        "api_base_url": "",
        "enabled": "on",
        **changes,
    }


@pytest.fixture
def staff_admin(org_admin: Persona) -> Persona:
    org_admin.user.is_staff = True
    org_admin.user.save()
    return org_admin


def test_credentials_are_encrypted_in_the_database(
    make_account: Callable[..., SocialAccount],
) -> None:
    account = make_account()
    account.set_credentials(access_token="1000-very-secret-token", access_token_secret="hush")
    account.save()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials FROM channels_social_socialaccount WHERE id = %s", [account.pk]
        )
        stored = cursor.fetchone()[0]
    assert "very-secret-token" not in stored and "hush" not in stored
    assert stored.startswith("gAAAA")  # a Fernet token
    assert (
        SocialAccount.objects.get(pk=account.pk).credentials["access_token"]
        == "1000-very-secret-token"
    )
    assert "secret" not in repr(account) and "secret" not in str(account)


def test_admin_lists_only_own_accounts(staff_admin: Persona, other_org: object) -> None:
    SocialAccountFactory(brand__organization=staff_admin.organization, username="OursCare")
    SocialAccountFactory(brand__organization=other_org, username="TheirsCare")
    response = staff_admin.client().get(reverse("admin:channels_social_socialaccount_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "OursCare" in body and "TheirsCare" not in body


def test_admin_cannot_open_another_orgs_account(staff_admin: Persona, other_org: object) -> None:
    theirs = SocialAccountFactory(brand__organization=other_org)
    url = reverse("admin:channels_social_socialaccount_change", args=[theirs.pk])
    response = staff_admin.client().get(url)
    # Django admin answers an id outside the queryset with a redirect to the admin index.
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert theirs.username not in staff_admin.client().get(response["Location"]).content.decode()


def test_admin_edits_sla_target_of_own_org(staff_admin: Persona) -> None:
    policy = SlaPolicy.for_org(staff_admin.organization)
    url = reverse("admin:monitoring_slapolicy_change", args=[policy.pk])
    form = {"name": policy.name, "position": "0", "time_zone": "UTC", "warning_percent": "75"}
    form["calendar"] = json.dumps(policy.calendar)
    response = staff_admin.client().post(url, {**form, "first_response_minutes": "15"})
    assert response.status_code == 302, response.content[:2000]
    policy.refresh_from_db()
    assert policy.first_response_minutes == 15


def test_admin_form_stores_credentials_write_only(
    staff_admin: Persona, caplog: pytest.LogCaptureFixture
) -> None:
    account = SocialAccountFactory(brand__organization=staff_admin.organization, credentials={})
    url = reverse("admin:channels_social_socialaccount_change", args=[account.pk])
    caplog.set_level(logging.DEBUG)
    response = staff_admin.client().post(
        url,
        _account_form(
            account,
            consumer_key="ck-123",
            consumer_secret="cs-456",
            access_token="1-at-789",
            access_token_secret="ats-000",
        ),
    )
    assert response.status_code == 302, response.content[:2000]
    account.refresh_from_db()
    assert account.credentials["access_token_secret"] == "ats-000"
    page = staff_admin.client().get(url).content.decode()
    assert "ats-000" not in page and "cs-456" not in page  # never shown back
    assert "ats-000" not in caplog.text


def test_agents_and_managers_have_no_admin(agent: Persona, manager: Persona) -> None:
    for persona in (agent, manager):
        persona.user.is_staff = True  # even if someone ticks the box
        persona.user.save()
        response = persona.client().get(reverse("admin:channels_social_socialaccount_changelist"))
        assert response.status_code == 403


def test_duplicate_account_is_a_form_error_not_a_crash(staff_admin: Persona) -> None:
    account = SocialAccountFactory(brand__organization=staff_admin.organization)
    response = staff_admin.client().post(
        reverse("admin:channels_social_socialaccount_add"),
        {
            "brand": account.brand_id,
            "platform": "x",
            "external_id": account.external_id,
            "username": "Again",
            "enabled": "on",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "already exists" in response.content.decode()
    assert SocialAccount.objects.count() == 1


def test_org_admin_cannot_point_workers_at_an_arbitrary_address(staff_admin: Persona) -> None:
    account = SocialAccountFactory(brand__organization=staff_admin.organization, api_base_url="")
    url = reverse("admin:channels_social_socialaccount_change", args=[account.pk])
    response = staff_admin.client().post(
        url,
        _account_form(account, api_base_url="http://169.254.169.254/latest/"),
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.api_base_url == ""


def test_superuser_adds_an_account_in_the_brands_organisation(
    other_org: object, django_user_model: object
) -> None:
    from django.test import Client

    from tests.factories import BrandFactory

    root = django_user_model.objects.create_superuser("root", password="pw")  # type: ignore[attr-defined]
    brand = BrandFactory(organization=other_org)
    client = Client()
    client.force_login(root)
    response = client.post(
        reverse("admin:channels_social_socialaccount_add"),
        {
            "brand": brand.pk,
            "platform": "x",
            "external_id": "77",
            "username": "GlobexCare",
            "enabled": "on",
            "api_base_url": "http://127.0.0.1:8765",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    account = SocialAccount.objects.get(username="GlobexCare")
    assert account.organization == other_org
    assert account.api_base_url == "http://127.0.0.1:8765"


def test_an_account_cannot_be_moved_to_another_organisations_brand(
    other_org: object, django_user_model: object
) -> None:
    from django.test import Client

    from tests.factories import BrandFactory

    root = django_user_model.objects.create_superuser("root", password="pw")  # type: ignore[attr-defined]
    account = SocialAccountFactory()
    elsewhere = BrandFactory(organization=other_org)
    client = Client()
    client.force_login(root)
    response = client.post(
        reverse("admin:channels_social_socialaccount_change", args=[account.pk]),
        _account_form(account, brand=elsewhere.pk),
    )
    assert response.status_code == 200 and "another organisation" in response.content.decode()
    account.refresh_from_db()
    assert account.brand_id != elsewhere.pk


def test_repointing_an_account_starts_it_afresh(staff_admin: Persona) -> None:
    account = SocialAccountFactory(brand__organization=staff_admin.organization)
    PollCursor.objects.create(account=account, stream=Stream.MENTIONS, position="123")
    response = staff_admin.client().post(
        reverse("admin:channels_social_socialaccount_change", args=[account.pk]),
        {
            "brand": account.brand_id,
            "platform": "x",
            "external_id": "999999",
            "username": account.username,
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    old_connected = account.connected_at
    account.refresh_from_db()
    assert not account.cursors.exists() and account.connected_at > old_connected
