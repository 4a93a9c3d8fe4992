"""sandbox_post and sandbox_demo drive the X emulator the way a person at a terminal would."""

from __future__ import annotations

import socket
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.factories import SocialAccountFactory
from tests.sandbox_fixtures import XSandbox


@pytest.fixture
def sandbox(x_sandbox_clean: XSandbox) -> XSandbox:
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return x_sandbox_clean


def sandbox_post(sandbox_url: str, **options: object) -> str:
    out = StringIO()
    arguments = {
        "to": "AcmeCare",
        "author_id": "2001",
        "author_username": "dana_k",
        "followers": 321,
        "text": "Where is my order #A123456?",
        "sandbox_url": sandbox_url,
        **options,
    }
    call_command("sandbox_post", stdout=out, **arguments)
    return out.getvalue()


def test_sandbox_post_prints_only_the_id(sandbox: XSandbox) -> None:
    output = sandbox_post(sandbox.url, created_at="2025-02-03T08:30:00Z")
    post_id = output.strip()
    assert post_id.isdigit()
    assert output == post_id + "\n"
    stored = sandbox.control.get_tweet(post_id)
    assert stored["text"] == "@AcmeCare Where is my order #A123456?"
    assert stored["author_id"] == "2001"
    assert stored["created_at"] == "2025-02-03T08:30:00.000Z"
    reply_id = sandbox_post(sandbox.url, text="hello??", in_reply_to=post_id).strip()
    assert sandbox.control.get_tweet(reply_id)["in_reply_to_tweet_id"] == post_id


def test_sandbox_post_unknown_handle(sandbox: XSandbox) -> None:
    with pytest.raises(CommandError, match="@NoSuchBrand is not a user in the X sandbox"):
        sandbox_post(sandbox.url, to="NoSuchBrand")


def test_sandbox_post_bad_input(sandbox: XSandbox) -> None:
    with pytest.raises(CommandError, match="not an ISO 8601"):
        sandbox_post(sandbox.url, created_at="last tuesday")
    with pytest.raises(CommandError, match="author-id"):
        sandbox_post(sandbox.url, author_id="dana")
    with pytest.raises(CommandError, match=r"No post with id .12345. to reply to"):
        sandbox_post(sandbox.url, in_reply_to="12345")


def test_sandbox_post_when_the_emulator_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CommandError, match="not reachable"):
        sandbox_post(f"http://127.0.0.1:{port}")


@pytest.mark.django_db
def test_sandbox_demo_registers_accounts_and_posts(x_sandbox_clean: XSandbox, settings) -> None:
    settings.X_SANDBOX_URL = x_sandbox_clean.url
    account = SocialAccountFactory(
        username="AcmeCare", external_id="1000", api_base_url=x_sandbox_clean.url
    )
    SocialAccountFactory(username="Elsewhere", api_base_url="")
    out = StringIO()
    call_command("sandbox_demo", count=4, burst=4, seed=7, wait=2, stdout=out)
    brand = x_sandbox_clean.control.user_by_username("AcmeCare")
    assert brand["name"] == account.brand.name
    assert brand["followers_count"] == 250_000
    assert x_sandbox_clean.control.health()["tweets"] == 4
    assert out.getvalue().count(" -> ") == 4
    assert "Stopped after 4 posts." in out.getvalue()
