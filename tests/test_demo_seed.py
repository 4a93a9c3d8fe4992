"""`make run`'s seed: a demo organisation whose handle points at the X sandbox; idempotent."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from careinbox.accounts.models import Membership, Role
from careinbox.demo import DEMO_BRAND_HANDLE, DEMO_LOGINS, seed_demo
from channels_social.models import SocialAccount

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent_and_points_at_the_sandbox(settings) -> None:  # type: ignore[no-untyped-def]
    seed_demo()
    org, account = seed_demo()
    assert SocialAccount.objects.filter(platform="x").count() == 1
    # And the brand's Facebook page, in the Graph emulator `make run` starts with it.
    page = SocialAccount.objects.get(platform="facebook")
    assert (page.username, page.api_base_url) == ("Acme", settings.FACEBOOK_SANDBOX_URL)
    assert page.credentials["page_access_token"]
    assert account.username == DEMO_BRAND_HANDLE
    assert account.api_base_url == settings.X_SANDBOX_URL
    assert account.credentials["access_token"].startswith(account.external_id + "-")
    roles = dict(Membership.objects.filter(organization=org).values_list("user__username", "role"))
    assert roles == {"agent": Role.AGENT, "manager": Role.MANAGER, "admin": Role.ADMIN}


def test_printed_logins_work(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("seed_demo", "--url", "http://127.0.0.1:8000/")
    out = capsys.readouterr().out
    for login in DEMO_LOGINS:
        assert f"{login.username} / {login.password}" in out
        client = Client()
        response = client.post(
            reverse("login"), {"username": login.username, "password": login.password}
        )
        # Signing in lands on the landing page: the dashboard for managers, the inbox for agents.
        assert response.status_code == 302 and response["Location"] == reverse("monitoring:landing")


def test_seed_again_keeps_an_account_switched_to_the_real_api() -> None:
    _, account = seed_demo()
    account.api_base_url = ""
    account.set_credentials(
        consumer_key="real-ck",
        consumer_secret="real-cs",
        access_token=f"{account.external_id}-real",
        access_token_secret="real-ats",
    )
    account.save()
    _, again = seed_demo()
    assert again.api_base_url == ""
    assert again.credentials["consumer_key"] == "real-ck"


def test_seed_again_follows_a_moved_sandbox() -> None:
    seed_demo(sandbox_url="http://127.0.0.1:8765")
    _, account = seed_demo(sandbox_url="http://127.0.0.1:9999")
    assert account.api_base_url == "http://127.0.0.1:9999"
