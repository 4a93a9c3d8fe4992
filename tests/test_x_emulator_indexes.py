"""The X emulator's indexes (users by handle, posts by author, who a post names or replies to,
retweet / reply / quote counts) answer exactly what a scan of the whole store answers: every
post inserted is found by each query that must find it, after a restart from the state file
too, and nothing is found after a reset or under a handle the user gave up."""

from __future__ import annotations

import random
from pathlib import Path

from channels_social.sandbox.x.store import XStore, XTweet, counted_text


def scan_metrics(store: XStore, tweet: XTweet) -> dict[str, int]:
    others = list(store.tweets.values())
    return {
        "retweet_count": sum(t.retweeted_tweet_id == tweet.id for t in others),
        "reply_count": sum(t.in_reply_to_tweet_id == tweet.id for t in others),
        "quote_count": sum(t.quoted_tweet_id == tweet.id for t in others),
    }


def scan_mentions(store: XStore, user_id: str) -> list[str]:
    user = store.users[user_id]
    found = [
        t
        for t in store.tweets.values()
        if t.author_id != user_id
        and (
            any(m["username"].lower() == user.username.lower() for m in t.mentions)
            or t.in_reply_to_user_id == user_id
        )
    ]
    return [t.id for t in sorted(found, key=lambda t: int(t.id), reverse=True)]


def assert_indexes_match_a_scan(store: XStore) -> None:
    assert store.tweets  # the world is not empty: the comparisons below mean something
    for user in store.users.values():
        assert store.user_by_username(user.username) is user
        assert store.user_by_username("@" + user.username.upper()) is user
        own = sorted(
            (t for t in store.tweets.values() if t.author_id == user.id),
            key=lambda t: int(t.id),
            reverse=True,
        )
        assert [t.id for t in store.tweets_by(user.id)] == [t.id for t in own]
        assert [t.id for t in store.mentions_of(user.id)] == scan_mentions(store, user.id)
        for tweet in own:
            body = counted_text(tweet.text, is_reply=tweet.in_reply_to_tweet_id is not None)
            assert store.has_duplicate(
                author_id=user.id,
                text=body,
                is_reply=False,
            )
    for tweet in store.tweets.values():
        metrics = store.public_metrics(tweet)
        assert {k: metrics[k] for k in scan_metrics(store, tweet)} == scan_metrics(store, tweet)


def random_world(store: XStore, rng: random.Random, posts: int = 300) -> None:
    handles = [f"Brand{i}" for i in range(4)] + [f"fan{i}" for i in range(12)]
    for i, handle in enumerate(handles):
        store.upsert_user(id=str(1000 + i), username=handle)
    ids: list[str] = []
    for n in range(posts):
        author_id = str(1000 + rng.randrange(len(handles)))
        named = " ".join(f"@{rng.choice(handles)}" for _ in range(rng.randrange(3)))
        roll = rng.random()
        if ids and roll < 0.15:
            tweet = store.add_tweet(author_id=author_id, text="", retweet_of=rng.choice(ids))
        elif ids and roll < 0.25:
            tweet = store.add_tweet(
                author_id=author_id, text=f"{named} look {n}", quote_of=rng.choice(ids)
            )
        elif ids and roll < 0.55:
            tweet = store.add_tweet(
                author_id=author_id,
                text=f"{named} again {n}",
                in_reply_to_tweet_id=rng.choice(ids),
            )
        else:
            tweet = store.add_tweet(author_id=author_id, text=f"{named} hello {n}")
        ids.append(tweet.id)


def test_indexes_answer_what_a_scan_answers(tmp_path: Path) -> None:
    state = tmp_path / "x.json"
    store = XStore(state, save_delay=60)
    random_world(store, random.Random(11))
    # Some posts are retweeted, replied to and quoted more than once: counts, not flags.
    assert max(scan_metrics(store, t)["reply_count"] for t in store.tweets.values()) > 1
    assert_indexes_match_a_scan(store)
    store.close()

    again = XStore(state, save_delay=60)  # the indexes are rebuilt from the state file
    assert len(again.tweets) == 300
    assert_indexes_match_a_scan(again)
    again.close()


def test_a_renamed_user_is_found_under_the_new_handle_only() -> None:
    store = XStore()
    store.upsert_user(id="1", username="OldName")
    store.upsert_user(id="2", username="dana")
    store.upsert_user(id="1", username="NewName")
    assert store.user_by_username("oldname") is None
    assert store.user_by_username("newname") is store.get_user("1")
    # The old handle is free again, for someone else.
    store.upsert_user(id="3", username="OldName")
    assert store.user_by_username("OLDNAME") is store.get_user("3")
    assert store.user_by_username("newname") is store.get_user("1")


def test_a_reset_empties_every_index() -> None:
    store = XStore()
    store.upsert_user(id="1", username="brand")
    store.upsert_user(id="2", username="dana")
    root = store.add_tweet(author_id="2", text="@brand hi")
    store.add_tweet(author_id="1", text="@dana on it", in_reply_to_tweet_id=root.id)
    store.add_tweet(author_id="1", text="", retweet_of=root.id)
    assert store.public_metrics(root)["reply_count"] == 1
    assert store.public_metrics(root)["retweet_count"] == 1
    store.reset()
    assert store.user_by_username("brand") is None
    assert store.tweets_by("2") == [] and store.mentions_of("1") == []
    store.upsert_user(id="2", username="dana")
    assert not store.has_duplicate(author_id="2", text="@brand hi")
    assert store.public_metrics(root) == {
        "retweet_count": 0,
        "reply_count": 0,
        "like_count": 0,
        "quote_count": 0,
        "impression_count": 0,
        "bookmark_count": 0,
    }
