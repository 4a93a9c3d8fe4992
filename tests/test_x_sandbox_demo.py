"""The X parts of the sandbox commands: ``sandbox_post --kind dm``, and the demo generator's
DM answers (from customers the brand took offline), listening matches and quotes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.factories import SocialAccountFactory
from tests.sandbox_fixtures import XSandbox


@pytest.fixture
def sandbox(x_sandbox_clean: XSandbox) -> XSandbox:
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return x_sandbox_clean


def test_sandbox_post_sends_a_dm(sandbox: XSandbox) -> None:
    out = StringIO()
    call_command(
        "sandbox_post",
        to="AcmeCare",
        author_id="2001",
        author_username="dana_k",
        text="Order #A1 never came",
        kind="dm",
        sandbox_url=sandbox.url,
        stdout=out,
    )
    (event,) = sandbox.control.dm_events("2001")
    assert out.getvalue().strip() == event["dm_event_id"]
    assert (event["sender_id"], event["dm_conversation_id"]) == ("2001", "1000-2001")
    refusals = (
        ({"kind": "story"}, "--kind must be one of"),
        ({"in_reply_to": "5"}, "drop --in-reply-to"),
    )
    for bad, words in refusals:
        with pytest.raises(CommandError, match=words):
            call_command(
                "sandbox_post",
                to="AcmeCare",
                author_id="2001",
                author_username="dana_k",
                text="hi",
                sandbox_url=sandbox.url,
                **{"kind": "dm", **bad},
            )


@pytest.mark.django_db
def test_the_demo_answers_dms_and_posts_listening_matches_and_quotes(
    sandbox: XSandbox, settings
) -> None:
    settings.X_SANDBOX_URL = sandbox.url
    SocialAccountFactory(username="AcmeCare", external_id="1000", api_base_url=sandbox.url)
    options = {"wait": 2, "interval": 0.01, "burst": 0, "seed": 11, "customers": 3}
    call_command("sandbox_demo", count=3, stdout=StringIO(), **options)
    store = sandbox.app.store
    customer = next(t.author_id for t in store.tweets.values() if t.author_id != "1000")
    store.add_dm(sender_id="1000", recipient_id=customer, text="Could you DM us the order?")

    out = StringIO()
    call_command("sandbox_demo", count=60, stdout=out, **options)
    answers = [e for e in store.dm_events_with(customer) if e.sender_id == customer]
    assert len(answers) == 1  # once answered, the customer waits for the brand again
    tweets = list(store.tweets.values())
    assert any(t.quoted_tweet_id for t in tweets)
    assert any("#thissucks" in t.text and "@AcmeCare" not in t.text for t in tweets)
    assert " dm " in out.getvalue() and " listening " in out.getvalue()


@pytest.mark.django_db
def test_the_demo_seed_listens_for_thissucks_once() -> None:
    from careinbox.demo import seed_demo
    from channels_social.models import ListeningQuery

    seed_demo(sandbox_url="http://127.0.0.1:8765")
    seed_demo(sandbox_url="http://127.0.0.1:8765")
    assert list(ListeningQuery.objects.values_list("query", "enabled")) == [("#thissucks", True)]
