"""The Facebook side of the demo commands: ``sandbox_post --platform facebook`` and the demo
generator's Facebook customers, against the Graph emulator."""

from __future__ import annotations

import random
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from channels_social.management.facebook_sandbox import FacebookDemo
from channels_social.models import Platform, SocialAccount
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(
    make_account: Callable[..., SocialAccount], facebook_sandbox_clean: FacebookSandbox
) -> SocialAccount:
    facebook_sandbox_clean.register_page(name="Acme")
    return make_account(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=facebook_sandbox_clean.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
    )


def post(sandbox: FacebookSandbox, *args: str) -> str:
    out = StringIO()
    call_command(
        "sandbox_post",
        "--platform",
        "facebook",
        "--to",
        "Acme",
        "--author-id",
        "2001",
        "--author-username",
        "Dana Lee",
        "--sandbox-url",
        sandbox.url,
        *args,
        stdout=out,
    )
    return out.getvalue().strip()


@pytest.mark.parametrize(
    ("kind", "prefix"), [("comment", ""), ("visitor_post", FB_PAGE_ID + "_"), ("messenger", "m_")]
)
def test_sandbox_post_makes_each_facebook_kind(
    page: SocialAccount, facebook_sandbox_clean: FacebookSandbox, kind: str, prefix: str
) -> None:
    new_id = post(facebook_sandbox_clean, "--kind", kind, "--text", "My parcel is late")
    assert new_id.startswith(prefix)
    made = facebook_sandbox_clean.control.get_object(new_id)
    assert "My parcel is late" in str(made)


def test_a_comment_goes_under_the_pages_post_or_replies(
    page: SocialAccount, facebook_sandbox_clean: FacebookSandbox
) -> None:
    first = post(facebook_sandbox_clean, "--kind", "comment", "--text", "Hello?")
    reply = post(
        facebook_sandbox_clean, "--kind", "comment", "--text", "Still?", "--in-reply-to", first
    )
    assert facebook_sandbox_clean.control.get_object(reply)["parent_id"] == first
    # The page post made for the first comment is reused, not made again.
    assert len(facebook_sandbox_clean.control.sent(FB_PAGE_ID)["posts"]) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--kind", "dm", "--text", "x"], "comment, visitor_post, messenger"),
        (["--kind", "messenger", "--text", "x", "--in-reply-to", "1_2"], "drop --in-reply-to"),
        (["--kind", "comment", "--text", "  "], "cannot be empty"),
    ],
)
def test_sandbox_post_refuses_in_words(
    page: SocialAccount, facebook_sandbox_clean: FacebookSandbox, args: list[str], words: str
) -> None:
    with pytest.raises(CommandError, match=words):
        post(facebook_sandbox_clean, *args)


def test_an_unknown_page_is_a_clear_error(facebook_sandbox_clean: FacebookSandbox) -> None:
    with pytest.raises(CommandError, match="No Facebook page called 'Acme'"):
        post(facebook_sandbox_clean, "--kind", "comment", "--text", "hi")


def test_the_demo_generators_facebook_customers(
    page: SocialAccount, facebook_sandbox_clean: FacebookSandbox, settings: Any
) -> None:
    settings.FACEBOOK_SANDBOX_URL = facebook_sandbox_clean.url
    demo = FacebookDemo(random.Random(7))
    assert demo.pages_in_sandbox() == [FB_PAGE_ID]
    lines = [
        demo.post_one(person_id=str(3000 + n % 4), name=f"P{n % 4}", text="Late", follow_up="?")
        for n in range(40)
    ]
    kinds = {line.split()[1] for line in lines}
    assert kinds == {"comment", "visitor_post", "messenger"}
    world = facebook_sandbox_clean.app.store
    assert any(c.parent_id for c in world.comments.values())  # a customer chasing a comment


def test_the_demo_goes_on_when_the_facebook_emulator_is_down(
    page: SocialAccount, settings: Any
) -> None:
    settings.FACEBOOK_SANDBOX_URL = "http://127.0.0.1:9"
    page.api_base_url = "http://127.0.0.1:9"
    page.save()
    demo = FacebookDemo(random.Random(1))
    assert demo.pages_in_sandbox() == [FB_PAGE_ID]
    line = demo.post_one(person_id="3001", name="P", text="Late", follow_up="?")
    assert line.startswith("facebook skipped") and demo.pages == []
