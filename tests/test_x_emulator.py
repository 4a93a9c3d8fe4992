"""The X emulator behaves like X where the connector depends on it."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from channels_social.sandbox.x.app import create_app
from channels_social.sandbox.x.control import SandboxError
from channels_social.sandbox.x.server import start_in_thread
from channels_social.sandbox.x.store import TWITTER_EPOCH_MS, XStore
from tests.sandbox_fixtures import XSandbox

BRAND_ID = "1000"
PROBLEMS = "https://api.twitter.com/2/problems/"


def oauth(user_id: str = BRAND_ID) -> dict[str, str]:
    return {
        "Authorization": f'OAuth oauth_consumer_key="ck", oauth_token="{user_id}-tok", '
        'oauth_signature="not-checked"'
    }


BEARER = {"Authorization": "Bearer app-token"}


def get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=5, **kwargs)


def post(url: str, **kwargs: Any) -> requests.Response:
    return requests.post(url, timeout=5, **kwargs)


@pytest.fixture
def sandbox(x_sandbox_clean: XSandbox) -> XSandbox:
    x_sandbox_clean.register_brand(id=BRAND_ID, username="AcmeCare")
    return x_sandbox_clean


def mention(sandbox: XSandbox, text: str = "help please", n: int = 0, **kwargs: Any) -> dict:
    return sandbox.control.post_mention(
        "AcmeCare", f"{2000 + n % 5}", f"customer{n % 5}", 120 + n, f"{text} {n}", **kwargs
    )


def get_mentions(sandbox: XSandbox, headers: dict[str, str] | None = None, **params: Any):
    return get(
        f"{sandbox.url}/2/users/{BRAND_ID}/mentions", params=params, headers=headers or oauth()
    )


def test_ids_are_snowflakes_that_grow_across_restarts() -> None:
    old = XStore()
    old.upsert_user(id="1", username="a")
    first = int(old.add_tweet(author_id="1", text="hi").id)
    assert abs(((first >> 22) + TWITTER_EPOCH_MS) - time.time() * 1000) < 5_000
    time.sleep(0.002)  # a restart takes longer than a millisecond
    restarted = XStore()
    assert int(restarted.next_id()) > first


def test_mentions_page_newest_first_with_next_token_until_the_last_page(sandbox: XSandbox) -> None:
    ids = [mention(sandbox, n=n)["id"] for n in range(12)]
    seen, token, pages = [], None, []
    while True:
        params: dict[str, Any] = {"max_results": 5}
        if token:
            params["pagination_token"] = token
        body = get_mentions(sandbox, **params).json()
        pages.append(body["meta"]["result_count"])
        page_ids = [tweet["id"] for tweet in body["data"]]
        assert page_ids == sorted(page_ids, key=int, reverse=True)
        assert body["meta"]["newest_id"] == page_ids[0]
        assert body["meta"]["oldest_id"] == page_ids[-1]
        seen += page_ids
        token = body["meta"].get("next_token")
        if token is None:
            break
    assert pages == [5, 5, 2]
    assert seen == list(reversed(ids))


def test_since_id_and_until_id(sandbox: XSandbox) -> None:
    ids = [mention(sandbox, n=n)["id"] for n in range(6)]
    newer = get_mentions(sandbox, since_id=ids[3]).json()
    assert [t["id"] for t in newer["data"]] == [ids[5], ids[4]]
    older = get_mentions(sandbox, until_id=ids[1]).json()
    assert [t["id"] for t in older["data"]] == [ids[0]]


def test_empty_result_is_exactly_meta_with_zero(sandbox: XSandbox) -> None:
    assert get_mentions(sandbox).json() == {"meta": {"result_count": 0}}
    last = mention(sandbox)["id"]
    assert get_mentions(sandbox, since_id=last).json() == {"meta": {"result_count": 0}}


def test_what_counts_as_a_mention(sandbox: XSandbox) -> None:
    control, store = sandbox.control, sandbox.app.store
    shouting = mention(sandbox, text="@ACMECARE hello")
    brand_post = store.add_tweet(author_id=BRAND_ID, text="We're open on Sunday!")
    control.upsert_user(id="3000", username="bob")
    reply_without_handle = store.add_tweet(
        author_id="3000", text="great news", in_reply_to_tweet_id=brand_post.id
    )
    store.add_tweet(author_id="3000", text="@AcmeCareers is a different account")
    store.add_tweet(author_id="3000", text="mail me at bob@AcmeCare.example")
    store.add_tweet(author_id=BRAND_ID, text="@bob thanks, @AcmeCare here")
    body = get_mentions(sandbox).json()
    assert [t["id"] for t in body["data"]] == [reply_without_handle.id, shouting["id"]]


def test_only_requested_fields_and_author_expansion(sandbox: XSandbox) -> None:
    first = mention(sandbox, n=1)
    mention(sandbox, text="still waiting", n=1, in_reply_to=first["id"])
    plain = get_mentions(sandbox).json()
    assert {frozenset(t) for t in plain["data"]} == {
        frozenset({"id", "text", "edit_history_tweet_ids"})
    }
    assert "includes" not in plain
    rich = get_mentions(
        sandbox,
        **{
            "tweet.fields": "created_at,author_id,conversation_id,referenced_tweets,"
            "in_reply_to_user_id,entities",
            "expansions": "author_id",
            "user.fields": "public_metrics,username,name",
        },
    ).json()
    reply, original = rich["data"]
    assert reply["referenced_tweets"] == [{"type": "replied_to", "id": first["id"]}]
    assert reply["conversation_id"] == original["id"]
    assert reply["in_reply_to_user_id"] == original["author_id"] == "2001"
    assert "referenced_tweets" not in original
    assert original["entities"]["mentions"][0] == {
        "start": 0,
        "end": 9,
        "username": "AcmeCare",
        "id": BRAND_ID,
    }
    (user,) = rich["includes"]["users"]
    assert user["username"] == "customer1"
    assert user["public_metrics"]["followers_count"] == 121


@pytest.mark.parametrize("value", ["4", "101", "ten"])
def test_max_results_out_of_range_is_a_400_problem(sandbox: XSandbox, value: str) -> None:
    response = get_mentions(sandbox, max_results=value)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["type"] == PROBLEMS + "invalid-request"
    assert body["status"] == 400
    assert body["errors"][0]["parameters"] == {"max_results": [value]}


def test_unknown_parameter_or_field_is_a_400(sandbox: XSandbox) -> None:
    assert get_mentions(sandbox, next_token="x").status_code == 400
    assert get_mentions(sandbox, **{"tweet.fields": "created_at,mood"}).status_code == 400
    assert get_mentions(sandbox, **{"user.fields": "followers_count"}).status_code == 400


def test_authentication(sandbox: XSandbox) -> None:
    missing = get(f"{sandbox.url}/2/users/{BRAND_ID}/mentions")
    assert missing.status_code == 401
    assert missing.json() == {
        "title": "Unauthorized",
        "detail": "Unauthorized",
        "type": "about:blank",
        "status": 401,
    }
    assert get_mentions(sandbox, headers=oauth("999")).status_code == 401
    assert get_mentions(sandbox, headers=BEARER).status_code == 200
    forbidden = post(f"{sandbox.url}/2/tweets", json={"text": "hi"}, headers=BEARER)
    assert forbidden.status_code == 403
    assert forbidden.json()["type"] == PROBLEMS + "unsupported-authentication"
    dm = post(
        f"{sandbox.url}/2/dm_conversations/with/{BRAND_ID}/messages",
        json={"text": "hi"},
        headers=BEARER,
    )
    assert dm.status_code == 403
    assert get(f"{sandbox.url}/2/users/me", headers=oauth()).json() == {
        "data": {"id": BRAND_ID, "name": "Acme", "username": "AcmeCare"}
    }


def test_every_api_response_carries_rate_limit_headers(sandbox: XSandbox) -> None:
    responses = [
        get_mentions(sandbox),
        get(f"{sandbox.url}/2/users/{BRAND_ID}/mentions"),
        get(f"{sandbox.url}/2/nowhere", headers=oauth()),
        post(f"{sandbox.url}/2/tweets", json={"text": ""}, headers=oauth()),
    ]
    for response in responses:
        assert int(response.headers["x-rate-limit-limit"]) > 0
        assert int(response.headers["x-rate-limit-remaining"]) >= 0
        assert int(response.headers["x-rate-limit-reset"]) > time.time()


def test_rate_limit_per_user_then_429() -> None:
    app = create_app(rate_limits={"mentions": 2})
    server = start_in_thread(app)
    try:
        app.store.upsert_user(id=BRAND_ID, username="AcmeCare")
        url = f"{server.url}/2/users/{BRAND_ID}/mentions"
        first = get(url, headers=oauth())
        assert first.headers["x-rate-limit-limit"] == "2"
        assert first.headers["x-rate-limit-remaining"] == "1"
        assert get(url, headers=oauth()).headers["x-rate-limit-remaining"] == "0"
        third = get(url, headers=oauth())
        assert third.status_code == 429
        assert third.json() == {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        }
        assert third.headers["x-rate-limit-remaining"] == "0"
        reset = int(third.headers["x-rate-limit-reset"])
        assert time.time() < reset <= time.time() + 15 * 60 + 1
        # The app-only bucket is separate from the user's.
        assert get(url, headers=BEARER).status_code == 200
    finally:
        server.stop()


def test_default_rate_limits_follow_platforms_md(sandbox: XSandbox) -> None:
    assert get_mentions(sandbox).headers["x-rate-limit-limit"] == "300"
    assert get_mentions(sandbox, headers=BEARER).headers["x-rate-limit-limit"] == "450"
    created = post(f"{sandbox.url}/2/tweets", json={"text": "hi"}, headers=oauth())
    assert created.headers["x-rate-limit-limit"] == "100"


def test_create_tweet_reply_and_duplicate(sandbox: XSandbox) -> None:
    customer_post = mention(sandbox)
    body = {"text": "Sorry! DM us.", "reply": {"in_reply_to_tweet_id": customer_post["id"]}}
    created = post(f"{sandbox.url}/2/tweets", json=body, headers=oauth())
    assert created.status_code == 201
    data = created.json()["data"]
    assert data == {
        "id": data["id"],
        "text": "Sorry! DM us.",
        "edit_history_tweet_ids": [data["id"]],
    }
    stored = sandbox.control.get_tweet(data["id"])
    assert stored["in_reply_to_tweet_id"] == customer_post["id"]
    assert stored["conversation_id"] == customer_post["id"]
    assert stored["author_id"] == BRAND_ID
    again = post(f"{sandbox.url}/2/tweets", json=body, headers=oauth())
    assert again.status_code == 403
    assert again.json()["detail"] == "You are not allowed to create a Tweet with duplicate content."


@pytest.mark.parametrize(
    ("text", "status"),
    [("a" * 280, 201), ("a" * 281, 400), ("😀" * 140, 201), ("😀" * 141, 400), ("  ", 400)],
)
def test_create_tweet_text_length_by_weighted_count(
    sandbox: XSandbox, text: str, status: int
) -> None:
    response = post(f"{sandbox.url}/2/tweets", json={"text": text}, headers=oauth())
    assert response.status_code == status
    if status == 400:
        assert response.json()["type"] == PROBLEMS + "invalid-request"


def test_reply_to_unknown_tweet_is_a_400(sandbox: XSandbox) -> None:
    body = {"text": "hello", "reply": {"in_reply_to_tweet_id": "123456"}}
    response = post(f"{sandbox.url}/2/tweets", json=body, headers=oauth())
    assert response.status_code == 400
    assert "123456" in response.json()["errors"][0]["message"]


def test_dm_conversation_id_orders_ids_as_integers(sandbox: XSandbox) -> None:
    sandbox.control.upsert_user(id="99", username="early_adopter")
    response = post(
        f"{sandbox.url}/2/dm_conversations/with/99/messages",
        json={"text": "Hi, could you send us your order number?"},
        headers=oauth(),
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["dm_conversation_id"] == "99-1000"
    (event,) = sandbox.control.dm_events("99")
    assert event["dm_event_id"] == data["dm_event_id"]
    assert event["sender_id"] == BRAND_ID
    assert event["text"] == "Hi, could you send us your order number?"


def test_dm_text_limit(sandbox: XSandbox) -> None:
    sandbox.control.upsert_user(id="99", username="early_adopter")
    url = f"{sandbox.url}/2/dm_conversations/with/99/messages"
    assert post(url, json={"text": "x" * 10_000}, headers=oauth()).status_code == 201
    assert post(url, json={"text": "x" * 10_001}, headers=oauth()).status_code == 400
    assert post(url, json={"text": ""}, headers=oauth()).status_code == 400


def test_request_log_records_what_was_sent(sandbox: XSandbox) -> None:
    get_mentions(sandbox, max_results=5, **{"tweet.fields": "created_at"})
    post(f"{sandbox.url}/2/tweets", json={"text": "hi"}, headers=BEARER)
    read, write = sandbox.control.requests_log()
    assert read["method"] == "GET"
    assert read["path"] == f"/2/users/{BRAND_ID}/mentions"
    assert read["query"] == {"max_results": ["5"], "tweet.fields": ["created_at"]}
    assert read["auth"] == "oauth1"
    assert read["user_id"] == BRAND_ID
    assert write["json"] == {"text": "hi"}
    assert write["auth"] == "bearer"
    assert write["status"] == 403


def test_control_endpoints(sandbox: XSandbox) -> None:
    with pytest.raises(SandboxError, match="@nobody is not a user"):
        sandbox.control.post_mention("nobody", "2000", "carol", 10, "hi")
    post = sandbox.control.post_mention(
        "@acmecare", "2000", "carol", 10, "hi", created_at="2025-01-31T09:00:00Z"
    )
    assert post["text"] == "@acmecare hi"
    assert post["created_at"] == "2025-01-31T09:00:00.000Z"
    with pytest.raises(SandboxError, match="No post"):
        sandbox.control.get_tweet("1")
    sandbox.control.reset()
    assert sandbox.control.health()["tweets"] == 0
    assert sandbox.control.requests_log() == []


def test_unreachable_sandbox_is_a_clear_error() -> None:
    from channels_social.sandbox.x.control import SandboxControl

    with pytest.raises(SandboxError, match="not reachable"):
        SandboxControl("http://127.0.0.1:9").health()


def test_injected_fault_answers_a_server_error(sandbox: XSandbox) -> None:
    sandbox.control.inject_faults(503, count=1)
    assert get_mentions(sandbox).status_code == 503
    assert get_mentions(sandbox).status_code == 200
