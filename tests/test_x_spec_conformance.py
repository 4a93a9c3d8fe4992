"""The emulator answers, and the connector asks, only in shapes the X API v2 spec allows.

Responses are validated against the operation's response schema in the official OpenAPI
document; requests the real tweepy-based XAdapter sent (read from the emulator's log) must
name a documented path and method, documented query parameters with values inside the
spec's enums and ranges, and a JSON body that validates against the requestBody schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from channels_social.base import OutboundKind, SendTarget, Stream
from channels_social.models import ListeningQuery, SocialAccount
from channels_social.sandbox.x.shapes import INJECTABLE_STATUSES
from channels_social.x.adapter import XAdapter
from tests.sandbox_fixtures import XSandbox

SPEC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
SPEC_FILE = SPEC_DIR / "x-api-v2-openapi.json"
SPEC_URI = "urn:x-api-v2-openapi"
BRAND_ID = "1000"
OAUTH = {"Authorization": f'OAuth oauth_consumer_key="ck", oauth_token="{BRAND_ID}-tok"'}
BEARER = {"Authorization": "Bearer app-token"}
AUTH_SCHEMES = {"oauth1": "UserToken", "bearer": "BearerToken"}

pytestmark = pytest.mark.skipif(
    not SPEC_DIR.is_dir(), reason=f"The X API spec folder {SPEC_DIR} is not present."
)


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text())


@cache
def registry() -> Registry:
    resource = Resource.from_contents(spec(), default_specification=DRAFT4)
    return Registry().with_resource(SPEC_URI, resource)


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate against a schema fragment of the spec; its $refs resolve in the whole document."""
    if "$ref" in schema:
        schema = {"$ref": SPEC_URI + schema["$ref"]}
    else:
        schema = json.loads(json.dumps(schema).replace('"$ref": "#', f'"$ref": "{SPEC_URI}#'))
    OAS30Validator(schema, registry=registry(), format_checker=oas30_format_checker).validate(
        instance
    )


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    responses = spec()["paths"][path][method]["responses"]
    if str(status) in responses:
        return responses[str(status)]["content"]["application/json"]["schema"]
    return responses["default"]["content"]["application/problem+json"]["schema"]


def assert_conforms(response: requests.Response, path: str, method: str) -> None:
    assert response.headers["Content-Type"].startswith("application/json")
    for header in ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"):
        assert response.headers[header].isdigit()
    body = response.json()
    validate(body, response_schema(path, method, response.status_code))
    if response.status_code >= 400:
        assert set(body) >= {"title", "detail", "type", "status"}
        assert body["status"] == response.status_code
        problem_types = resolve({"$ref": "#/components/schemas/Problem"})["discriminator"]
        assert body["type"] in problem_types["mapping"]


@pytest.fixture
def sandbox(x_sandbox_clean: XSandbox) -> XSandbox:
    x_sandbox_clean.register_brand(id=BRAND_ID, username="AcmeCare")
    return x_sandbox_clean


def call(method: str, url: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("headers", OAUTH)
    return requests.request(method, url, timeout=5, **kwargs)


MENTIONS = "/2/users/{id}/mentions"
RICH = {
    "tweet.fields": "created_at,conversation_id,in_reply_to_user_id,referenced_tweets,"
    "author_id,lang,entities,public_metrics",
    "expansions": "author_id,referenced_tweets.id",
    "user.fields": "username,name,public_metrics,verified,created_at",
}


def test_mentions_with_data_empty_and_paged(sandbox: XSandbox) -> None:
    url = f"{sandbox.url}/2/users/{BRAND_ID}/mentions"
    assert_conforms(call("GET", url), MENTIONS, "get")  # empty
    first = sandbox.control.post_mention("AcmeCare", "2001", "dana", 12, "late order #A1")
    for n in range(11):
        sandbox.control.post_mention(
            "AcmeCare", f"{2002 + n}", f"cust{n}", n, f"hi {n}", in_reply_to=first["id"]
        )
    assert_conforms(call("GET", url, params=RICH), MENTIONS, "get")
    token = None
    for _ in range(3):
        params = {**RICH, "max_results": 5, **({"pagination_token": token} if token else {})}
        response = call("GET", url, params=params)
        assert_conforms(response, MENTIONS, "get")
        token = response.json()["meta"].get("next_token")
    assert token is None
    assert_conforms(
        call("GET", url, params={"since_id": first["id"]}, headers=BEARER), MENTIONS, "get"
    )
    unknown_user = call("GET", f"{sandbox.url}/2/users/424242/mentions")
    assert unknown_user.json()["errors"]
    assert_conforms(unknown_user, MENTIONS, "get")


def test_create_tweet_dm_users_me_and_get_tweet(sandbox: XSandbox) -> None:
    customer = sandbox.control.post_mention("AcmeCare", "2001", "dana", 12, "late order #A1")
    created = call(
        "POST",
        f"{sandbox.url}/2/tweets",
        json={"text": "So sorry!", "reply": {"in_reply_to_tweet_id": customer["id"]}},
    )
    assert created.status_code == 201
    assert_conforms(created, "/2/tweets", "post")
    dm = call("POST", f"{sandbox.url}/2/dm_conversations/with/2001/messages", json={"text": "Hi"})
    assert dm.status_code == 201
    assert_conforms(dm, "/2/dm_conversations/with/{participant_id}/messages", "post")
    me = call("GET", f"{sandbox.url}/2/users/me", params={"user.fields": "public_metrics"})
    assert_conforms(me, "/2/users/me", "get")
    tweet = call("GET", f"{sandbox.url}/2/tweets/{customer['id']}", params=RICH)
    assert_conforms(tweet, "/2/tweets/{id}", "get")


def test_problems(sandbox: XSandbox) -> None:
    url = f"{sandbox.url}/2/users/{BRAND_ID}/mentions"
    bad_range = call("GET", url, params={"max_results": 500})
    assert bad_range.status_code == 400
    assert_conforms(bad_range, MENTIONS, "get")
    too_long = call("POST", f"{sandbox.url}/2/tweets", json={"text": "x" * 281})
    assert too_long.status_code == 400
    assert_conforms(too_long, "/2/tweets", "post")
    unauthorized = call("GET", url, headers={})
    assert unauthorized.status_code == 401
    assert_conforms(unauthorized, MENTIONS, "get")
    call("POST", f"{sandbox.url}/2/tweets", json={"text": "same"})
    duplicate = call("POST", f"{sandbox.url}/2/tweets", json={"text": "same"})
    assert duplicate.status_code == 403
    assert_conforms(duplicate, "/2/tweets", "post")
    app_only = call("POST", f"{sandbox.url}/2/tweets", json={"text": "x"}, headers=BEARER)
    assert app_only.status_code == 403
    assert_conforms(app_only, "/2/tweets", "post")
    sandbox.app.configure_rate_limits({"mentions": 1})
    call("GET", url)
    limited = call("GET", url)
    assert limited.status_code == 429
    assert_conforms(limited, MENTIONS, "get")


OPERATIONS = [
    ("GET", f"/2/users/{BRAND_ID}/mentions", MENTIONS, "get", None),
    ("GET", "/2/users/me", "/2/users/me", "get", None),
    ("GET", "/2/tweets/1", "/2/tweets/{id}", "get", None),
    ("POST", "/2/tweets", "/2/tweets", "post", {"text": "hi"}),
    (
        "POST",
        "/2/dm_conversations/with/2001/messages",
        "/2/dm_conversations/with/{participant_id}/messages",
        "post",
        {"text": "hi"},
    ),
]


@pytest.mark.parametrize("status", INJECTABLE_STATUSES)
def test_every_injectable_fault_is_a_spec_problem(sandbox: XSandbox, status: int) -> None:
    sandbox.control.upsert_user(id="2001", username="dana")
    for method, path, template, spec_method, body in OPERATIONS:
        sandbox.control.inject_faults(status)
        response = call(method, f"{sandbox.url}{path}", json=body)
        assert response.status_code == status, (path, response.text)
        assert_conforms(response, template, spec_method)
        if status == 429:
            assert response.headers["x-rate-limit-remaining"] == "0"


def test_delayed_fault_answers_in_spec_shape(sandbox: XSandbox) -> None:
    sandbox.control.inject_delay(0.1)
    created = call("POST", f"{sandbox.url}/2/tweets", json={"text": "late but fine"})
    assert created.status_code == 201
    assert_conforms(created, "/2/tweets", "post")


def find_operation(path: str, method: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The spec's path template and operation for a concrete path; literal paths win."""
    candidates = []
    for template, item in spec()["paths"].items():
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template))
        match = re.fullmatch(pattern, path)
        if match and method.lower() in item:
            candidates.append((template.count("{"), template, item, match.groupdict()))
    assert candidates, f"{method} {path} is not an operation of the X API v2 spec"
    _, template, item, path_params = min(candidates, key=lambda c: c[0])
    return template, item[method.lower()], path_params


def query_value(raw: list[str], schema: dict[str, Any]) -> Any:
    assert len(raw) == 1, "X takes each query parameter once"
    schema = resolve(schema)
    if schema.get("type") == "array":
        return raw[0].split(",")
    if schema.get("type") == "integer":
        return int(raw[0])
    return raw[0]


def assert_request_conforms(entry: dict[str, Any]) -> None:
    template, operation, path_params = find_operation(entry["path"], entry["method"])
    parameters = [resolve(p) for p in operation.get("parameters", [])]
    declared = {p["name"]: p for p in parameters if p["in"] == "query"}
    for name, raw in entry["query"].items():
        assert name in declared, f"{template}: query parameter {name!r} is not in the spec"
        validate(query_value(raw, declared[name]["schema"]), declared[name]["schema"])
    for parameter in parameters:
        if parameter["in"] == "path":
            validate(path_params[parameter["name"]], parameter["schema"])
        if parameter["in"] == "query" and parameter.get("required"):
            assert parameter["name"] in entry["query"]
    body_spec = operation.get("requestBody")
    if entry["json"] is not None or (body_spec and body_spec.get("required")):
        assert body_spec, f"{template} takes no body"
        validate(entry["json"], body_spec["content"]["application/json"]["schema"])
    allowed = {name for scheme in operation["security"] for name in scheme}
    assert AUTH_SCHEMES[entry["auth"]] in allowed, f"{template} does not accept {entry['auth']}"


def test_every_request_the_adapter_sends_is_in_the_spec(sandbox: XSandbox) -> None:
    store = sandbox.app.store
    store.upsert_user(id="2001", username="dana", followers_count=12)
    ids = [store.add_tweet(author_id="2001", text=f"@AcmeCare hi {n}").id for n in range(150)]
    store.add_tweet(author_id="2001", text="still there?", in_reply_to_tweet_id=ids[0])
    account = SocialAccount(
        external_id=BRAND_ID,
        username="AcmeCare",
        api_base_url=sandbox.url,
        credentials={
            "consumer_key": "ck",
            "consumer_secret": "cs",
            "access_token": f"{BRAND_ID}-tok",
            "access_token_secret": "ts",
        },
    )
    adapter = XAdapter(account)
    batch = adapter.fetch(Stream.MENTIONS, cursor=None)
    adapter.fetch(Stream.MENTIONS, cursor=batch.next_cursor)
    adapter.fetch(Stream.MENTIONS, cursor=ids[100])
    adapter.send(
        OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=ids[0]), "Sorry Dana! 🙏"
    )
    adapter.send(
        OutboundKind.PRIVATE_MESSAGE,
        SendTarget(recipient_external_id="2001"),
        "Could you DM us your order number?",
    )
    adapter.client.get_me(user_fields=["public_metrics"])
    bearer = XAdapter(
        SocialAccount(
            external_id=BRAND_ID,
            username="AcmeCare",
            api_base_url=sandbox.url,
            credentials={"bearer_token": "app"},
        )
    )
    bearer.fetch(Stream.MENTIONS, cursor=ids[140])

    log = sandbox.control.requests_log()
    assert {(e["method"], e["path"]) for e in log} >= {
        ("GET", f"/2/users/{BRAND_ID}/mentions"),
        ("POST", "/2/tweets"),
        ("POST", "/2/dm_conversations/with/2001/messages"),
        ("GET", "/2/users/me"),
    }
    assert any("pagination_token" in e["query"] for e in log)
    for entry in log:
        assert entry["status"] < 400, entry
        assert_request_conforms(entry)


DM_EVENTS = "/2/dm_events"
SEARCH = "/2/tweets/search/recent"
DM_FIELDS = {
    "dm_event.fields": "id,text,event_type,created_at,dm_conversation_id,sender_id,participant_ids",
    "expansions": "sender_id,participant_ids",
    "user.fields": "username,public_metrics,verified,receives_your_dm",
}


def test_dm_events_with_data_empty_paged_and_refused(sandbox: XSandbox) -> None:
    url = f"{sandbox.url}/2/dm_events"
    assert_conforms(call("GET", url), DM_EVENTS, "get")  # empty
    for n in range(5):
        sandbox.control.send_dm("AcmeCare", f"{2001 + n % 2}", f"cust{n % 2}", f"hello {n}")
    full = call("GET", url, params=DM_FIELDS)
    assert_conforms(full, DM_EVENTS, "get")
    first = full.json()["data"][0]
    assert first["event_type"] == "MessageCreate" and first["dm_conversation_id"] == "1000-2001"
    token = None
    for _ in range(3):
        params = {**DM_FIELDS, "max_results": 2, **({"pagination_token": token} if token else {})}
        page = call("GET", url, params=params)
        assert_conforms(page, DM_EVENTS, "get")
        token = page.json()["meta"].get("next_token")
    assert token is None
    for bad in ({"max_results": 0}, {"event_types": "Typing"}, {"pagination_token": "x" * 16}):
        refused = call("GET", url, params=bad)
        assert refused.status_code == 400, bad
        assert_conforms(refused, DM_EVENTS, "get")
    app_only = call("GET", url, headers=BEARER)
    assert app_only.status_code == 403
    assert_conforms(app_only, DM_EVENTS, "get")


def test_a_dm_to_someone_who_does_not_accept_it_is_a_403_problem(sandbox: XSandbox) -> None:
    sandbox.control.upsert_user(id="2001", username="dana", accepts_dms=False)
    refused = call(
        "POST", f"{sandbox.url}/2/dm_conversations/with/2001/messages", json={"text": "Hi"}
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == "You cannot send messages to this user."
    assert_conforms(refused, "/2/dm_conversations/with/{participant_id}/messages", "post")
    user = call("GET", f"{sandbox.url}/2/users/2001", params={"user.fields": "receives_your_dm"})
    assert user.json()["data"]["receives_your_dm"] is False
    assert_conforms(user, "/2/users/{id}", "get")


def test_search_timeline_quotes_retweets_and_hiding(sandbox: XSandbox) -> None:
    control = sandbox.control
    url = f"{sandbox.url}/2/tweets/search/recent"
    assert_conforms(call("GET", url, params={"query": "#thissucks"}), SEARCH, "get")  # empty
    root = control.post_tweet("1000", "AcmeCare", "New blender out now")
    for n in range(12):
        control.post_tweet(f"{2001 + n}", f"c{n}", f"#thissucks take {n}", verified=n == 0)
    quote = control.post_tweet("2001", "c0", "#thissucks look", quote_of=root["id"])
    control.post_tweet("2002", "c1", retweet_of=quote["id"])
    reply = control.post_tweet("2003", "c2", "@AcmeCare meh", in_reply_to=root["id"])
    params = {**RICH, "query": "#thissucks -is:retweet", "max_results": 10}
    page = call("GET", url, params=params)
    assert_conforms(page, SEARCH, "get")
    body = page.json()
    assert body["data"][0]["referenced_tweets"] == [{"type": "quoted", "id": root["id"]}]
    assert body["meta"]["next_token"]
    second = call("GET", url, params={**params, "next_token": body["meta"]["next_token"]})
    assert_conforms(second, SEARCH, "get")
    assert "next_token" not in second.json()["meta"]
    since = call("GET", url, params={**RICH, "query": "#thissucks", "since_id": quote["id"]})
    assert_conforms(since, SEARCH, "get")
    assert since.json()["data"][0]["referenced_tweets"][0]["type"] == "retweeted"
    for bad in ({"query": ""}, {"query": "a" * 513}, {"query": '"open'}, {"max_results": 5}):
        refused = call("GET", url, params={"query": "x", **bad})
        assert refused.status_code == 400, bad
        assert_conforms(refused, SEARCH, "get")

    own = f"{sandbox.url}/2/users/1000/tweets"
    timeline = call("GET", own, params={**RICH, "exclude": "retweets,replies"})
    assert_conforms(timeline, "/2/users/{id}/tweets", "get")
    metrics = timeline.json()["data"][0]["public_metrics"]
    assert (metrics["quote_count"], metrics["reply_count"]) == (1, 1)

    hidden = call("PUT", f"{sandbox.url}/2/tweets/{reply['id']}/hidden", json={"hidden": True})
    assert hidden.status_code == 200 and hidden.json() == {"data": {"hidden": True}}
    assert_conforms(hidden, "/2/tweets/{tweet_id}/hidden", "put")
    not_a_reply = call("PUT", f"{sandbox.url}/2/tweets/{quote['id']}/hidden", json={"hidden": True})
    assert not_a_reply.status_code == 403
    assert_conforms(not_a_reply, "/2/tweets/{tweet_id}/hidden", "put")


@pytest.mark.django_db
def test_every_request_of_the_new_streams_and_kinds_is_in_the_spec(
    sandbox: XSandbox, make_account: Callable[..., SocialAccount]
) -> None:
    store = sandbox.app.store
    store.upsert_user(id="2001", username="dana", followers_count=12)
    mention = store.add_tweet(author_id="2001", text="@AcmeCare hi")
    store.add_tweet(author_id="1000", text="Sorry!", in_reply_to_tweet_id=mention.id)
    reply = store.add_tweet(author_id="2001", text="thanks", in_reply_to_tweet_id=mention.id)
    brand_root = store.add_tweet(author_id="1000", text="We are open")
    rude = store.add_tweet(author_id="2001", text="boo", in_reply_to_tweet_id=brand_root.id)
    for n in range(120):
        store.add_dm(sender_id="2001", recipient_id="1000", text=f"dm {n}")
    account = make_account(external_id=BRAND_ID, username="AcmeCare", api_base_url=sandbox.url)
    query = ListeningQuery.objects.create(
        organization=account.organization, brand=account.brand, query="#thissucks"
    )
    adapter = XAdapter(account)
    dms = adapter.fetch(Stream.DIRECT_MESSAGES, cursor=None)
    assert len(dms.posts) == 120
    adapter.fetch(Stream.DIRECT_MESSAGES, cursor=dms.next_cursor)
    adapter.fetch(Stream.OWN_POSTS, cursor=None)
    assert adapter.stream_keys(Stream.SEARCH) == [str(query.pk)]
    adapter.fetch(Stream.SEARCH, cursor=None, key=str(query.pk))
    adapter.fetch(Stream.SEARCH, cursor=reply.id, key=str(query.pk))
    adapter.send(OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=reply.id), "Hi!")
    adapter.send(OutboundKind.PRIVATE_MESSAGE, SendTarget(recipient_external_id="2001"), "DM")
    adapter.send(OutboundKind.HIDE, SendTarget(in_reply_to_external_id=rude.id), "")

    log = sandbox.control.requests_log()
    assert {(e["method"], e["path"]) for e in log} >= {
        ("GET", "/2/dm_events"),
        ("GET", f"/2/users/{BRAND_ID}/tweets"),
        ("GET", "/2/tweets/search/recent"),
        ("GET", "/2/users/2001"),
        ("POST", "/2/tweets"),
        ("POST", "/2/dm_conversations/with/2001/messages"),
        ("PUT", f"/2/tweets/{rude.id}/hidden"),
    }
    assert any("pagination_token" in e["query"] for e in log if e["path"] == "/2/dm_events")
    for entry in log:
        assert entry["status"] < 400, entry
        assert_request_conforms(entry)
