"""Hardening of issue 12: sign-in throttling, CSP and Permissions-Policy, and error pages that
never show a secret."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.conftest import Persona
from tests.factories import SocialAccountFactory, TicketFactory

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def _sign_in(client: Client, url: str, username: str, password: str) -> int:
    return client.post(url, {"username": username, "password": password}).status_code


@pytest.mark.parametrize("login_url", ["/login/", "/admin/login/"])
def test_thirty_wrong_passwords_lock_the_right_one_out(agent: Persona, login_url: str) -> None:
    agent.user.is_staff = True  # so /admin/login/ would accept the right password
    agent.user.save()
    client = Client()
    answers = [_sign_in(client, login_url, "alice", f"wrong-{n}") for n in range(30)]
    # The first failures show the form again; from the limit on, the lockout page.
    assert answers[: settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert set(answers[settings.AXES_FAILURE_LIMIT :]) == {429}
    assert _sign_in(client, login_url, "alice", "pw") == 429
    assert "_auth_user_id" not in client.session
    page = client.post(login_url, {"username": "alice", "password": "pw"}).content.decode()
    assert "Too many failed sign-ins" in page


def test_the_lockout_ends_after_the_cool_off_and_success_resets(agent: Persona) -> None:
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "/login/", "alice", f"wrong-{n}")
    assert _sign_in(client, "/login/", "alice", "pw") == 429
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=5)):
        assert _sign_in(client, "/login/", "alice", "pw") == 302
        assert "_auth_user_id" in client.session
        # A success forgets the failures: the next mistakes start counting from zero.
        client.post(reverse("logout"))
        for n in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _sign_in(client, "/login/", "alice", f"again-{n}") == 200
        assert _sign_in(client, "/login/", "alice", "pw") == 302


def test_a_lockout_is_per_user_and_address_not_per_user(agent: Persona) -> None:
    """An attacker elsewhere cannot lock Alice out of her own desk."""
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(settings.AXES_FAILURE_LIMIT + 3):
        _sign_in(attacker, "/login/", "alice", f"guess-{n}")
    assert _sign_in(attacker, "/login/", "alice", "pw") == 429
    # A forged X-Forwarded-For does not give the attacker a fresh address either.
    forged = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert _sign_in(forged, "/login/", "alice", "pw") == 429
    assert _sign_in(Client(REMOTE_ADDR="192.0.2.10"), "/login/", "alice", "pw") == 302


def test_every_page_carries_a_strict_csp_and_a_permissions_policy(agent: Persona) -> None:
    ticket = TicketFactory(organization=agent.organization)
    client = agent.client()
    for url in ["/login/", reverse("tickets:inbox"), reverse("tickets:detail", args=[ticket.pk])]:
        response = client.get(url)
        assert response.status_code == 200, url
        csp = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
        assert directives["script-src"] == "'self'", csp
        assert directives["style-src"] == "'self'", csp
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        policy = response["Permissions-Policy"]
        for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
            assert feature in policy, policy


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
HTMX_EVAL = re.compile(r"\shx-on[:-]|\bjs:|\bjavascript:", re.IGNORECASE)


def test_no_template_needs_inline_script_or_style() -> None:
    """What the CSP would block must not be in our templates (JSON data blocks are allowed)."""
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for pattern in (INLINE_HANDLER, INLINE_STYLE, HTMX_EVAL):
            problems += [
                f"{path.relative_to(TEMPLATES)}: {m.group(0)!r}" for m in pattern.finditer(text)
            ]
        for match in INLINE_SCRIPT.finditer(text):
            if 'type="application/json"' not in match.group(0):
                problems.append(f"{path.relative_to(TEMPLATES)}: {match.group(0)!r}")
    assert problems == []


def test_htmx_runs_without_eval() -> None:
    base = (TEMPLATES / "base.html").read_text()
    assert '"allowEval": false' in base and '"includeIndicatorStyles": false' in base


SECRETS = {
    "consumer_key": "ck-SECRET-1111",
    "consumer_secret": "cs-SECRET-2222",
    "access_token": "at-SECRET-3333",
    "access_token_secret": "ats-SECRET-4444",
}


@pytest.fixture
def staff_admin(org_admin: Persona) -> Persona:
    org_admin.user.is_staff = True
    org_admin.user.save()
    return org_admin


def test_the_debug_error_page_shows_no_credential(staff_admin: Persona) -> None:
    """A bad CREDENTIALS_KEYS fails the save inside the encrypting field, whose frame holds the
    plain credentials; the DEBUG page must show neither them nor the keys."""
    account = SocialAccountFactory(brand__organization=staff_admin.organization, credentials={})
    client = Client(raise_request_exception=False)
    client.force_login(staff_admin.user)
    url = reverse("admin:channels_social_socialaccount_change", args=[account.pk])
    form = {
        "brand": account.brand_id,
        "platform": "x",
        "external_id": account.external_id,
        "username": account.username,
        "api_base_url": "",
        "enabled": "on",
        **SECRETS,
    }
    bad_key = "not-base64-SECRET-KEY-9999"
    with override_settings(DEBUG=True, CREDENTIALS_KEYS=[bad_key]):
        response = client.post(url, form)
    page = response.content.decode()
    assert response.status_code == 500
    assert "ImproperlyConfigured" in page and "Traceback" in page  # the technical page it is
    for value in [*SECRETS.values(), bad_key]:
        assert value not in page, value
    assert "********************" in page  # hidden, visibly


def test_secret_looking_post_fields_are_hidden_on_any_error_page() -> None:
    from django.test import RequestFactory

    from careinbox.errors import SecretsHidingFilter

    request = RequestFactory().post("/x/", {"page_access_token": "EAAB-SECRET", "note": "hello"})
    cleaned = SecretsHidingFilter().get_post_parameters(request)
    assert cleaned["page_access_token"] != "EAAB-SECRET" and cleaned["note"] == "hello"


def test_manage_py_check_deploy_is_clean_with_production_settings() -> None:
    import os
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"CAREINBOX_TESTING", "DEBUG", "PYTEST_VERSION"}
        },
        "DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "production-secret-key-with-enough-entropy-4f9a1c",
        "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "care.example.com",
        "FACEBOOK_APP_SECRET": "app-secret",
        "FACEBOOK_VERIFY_TOKEN": "verify-token",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_only_the_api_docs_page_allows_inline_styles_and_never_inline_script(
    agent: Persona,
) -> None:
    docs = agent.client().get("/api/docs/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in docs.split(";") if part.strip())
    assert "'unsafe-inline'" in directives["style-src"]
    assert directives["script-src"] == "'self'"
    inbox = agent.client().get(reverse("tickets:inbox"))["Content-Security-Policy"]
    assert "unsafe-inline" not in inbox
