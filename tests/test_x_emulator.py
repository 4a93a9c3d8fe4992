"""The X emulator behaves like X where the connector depends on it."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from channels_social.sandbox.x.app import create_app
from channels_social.sandbox.x.control import SandboxControl, SandboxError
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


@pytest.mark.parametrize(
    ("status", "title", "type_"),
    [
        (400, "Invalid Request", PROBLEMS + "invalid-request"),
        (401, "Unauthorized", "about:blank"),
        (403, "Client Forbidden", PROBLEMS + "client-forbidden"),
        (404, "Not Found", "about:blank"),
        (429, "Too Many Requests", "about:blank"),
        (500, "Internal Server Error", "about:blank"),
        (502, "Bad Gateway", "about:blank"),
        (503, "Service Unavailable", "about:blank"),
        (504, "Gateway Timeout", "about:blank"),
    ],
)
def test_injected_fault_body_matches_its_status(
    sandbox: XSandbox, status: int, title: str, type_: str
) -> None:
    sandbox.control.inject_faults(status)
    response = post(f"{sandbox.url}/2/tweets", json={"text": "not stored"}, headers=oauth())
    assert response.status_code == status
    body = response.json()
    assert (body["title"], body["type"], body["status"]) == (title, type_, status)
    assert sandbox.control.health()["tweets"] == 0  # a status fault is not processed
    if status == 429:
        assert response.headers["x-rate-limit-remaining"] == "0"
        assert int(response.headers["x-rate-limit-reset"]) > time.time()
    if status == 403:
        assert body["reason"] == "client-not-enrolled"
    assert post(f"{sandbox.url}/2/tweets", json={"text": "ok"}, headers=oauth()).status_code == 201


def test_fault_injection_refuses_what_it_cannot_do(sandbox: XSandbox) -> None:
    with pytest.raises(SandboxError, match="Cannot inject HTTP 418"):
        sandbox.control.inject_faults(418)
    with pytest.raises(SandboxError, match="Unknown fault mode"):
        sandbox.control.inject_faults(mode="explode")
    with pytest.raises(SandboxError, match="delay must not be negative"):
        sandbox.control.inject_delay(-1)
    assert get_mentions(sandbox).status_code == 200


def test_after_commit_delay_stores_the_write_then_answers_late(sandbox: XSandbox) -> None:
    sandbox.control.upsert_user(id="99", username="early_adopter")
    sandbox.control.inject_delay(1.0, count=2)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{sandbox.url}/2/tweets", json={"text": "Sorry!"}, headers=oauth(), timeout=0.3
        )
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{sandbox.url}/2/dm_conversations/with/99/messages",
            json={"text": "Order number?"},
            headers=oauth(),
            timeout=0.3,
        )
    assert time.monotonic() - started < 1.5  # the client gave up, the server went on
    (stored,) = sandbox.app.store.tweets.values()
    assert (stored.text, stored.author_id) == ("Sorry!", BRAND_ID)
    assert [event["text"] for event in sandbox.control.dm_events("99")] == ["Order number?"]
    # Retrying the same post now hits X's duplicate check, as it would on X.
    again = post(f"{sandbox.url}/2/tweets", json={"text": "Sorry!"}, headers=oauth())
    assert again.status_code == 403
    # A patient client gets the real answer, just late.
    sandbox.control.inject_faults(mode="after_commit_delay", delay=0.5)
    started = time.monotonic()
    late = post(f"{sandbox.url}/2/tweets", json={"text": "Patience"}, headers=oauth())
    assert late.status_code == 201
    assert time.monotonic() - started >= 0.5
    assert sandbox.control.get_tweet(late.json()["data"]["id"])["text"] == "Patience"
    faults = [entry["fault"] for entry in sandbox.control.requests_log()]
    assert faults == ["after_commit_delay", "after_commit_delay", None, "after_commit_delay"]


def test_after_commit_drop_stores_the_write_and_closes_the_connection(
    sandbox: XSandbox,
) -> None:
    sandbox.control.upsert_user(id="99", username="early_adopter")
    # Through the raw control endpoint, as a non-Python tool would.
    raw = post(f"{sandbox.url}/_sandbox/faults", json={"mode": "after_commit_drop", "count": 1})
    assert raw.json() == {"ok": True}
    with pytest.raises(requests.ConnectionError) as caught:
        requests.post(
            f"{sandbox.url}/2/tweets", json={"text": "Sorry!"}, headers=oauth(), timeout=5
        )
    assert not isinstance(caught.value, requests.Timeout)
    (stored,) = sandbox.app.store.tweets.values()
    assert stored.text == "Sorry!"
    sandbox.control.inject_drop()
    with requests.Session() as session, pytest.raises(requests.ConnectionError):
        session.post(
            f"{sandbox.url}/2/dm_conversations/with/99/messages",
            json={"text": "Order number?"},
            headers=oauth(),
            timeout=5,
        )
    assert len(sandbox.control.dm_events("99")) == 1
    # The next call (on a fresh connection) works normally.
    assert post(f"{sandbox.url}/2/tweets", json={"text": "ok"}, headers=oauth()).status_code == 201
    assert sandbox.control.requests_log()[0]["fault"] == "after_commit_drop"


# Persistence


def test_tests_and_threads_stay_in_memory(x_sandbox: XSandbox) -> None:
    assert x_sandbox.app.store.state_path is None
    assert x_sandbox.control.health()["state_file"] is None


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "x_state.json"
    first_app = create_app(state_path=state)
    server = start_in_thread(first_app)
    control = SandboxControl(server.url)
    try:
        control.upsert_user(id=BRAND_ID, username="AcmeCare", name="Acme")
        old = control.post_mention("AcmeCare", "2001", "dana", 12, "late order")
        reply = post(
            f"{server.url}/2/tweets",
            json={"text": "Sorry Dana!", "reply": {"in_reply_to_tweet_id": old["id"]}},
            headers=oauth(),
        ).json()["data"]
        dm = post(
            f"{server.url}/2/dm_conversations/with/2001/messages",
            json={"text": "Order number?"},
            headers=oauth(),
        ).json()["data"]
        newest_before = control.post_mention("AcmeCare", "2002", "eli", 3, "hello?")
    finally:
        server.stop()  # a clean stop writes the state at once
    assert json.loads(state.read_text())["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x_state.json"]  # no temp file left

    app = create_app(state_path=state)
    server = start_in_thread(app)
    control = SandboxControl(server.url)
    try:
        assert control.health()["users"] == 3
        assert control.user_by_username("dana")["followers_count"] == 12
        assert control.user_by_username("AcmeCare")["tweet_count"] == 1
        assert control.get_tweet(reply["id"])["in_reply_to_tweet_id"] == old["id"]
        (event,) = control.dm_events("2001")
        assert event["dm_event_id"] == dm["dm_event_id"]
        assert event["dm_conversation_id"] == "1000-2001"
        url = f"{server.url}/2/users/{BRAND_ID}/mentions"
        everything = get(url, headers=oauth()).json()
        assert [t["id"] for t in everything["data"]] == [newest_before["id"], old["id"]]
        # Yesterday's ticket replies to yesterday's post: X still knows it.
        again = post(
            f"{server.url}/2/tweets",
            json={"text": "Any news?", "reply": {"in_reply_to_tweet_id": old["id"]}},
            headers=oauth(),
        )
        assert again.status_code == 201
        assert int(again.json()["data"]["id"]) > int(newest_before["id"])
        # The rebuilt mention index: a poller's since_id from before the restart still works.
        fresh = control.post_mention("AcmeCare", "2001", "dana", 12, "still waiting")
        assert int(fresh["id"]) > int(newest_before["id"])
        newer = get(url, params={"since_id": newest_before["id"]}, headers=oauth()).json()
        assert [t["id"] for t in newer["data"]] == [fresh["id"]]
        assert newer["meta"]["newest_id"] == fresh["id"]
        # The request log is not persisted: only this run's three X API calls are in it.
        assert [entry["method"] for entry in control.requests_log()] == ["GET", "POST", "GET"]
    finally:
        server.stop()


def test_state_is_saved_after_changes_and_flushed_on_close(tmp_path: Path) -> None:
    quick = XStore(tmp_path / "quick.json", save_delay=0.05)
    quick.upsert_user(id="1", username="a")
    deadline = time.monotonic() + 3
    while not (tmp_path / "quick.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads((tmp_path / "quick.json").read_text())["users"][0]["username"] == "a"
    quick.close()

    slow = XStore(tmp_path / "slow.json", save_delay=60)
    slow.upsert_user(id="1", username="a")
    slow.add_tweet(author_id="1", text="hi")
    assert not (tmp_path / "slow.json").exists()  # still within the debounce
    slow.close()
    assert len(json.loads((tmp_path / "slow.json").read_text())["tweets"]) == 1
    slow.reset()
    slow.close()
    assert XStore(tmp_path / "slow.json").tweets == {}


def test_ids_after_a_restart_never_collide_with_loaded_ids(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    store = XStore(state)
    store.upsert_user(id="1", username="a")
    # A post from a machine whose clock ran an hour ahead.
    future = store.next_id()
    store._last_id = int(future) + (3_600_000 << 22)
    ahead = store.add_tweet(author_id="1", text="from the future")
    store.close()
    # Even without the saved sequence, the loaded post's id alone keeps new ids above it.
    state.write_text(json.dumps({**json.loads(state.read_text()), "last_id": "0"}))
    restarted = XStore(state)
    assert int(restarted.add_tweet(author_id="1", text="now").id) > int(ahead.id)
    restarted.close()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 1, "users": [{"id": "not-digits"}], "tweets": [], "dm_events": []}',
        '["a list"]',
    ],
)
def test_a_corrupt_state_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    state = tmp_path / "x_sandbox_state.json"
    state.write_text(content)
    with caplog.at_level(logging.WARNING, logger="channels_social.sandbox.x.store"):
        app = create_app(state_path=state)
    assert app.store.users == {} and app.store.tweets == {}
    (aside,) = tmp_path.glob("x_sandbox_state.json.corrupt-*")
    assert aside.read_text() == content
    assert not state.exists()
    assert "unreadable" in caplog.text and str(aside) in caplog.text
    app.store.upsert_user(id="1", username="a")
    app.close()
    assert json.loads(state.read_text())["users"][0]["id"] == "1"
