"""Admins configure their own organisation only; channel credentials are encrypted at rest."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from django.db import connection
from django.urls import reverse

from channels_social.models import SocialAccount
from monitoring.models import SlaPolicy
from tests.conftest import Persona
from tests.factories import SocialAccountFactory


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
    assert response.status_code in (302, 404)  # admin redirects "does not exist" to the index
    assert theirs.username not in response.content.decode()


def test_admin_edits_sla_target_of_own_org(staff_admin: Persona) -> None:
    policy = SlaPolicy.for_org(staff_admin.organization)
    url = reverse("admin:monitoring_slapolicy_change", args=[policy.pk])
    response = staff_admin.client().post(url, {"first_response_minutes": "15"})
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
        {
            "brand": account.brand_id,
            "platform": "x",
            "external_id": account.external_id,
            "username": account.username,
            "api_base_url": "",
            "enabled": "on",
            "consumer_key": "ck-123",
            "consumer_secret": "cs-456",
            "access_token": "1-at-789",
            "access_token_secret": "ats-000",
        },
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
