"""The X emulator's newer parts on their own: X's search syntax, DM paging and its 30 days,
reply metadata and duplicates, quotes through POST /2/tweets, and state that keeps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from channels_social.sandbox.x.store import SearchQuery, StoreError, XStore
from tests.sandbox_fixtures import XSandbox

OAUTH = {"Authorization": 'OAuth oauth_consumer_key="ck", oauth_token="1000-tok"'}


@pytest.fixture
def sandbox(x_sandbox_clean: XSandbox) -> XSandbox:
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return x_sandbox_clean


@pytest.mark.parametrize(
    ("query", "text", "matches"),
    [
        ("acme", "I love Acme!", True),
        ("acme", "I love #acme", False),  # a word is not a hashtag
        ("acme", "acmeblender", False),
        ("#thissucks", "so #ThisSucks today", True),
        ("#thissucks", "#thissucksless", False),
        ('"acme blender"', "my ACME blender broke", True),
        ('"acme blender"', "acme's new blender", False),
        ("acme -refund", "acme please refund me", False),
        ("acme -refund", "acme please help", True),
        ("blender OR toaster", "the toaster is on fire", True),
        ("acme blender OR toaster", "acme kettle", False),
        ('acme -"no reply"', "acme, still no reply", False),
        ("@AcmeCare", "hey @acmecare", True),
    ],
)
def test_search_syntax(query: str, text: str, matches: bool) -> None:
    store = XStore()
    store.upsert_user(id="1", username="dana")
    tweet = store.add_tweet(author_id="1", text=text)
    assert SearchQuery.parse(query).matches(tweet, store.users) is matches


def test_search_operators_from_and_is() -> None:
    store = XStore()
    store.upsert_user(id="1", username="dana")
    store.upsert_user(id="2", username="sam")
    root = store.add_tweet(author_id="1", text="acme rocks")
    reply = store.add_tweet(author_id="2", text="acme agreed", in_reply_to_tweet_id=root.id)
    quote = store.add_tweet(author_id="2", text="acme this", quote_of=root.id)
    retweet = store.add_tweet(author_id="2", text="", retweet_of=root.id)
    assert retweet.text == "RT @dana: acme rocks"
    ids = lambda q: [t.id for t in store.search(q)]  # noqa: E731
    assert ids("acme from:sam -is:retweet") == [quote.id, reply.id]
    assert ids("acme is:reply") == [reply.id]
    assert ids("acme is:quote") == [quote.id]
    assert ids("acme -from:dana is:retweet") == [retweet.id]
    with pytest.raises(StoreError):
        store.search("OR")


def test_dm_events_page_with_base32_tokens_and_keep_30_days(sandbox: XSandbox) -> None:
    store = sandbox.app.store
    store.upsert_user(id="2001", username="dana")
    old = store.add_dm(
        sender_id="2001",
        recipient_id="1000",
        text="old",
        created_at=datetime.now(UTC) - timedelta(days=31),
    )
    ids = [
        store.add_dm(sender_id="2001", recipient_id="1000", text=f"m{n}").dm_event_id
        for n in range(5)
    ]
    seen: list[str] = []
    params: dict[str, object] = {"max_results": 2}
    while True:
        body = requests.get(
            f"{sandbox.url}/2/dm_events", params=params, headers=OAUTH, timeout=5
        ).json()
        seen += [event["id"] for event in body.get("data", [])]
        token = body["meta"].get("next_token")
        if not token:
            break
        assert len(token) >= 16
        params = {"max_results": 2, "pagination_token": token}
    assert seen == list(reversed(ids)) and old.dm_event_id not in seen
    # Another user's conversations are not the brand's.
    store.upsert_user(id="2002", username="sam")
    store.add_dm(sender_id="2001", recipient_id="2002", text="private")
    body = requests.get(f"{sandbox.url}/2/dm_events", headers=OAUTH, timeout=5).json()
    assert "private" not in [event["text"] for event in body["data"]]


def test_reply_metadata_duplicates_and_quotes(sandbox: XSandbox) -> None:
    store = sandbox.app.store
    store.upsert_user(id="2001", username="dana")
    store.upsert_user(id="2002", username="sam")
    first = store.add_tweet(author_id="2001", text="@AcmeCare help")
    second = store.add_tweet(author_id="2002", text="@AcmeCare me too")
    url = f"{sandbox.url}/2/tweets"

    def post(body: dict[str, object]) -> requests.Response:
        return requests.post(url, json=body, headers=OAUTH, timeout=5)

    auto = {"auto_populate_reply_metadata": True}
    made = post({"text": "On it!", "reply": {"in_reply_to_tweet_id": first.id, **auto}})
    assert made.status_code == 201 and made.json()["data"]["text"] == "@dana On it!"
    # The same answer under another customer's post is the same content: a duplicate.
    again = post({"text": "On it!", "reply": {"in_reply_to_tweet_id": second.id, **auto}})
    assert again.status_code == 403 and "duplicate" in again.json()["detail"]
    excluded = post(
        {
            "text": "Thanks",
            "reply": {
                "in_reply_to_tweet_id": second.id,
                "exclude_reply_user_ids": ["2002"],
                **auto,
            },
        }
    )
    assert excluded.json()["data"]["text"] == "Thanks"
    quote = post({"text": "Look at this", "quote_tweet_id": first.id})
    assert quote.status_code == 201
    assert store.get_tweet(quote.json()["data"]["id"]).quoted_tweet_id == first.id  # type: ignore[union-attr]
    missing = post({"text": "Quoting nothing", "quote_tweet_id": "123"})
    assert missing.status_code == 400


def test_new_fields_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "x.json"
    store = XStore(state)
    store.upsert_user(id="1", username="dana", verified=True, accepts_dms=False)
    root = store.add_tweet(author_id="1", text="hello")
    store.add_tweet(author_id="1", text="", retweet_of=root.id)
    store.add_tweet(author_id="1", text="look", quote_of=root.id)
    store.set_hidden(root.id, True)
    store.close()
    again = XStore(state)
    user = again.get_user("1")
    assert user is not None and user.verified and not user.accepts_dms
    tweets = sorted(again.tweets.values(), key=lambda t: int(t.id))
    assert [t.hidden for t in tweets] == [True, False, False]
    assert (tweets[1].retweeted_tweet_id, tweets[2].quoted_tweet_id) == (root.id, root.id)
    again.close()
