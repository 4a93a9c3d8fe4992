"""The Facebook Graph emulator behaves like Graph where the Facebook connector will depend on it:
tokens, fields, paging, the reply windows at their edges, private replies, moderation, usage
headers and throttling, faults, signed webhooks, state across restarts, and facebook-sdk."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import facebook
import pytest
import requests
from django.core.management import CommandError, call_command

from channels_social.management.commands import run_facebook_sandbox
from channels_social.sandbox.facebook.app import FacebookSandboxApp, create_app
from channels_social.sandbox.facebook.control import (
    FacebookSandboxControl,
    SandboxError,
    verify_webhook,
)
from channels_social.sandbox.facebook.store import FacebookStore, psid_for
from channels_social.sandbox.facebook.webhooks import sign
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox

V = "v21.0"
OTHER_PAGE_ID = "1000000002"
OTHER_TOKEN = "EAAsandbox-globex-page-token"
APP_SECRET = "sandbox-app-secret"
VERIFY_TOKEN = "verify-me"
DANA, BOB = "2001", "2002"
# On Messenger a person is their Page-scoped id, not the id on their comments.
DANA_PSID, BOB_PSID = psid_for(DANA), psid_for(BOB)
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


def get(sandbox: FacebookSandbox, path: str, token: str | None = FB_PAGE_TOKEN, **params: Any):
    if token is not None:
        params["access_token"] = token
    return requests.get(f"{sandbox.url}/{V}/{path}", params=params, timeout=5)


def post(sandbox: FacebookSandbox, path: str, token: str | None = FB_PAGE_TOKEN, **data: Any):
    if token is not None:
        data["access_token"] = token
    return requests.post(f"{sandbox.url}/{V}/{path}", data=data, timeout=5)


def send_message(sandbox: FacebookSandbox, recipient: dict[str, str], text: str, **extra: str):
    message = {"recipient": json.dumps(recipient), "message": json.dumps({"text": text})}
    return post(sandbox, f"{FB_PAGE_ID}/messages", **message, **extra)


def error(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"message", "type", "code", "fbtrace_id"} <= set(body["error"])
    return body["error"]


def at(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture
def sandbox(facebook_sandbox_clean: FacebookSandbox) -> FacebookSandbox:
    facebook_sandbox_clean.register_page(username="acmesupport", fan_count=5400)
    return facebook_sandbox_clean


@pytest.fixture
def page_post(sandbox: FacebookSandbox) -> dict[str, Any]:
    return sandbox.control.page_post(FB_PAGE_ID, "Our spring sale starts today!")


def frozen(sandbox: FacebookSandbox, moment: datetime) -> None:
    sandbox.control.set_clock(frozen_at=at(moment))


# Ids, versions, tokens


def test_ids_look_like_graph_and_grow_across_restarts() -> None:
    store = FacebookStore()
    store.upsert_page(id=FB_PAGE_ID, name="Acme", access_token="t")
    post_ = store.add_post(page_id=FB_PAGE_ID, message="hi")
    person = store.upsert_person(id=DANA, name="Dana Lee")
    comment = store.add_comment(target_id=post_.id, author_id=person.id, message="late")
    owner, number = post_.id.split("_")
    assert owner == FB_PAGE_ID and number.isdigit()
    assert comment.id.startswith(f"{number}_")
    message = store.add_message(page_id=FB_PAGE_ID, person_id=DANA, from_page=False, text="x")
    assert message.id.startswith("m_") and message.conversation_id.startswith("t_")
    time.sleep(0.002)
    assert FacebookStore().next_number() > post_.number  # a restarted, empty emulator


@pytest.mark.parametrize("prefix", ["/v19.0", "/v21.0", "/v3.1", ""])
def test_any_version_prefix_or_none(sandbox: FacebookSandbox, prefix: str) -> None:
    response = requests.get(
        f"{sandbox.url}{prefix}/{FB_PAGE_ID}", params={"access_token": FB_PAGE_TOKEN}, timeout=5
    )
    assert response.status_code == 200
    assert response.json() == {"name": "Acme Support", "id": FB_PAGE_ID}
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["facebook-api-version"] == (prefix.lstrip("/") or "v21.0")


def test_token_in_query_form_or_bearer_header(sandbox: FacebookSandbox, page_post: dict) -> None:
    bearer = {"Authorization": f"Bearer {FB_PAGE_TOKEN}"}
    by_header = requests.get(f"{sandbox.url}/{V}/me", headers=bearer, timeout=5)
    assert by_header.json() == {"name": "Acme Support", "id": FB_PAGE_ID}
    by_form = post(sandbox, f"{page_post['id']}/comments", message="Thanks all!")
    assert by_form.status_code == 200 and set(by_form.json()) == {"id"}


def test_wrong_missing_or_other_pages_token(sandbox: FacebookSandbox, page_post: dict) -> None:
    sandbox.register_page(id=OTHER_PAGE_ID, name="Globex", access_token=OTHER_TOKEN)
    wrong = get(sandbox, FB_PAGE_ID, token="EAAnot-a-token")
    assert wrong.status_code == 400
    assert error(wrong)["code"] == 190 and error(wrong)["type"] == "OAuthException"
    assert "invalid_token" in wrong.headers["WWW-Authenticate"]
    missing = get(sandbox, FB_PAGE_ID, token=None)
    assert error(missing)["code"] == 104
    for path in (FB_PAGE_ID, f"{FB_PAGE_ID}/conversations", page_post["id"]):
        other = get(sandbox, path, token=OTHER_TOKEN)
        assert error(other)["code"] == 190, path
    assert get(sandbox, OTHER_PAGE_ID, token=OTHER_TOKEN).json()["name"] == "Globex"


def test_unknown_object_edge_or_path(sandbox: FacebookSandbox) -> None:
    unknown = error(get(sandbox, "123456789"))
    assert (unknown["code"], unknown["error_subcode"], unknown["type"]) == (
        100,
        33,
        "GraphMethodException",
    )
    assert "Unsupported get request" in unknown["message"]
    assert "nonexisting field (nope)" in error(get(sandbox, f"{FB_PAGE_ID}/nope"))["message"]
    photos = error(get(sandbox, f"{FB_PAGE_ID}/photos"))  # a real edge, not emulated
    assert photos["code"] == 100 and "does not emulate" in photos["message"]
    assert error(get(sandbox, f"{FB_PAGE_ID}/feed/extra"))["code"] == 2500


# Fields


def test_fields_default_selected_and_nested(sandbox: FacebookSandbox, page_post: dict) -> None:
    control = sandbox.control
    comment = control.comment(page_post["id"], person_id=DANA, name="Dana Lee", message="Late!")
    control.comment(comment["id"], person_id=BOB, name="Bob Ray", message="Me too")
    assert get(sandbox, FB_PAGE_ID).json() == {"name": "Acme Support", "id": FB_PAGE_ID}
    page = get(sandbox, FB_PAGE_ID, fields="id,name,fan_count,username,link,category").json()
    assert page == {
        "id": FB_PAGE_ID,
        "name": "Acme Support",
        "fan_count": 5400,
        "username": "acmesupport",
        "link": "https://www.facebook.com/acmesupport",
        "category": "Company",
    }
    default_post = get(sandbox, page_post["id"]).json()
    assert set(default_post) == {"created_time", "message", "id"}
    nested = get(
        sandbox,
        page_post["id"],
        fields="message,from{id,name},comments.limit(1).summary(true){message,from{name},"
        "comments{message,from}}",
    ).json()
    assert nested["from"] == {"id": FB_PAGE_ID, "name": "Acme Support"}
    comments = nested["comments"]
    assert comments["summary"] == {"order": "chronological", "total_count": 1, "can_comment": True}
    (first,) = comments["data"]
    assert first["from"] == {"name": "Dana Lee", "id": DANA}  # id comes whether asked or not
    assert first["comments"]["data"][0]["message"] == "Me too"
    assert set(first["comments"]["data"][0]) == {"message", "from", "id"}


def test_unknown_field_or_bad_syntax_is_refused(sandbox: FacebookSandbox) -> None:
    unknown = error(get(sandbox, FB_PAGE_ID, fields="name,mood"))
    assert unknown["code"] == 100
    assert (
        unknown["message"] == "(#100) Tried accessing nonexisting field (mood) on node type (Page)"
    )
    assert error(get(sandbox, FB_PAGE_ID, fields="name,feed{message"))["code"] == 2500
    # A field the spec knows but the sandbox does not fill is left out, as Graph does.
    assert get(sandbox, FB_PAGE_ID, fields="name,hours").json() == {
        "name": "Acme Support",
        "id": FB_PAGE_ID,
    }


# Paging


def add_visitor_posts(sandbox: FacebookSandbox, count: int) -> list[str]:
    start = datetime.now(UTC) - timedelta(hours=count)
    return [
        sandbox.control.visitor_post(
            FB_PAGE_ID,
            person_id=DANA,
            name="Dana Lee",
            message=f"Where is order {n}?",
            created_time=at(start + timedelta(hours=n)),
        )["id"]
        for n in range(count)
    ]


def test_feed_pages_with_cursors_until_the_last(sandbox: FacebookSandbox) -> None:
    ids = add_visitor_posts(sandbox, 7)
    seen, sizes = [], []
    response = get(sandbox, f"{FB_PAGE_ID}/feed", limit=3, fields="id,message")
    while True:
        body = response.json()
        sizes.append(len(body["data"]))
        seen += [item["id"] for item in body["data"]]
        cursors = body["paging"]["cursors"]
        assert cursors["before"] and cursors["after"]
        next_url = body["paging"].get("next")
        if next_url is None:
            break
        query = parse_qs(urlparse(next_url).query)
        assert query["access_token"] == [FB_PAGE_TOKEN]  # facebook-sdk deletes it from here
        assert query["fields"] == ["id,message"] and query["after"] == [cursors["after"]]
        response = requests.get(next_url, timeout=5)
    assert sizes == [3, 3, 1]
    assert seen == list(reversed(ids))  # newest first


def test_cursors_survive_new_items_and_page_backwards(sandbox: FacebookSandbox) -> None:
    ids = add_visitor_posts(sandbox, 5)
    first = get(sandbox, f"{FB_PAGE_ID}/feed", limit=2).json()
    add_visitor_posts(sandbox, 1)  # a newer post arrives while the client pages
    second = requests.get(first["paging"]["next"], timeout=5).json()
    assert [p["id"] for p in second["data"]] == [ids[2], ids[1]]
    back = requests.get(second["paging"]["previous"], timeout=5).json()
    assert [p["id"] for p in back["data"]] == [ids[4], ids[3]]
    assert "previous" not in first["paging"]


def test_since_and_until(sandbox: FacebookSandbox) -> None:
    ids = add_visitor_posts(sandbox, 4)
    stored = [sandbox.control.get_object(i)["created_time"] for i in ids]
    since = int(datetime.fromisoformat(stored[1]).timestamp())
    newer = get(sandbox, f"{FB_PAGE_ID}/feed", since=since).json()
    assert [p["id"] for p in newer["data"]] == [ids[3], ids[2], ids[1]]
    older = get(sandbox, f"{FB_PAGE_ID}/feed", until=stored[1]).json()
    assert [p["id"] for p in older["data"]] == [ids[1], ids[0]]
    assert get(sandbox, f"{FB_PAGE_ID}/feed", since=since + 10**8).json() == {"data": []}
    assert error(get(sandbox, f"{FB_PAGE_ID}/feed", since="soon"))["code"] == 100


def test_feed_posts_visitor_posts_and_tagged(sandbox: FacebookSandbox, page_post: dict) -> None:
    control = sandbox.control
    visitor = control.visitor_post(FB_PAGE_ID, person_id=DANA, name="Dana Lee", message="Hi")
    tagged = control.visitor_post(
        FB_PAGE_ID, person_id=BOB, name="Bob Ray", message="@Acme Support broke", tagged=True
    )
    assert tagged["id"].startswith(f"{BOB}_")  # it lives on Bob's timeline

    def ids(edge: str) -> list[str]:
        return [p["id"] for p in get(sandbox, f"{FB_PAGE_ID}/{edge}").json()["data"]]

    assert ids("feed") == [visitor["id"], page_post["id"]]
    assert ids("posts") == ids("published_posts") == [page_post["id"]]
    assert ids("visitor_posts") == [visitor["id"]]
    assert ids("tagged") == [tagged["id"]]
    shown = get(sandbox, visitor["id"], fields="from,status_type,can_reply_privately").json()
    assert shown["from"] == {"name": "Dana Lee", "id": DANA}
    assert shown["status_type"] == "wall_post" and shown["can_reply_privately"] is True


def test_limit_is_capped_and_checked(sandbox: FacebookSandbox) -> None:
    add_visitor_posts(sandbox, 2)
    assert len(get(sandbox, f"{FB_PAGE_ID}/feed", limit=500).json()["data"]) == 2
    assert error(get(sandbox, f"{FB_PAGE_ID}/feed", limit="ten"))["code"] == 100
    assert error(get(sandbox, f"{FB_PAGE_ID}/feed", after="garbage!"))["code"] == 100


# Comments


def test_comments_toplevel_stream_order_and_replies(
    sandbox: FacebookSandbox, page_post: dict
) -> None:
    control = sandbox.control
    start = datetime.now(UTC) - timedelta(minutes=10)

    def comment(target: str, minute: int, text: str) -> str:
        return control.comment(
            target, person_id=DANA, name="Dana Lee", message=text,
            created_time=at(start + timedelta(minutes=minute)),
        )["id"]  # fmt: skip

    first = comment(page_post["id"], 0, "first")
    second = comment(page_post["id"], 1, "second")
    reply = comment(first, 2, "reply to first")
    reply_to_reply = comment(reply, 3, "reply to the reply")

    def listed(target: str, **params: Any) -> list[str]:
        return [c["id"] for c in get(sandbox, f"{target}/comments", **params).json()["data"]]

    assert listed(page_post["id"]) == [first, second]
    assert listed(page_post["id"], filter="stream") == [first, second, reply, reply_to_reply]
    assert listed(page_post["id"], order="reverse_chronological") == [second, first]
    # Graph keeps two levels: a reply to a reply hangs under the top-level comment.
    assert listed(first) == [reply, reply_to_reply]
    node = get(sandbox, reply_to_reply, fields="parent{id,message},comment_count").json()
    assert node["parent"] == {"id": first, "message": "first"}
    assert get(sandbox, first, fields="comment_count").json()["comment_count"] == 2
    assert error(get(sandbox, f"{first}/comments", order="ranked"))["code"] == 100
    assert error(get(sandbox, f"{first}/comments", filter="all"))["code"] == 100


def test_reply_to_a_comment_and_its_length_limit(sandbox: FacebookSandbox, page_post: dict) -> None:
    comment = sandbox.control.comment(page_post["id"], person_id=DANA, name="Dana", message="Late")
    created = post(sandbox, f"{comment['id']}/comments", message="x" * 8000)
    assert created.status_code == 200
    stored = sandbox.control.get_object(created.json()["id"])
    assert stored["parent_id"] == comment["id"] and stored["author_id"] == FB_PAGE_ID
    too_long = post(sandbox, f"{comment['id']}/comments", message="x" * 8001)
    assert error(too_long)["code"] == 100 and "8000" in error(too_long)["message"]
    assert error(post(sandbox, f"{comment['id']}/comments", message="  "))["code"] == 100
    (sent,) = sandbox.control.sent(FB_PAGE_ID)["comments"]
    assert sent["id"] == created.json()["id"]


def test_hide_unhide_edit_and_delete(sandbox: FacebookSandbox, page_post: dict) -> None:
    control = sandbox.control
    comment = control.comment(page_post["id"], person_id=DANA, name="Dana", message="spam spam")
    reply = control.comment(comment["id"], person_id=BOB, name="Bob", message="more spam")
    assert post(sandbox, comment["id"], is_hidden="true").json() == {"success": True}
    assert get(sandbox, comment["id"], fields="is_hidden").json()["is_hidden"] is True
    # Hidden comments stay visible to the page, marked.
    listed = get(sandbox, f"{page_post['id']}/comments", fields="is_hidden").json()["data"]
    assert listed == [{"is_hidden": True, "id": comment["id"]}]
    assert post(sandbox, comment["id"], is_hidden="false").json() == {"success": True}
    ours = post(sandbox, f"{comment['id']}/comments", message="We're on it").json()["id"]
    assert error(post(sandbox, ours, is_hidden="true"))["code"] == 100
    assert post(sandbox, ours, message="We're on it!").json() == {"success": True}
    assert error(post(sandbox, comment["id"], message="edited"))["code"] == 200
    assert error(post(sandbox, comment["id"], is_hidden="maybe"))["code"] == 100
    deleted = requests.delete(
        f"{sandbox.url}/{V}/{comment['id']}", params={"access_token": FB_PAGE_TOKEN}, timeout=5
    )
    assert deleted.json() == {"success": True}
    assert error(get(sandbox, reply["id"]))["error_subcode"] == 33  # its replies went with it
    actions = [a["action"] for a in control.sent(FB_PAGE_ID)["moderation"]]
    assert actions == ["hide", "unhide", "edit", "delete"]


def test_delete_by_method_override_and_tagged_posts_are_read_only(
    sandbox: FacebookSandbox,
) -> None:
    control = sandbox.control
    visitor = control.visitor_post(FB_PAGE_ID, person_id=DANA, name="Dana", message="rude")
    tagged = control.visitor_post(FB_PAGE_ID, person_id=DANA, name="Dana", message="x", tagged=True)
    assert post(sandbox, visitor["id"], method="delete").json() == {"success": True}
    assert error(post(sandbox, tagged["id"], method="delete"))["code"] == 200


# Messenger: conversations and the reply windows


def test_conversations_and_messages(sandbox: FacebookSandbox) -> None:
    control = sandbox.control
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana Lee", text="Hi, my order?")
    control.message(FB_PAGE_ID, person_id=BOB, name="Bob Ray", text="Refund please")
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana Lee", text="Order 42")
    body = get(
        sandbox,
        f"{FB_PAGE_ID}/conversations",
        platform="messenger",
        fields="participants,updated_time,messages{message,from,created_time},unread_count,snippet",
    ).json()
    dana, bob = body["data"]  # the most recently updated first
    assert dana["participants"]["data"][0] == {
        "name": "Dana Lee",
        "email": f"{DANA_PSID}@facebook.com",
        "id": DANA_PSID,
    }
    assert [m["message"] for m in dana["messages"]["data"]] == ["Order 42", "Hi, my order?"]
    assert dana["unread_count"] == 2 and dana["snippet"] == "Order 42"
    assert bob["id"].startswith("t_")
    only_bob = get(sandbox, f"{FB_PAGE_ID}/conversations", user_id=BOB_PSID).json()["data"]
    assert [c["id"] for c in only_bob] == [bob["id"]]
    assert get(sandbox, f"{FB_PAGE_ID}/conversations", platform="instagram").json() == {"data": []}
    messages = get(sandbox, f"{dana['id']}/messages", limit=1, fields="message").json()
    assert messages["data"][0]["message"] == "Order 42" and "next" in messages["paging"]
    person = get(sandbox, DANA, fields="first_name,last_name,name,profile_pic").json()
    assert (person["first_name"], person["last_name"]) == ("Dana", "Lee")
    control.message(FB_PAGE_ID, person_id="2999", name="Nobody Here", text="hi")
    sandbox.register_page(id=OTHER_PAGE_ID, name="Globex", access_token=OTHER_TOKEN)
    assert error(get(sandbox, "2999", token=OTHER_TOKEN))["error_subcode"] == 33


DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("extra", "elapsed", "allowed"),
    [
        ({"messaging_type": "RESPONSE"}, DAY - SECOND, True),
        ({"messaging_type": "RESPONSE"}, DAY, True),
        ({"messaging_type": "RESPONSE"}, DAY + SECOND, False),
        ({"messaging_type": "UPDATE"}, DAY + SECOND, False),
        ({"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}, DAY + SECOND, True),
        ({"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}, 7 * DAY - SECOND, True),
        ({"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}, 7 * DAY, True),
        ({"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}, 7 * DAY + SECOND, False),
        ({"messaging_type": "RESPONSE"}, 7 * DAY - SECOND, False),
    ],
)
def test_messenger_windows_at_their_edges(
    sandbox: FacebookSandbox, extra: dict[str, str], elapsed: timedelta, allowed: bool
) -> None:
    frozen(sandbox, T0)
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="Where is it?")
    frozen(sandbox, T0 + elapsed)
    response = send_message(sandbox, {"id": DANA_PSID}, "Sorry for the wait!", **extra)
    if allowed:
        assert response.status_code == 200
        body = response.json()
        assert body["recipient_id"] == DANA_PSID and body["message_id"].startswith("m_")
    else:
        refused = error(response)
        assert (refused["code"], refused["error_subcode"]) == (10, 2018278)
        assert refused["type"] == "OAuthException"
        assert "outside of allowed window" in refused["message"]


def test_window_with_backdated_messages_on_the_real_clock(sandbox: FacebookSandbox) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    control = sandbox.control
    control.message(
        FB_PAGE_ID, person_id=DANA, name="Dana", text="a", created_time=at(now - DAY + SECOND)
    )
    control.message(
        FB_PAGE_ID, person_id=BOB, name="Bob", text="b", created_time=at(now - DAY - SECOND)
    )
    assert (
        send_message(sandbox, {"id": DANA_PSID}, "hi", messaging_type="RESPONSE").status_code == 200
    )
    late = send_message(sandbox, {"id": BOB_PSID}, "hi", messaging_type="RESPONSE")
    assert error(late)["error_subcode"] == 2018278


def test_the_window_counts_from_the_persons_last_message_only(sandbox: FacebookSandbox) -> None:
    frozen(sandbox, T0)
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="Hello?")
    frozen(sandbox, T0 + 20 * timedelta(hours=1))
    assert send_message(sandbox, {"id": DANA_PSID}, "One sec", messaging_type="RESPONSE").ok
    frozen(sandbox, T0 + DAY + SECOND)  # the page's own message did not extend it
    assert (
        error(send_message(sandbox, {"id": DANA_PSID}, "Still there?", messaging_type="RESPONSE"))[
            "code"
        ]
        == 10
    )
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="Yes!")
    assert send_message(sandbox, {"id": DANA_PSID}, "Great", messaging_type="RESPONSE").ok


def test_message_parameters_and_length(sandbox: FacebookSandbox) -> None:
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="hi")
    ok = send_message(sandbox, {"id": DANA_PSID}, "x" * 2000, messaging_type="RESPONSE")
    assert ok.status_code == 200
    too_long = error(
        send_message(sandbox, {"id": DANA_PSID}, "x" * 2001, messaging_type="RESPONSE")
    )
    assert too_long["code"] == 100 and "2000" in too_long["message"]
    empty = error(send_message(sandbox, {"id": DANA_PSID}, " ", messaging_type="RESPONSE"))
    assert (empty["code"], empty["error_subcode"]) == (100, 2018034)
    assert error(send_message(sandbox, {"id": DANA_PSID}, "hi"))["code"] == 100  # no messaging_type
    no_tag = error(send_message(sandbox, {"id": DANA_PSID}, "hi", messaging_type="MESSAGE_TAG"))
    assert no_tag["code"] == 100 and "tag" in no_tag["message"]
    stranger = error(send_message(sandbox, {"id": "2999"}, "hi", messaging_type="RESPONSE"))
    # Her comments' id is not her Page-scoped id: Graph finds no Messenger user by it.
    by_comment_id = error(send_message(sandbox, {"id": DANA}, "hi", messaging_type="RESPONSE"))
    assert (by_comment_id["code"], by_comment_id["error_subcode"]) == (100, 2018001)
    assert (stranger["code"], stranger["error_subcode"]) == (100, 2018001)
    # The Send API's JSON body works too.
    as_json = requests.post(
        f"{sandbox.url}/{V}/me/messages",
        json={
            "recipient": {"id": DANA_PSID},
            "message": {"text": "hi"},
            "messaging_type": "RESPONSE",
        },
        headers={"Authorization": f"Bearer {FB_PAGE_TOKEN}"},
        timeout=5,
    )
    assert as_json.status_code == 200
    typing = post(
        sandbox,
        f"{FB_PAGE_ID}/messages",
        recipient=json.dumps({"id": DANA_PSID}),
        sender_action="typing_on",
    )
    assert typing.json() == {"recipient_id": DANA_PSID}
    texts = [m["text"] for m in sandbox.control.sent(FB_PAGE_ID)["messages"]]
    assert texts == ["x" * 2000, "hi"]


# Private replies


def test_one_private_reply_per_comment(sandbox: FacebookSandbox, page_post: dict) -> None:
    control = sandbox.control
    comment = control.comment(page_post["id"], person_id=DANA, name="Dana", message="Broken!")
    assert (
        get(sandbox, comment["id"], fields="can_reply_privately").json()["can_reply_privately"]
        is True
    )
    first = send_message(sandbox, {"comment_id": comment["id"]}, "Sorry! Your order number?")
    assert first.status_code == 200 and first.json()["recipient_id"] == DANA_PSID
    again = error(send_message(sandbox, {"comment_id": comment["id"]}, "Hello again"))
    assert again["code"] == 10900 and again["message"] == "(#10900) Activity already replied to"
    node = get(sandbox, comment["id"], fields="can_reply_privately,private_reply_conversation")
    assert node.json()["can_reply_privately"] is False
    (sent,) = control.sent(FB_PAGE_ID)["messages"]
    assert sent["private_reply_to"] == comment["id"]
    assert node.json()["private_reply_conversation"] == {"id": sent["conversation_id"]}
    # Afterwards: only inside the person's 24-hour window, once they answer.
    follow_up = error(
        send_message(sandbox, {"id": DANA_PSID}, "Any news?", messaging_type="RESPONSE")
    )
    assert follow_up["error_subcode"] == 2018278
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="It's 1234")
    assert send_message(sandbox, {"id": DANA_PSID}, "Thanks!", messaging_type="RESPONSE").ok


@pytest.mark.parametrize(
    ("elapsed", "allowed"),
    [(7 * DAY - SECOND, True), (7 * DAY, True), (7 * DAY + SECOND, False)],
)
def test_private_reply_within_7_days_of_the_comment(
    sandbox: FacebookSandbox, page_post: dict, elapsed: timedelta, allowed: bool
) -> None:
    frozen(sandbox, T0)
    comment = sandbox.control.comment(page_post["id"], person_id=DANA, name="Dana", message="?")
    frozen(sandbox, T0 + elapsed)
    response = send_message(sandbox, {"comment_id": comment["id"]}, "Let's talk in private")
    if allowed:
        assert response.status_code == 200
    else:
        assert error(response)["code"] == 10903


def test_private_reply_targets(sandbox: FacebookSandbox, page_post: dict) -> None:
    ours = post(sandbox, f"{page_post['id']}/comments", message="Ask us anything").json()["id"]
    assert error(send_message(sandbox, {"comment_id": ours}, "hi"))["code"] == 10903
    assert error(send_message(sandbox, {"comment_id": "1_2"}, "hi"))["error_subcode"] == 33
    visitor = sandbox.control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="Help")
    assert send_message(sandbox, {"post_id": visitor["id"]}, "Sending a DM").ok
    assert error(send_message(sandbox, {"post_id": visitor["id"]}, "again"))["code"] == 10900


# Usage headers, throttling and faults


def usage(
    response: requests.Response, page_id: str = FB_PAGE_ID
) -> tuple[dict[str, int], dict[str, Any] | None]:
    app_usage = json.loads(response.headers["X-App-Usage"])
    buc = response.headers.get("X-Business-Use-Case-Usage")
    return app_usage, (json.loads(buc)[page_id][0] if buc else None)


def test_usage_headers_on_every_answer(sandbox: FacebookSandbox) -> None:
    for response in (
        get(sandbox, FB_PAGE_ID),
        get(sandbox, f"{FB_PAGE_ID}/nope"),
        post(sandbox, f"{FB_PAGE_ID}/messages"),
        get(sandbox, FB_PAGE_ID, token="EAAwrong"),
    ):
        app_usage, buc = usage(response)
        assert set(app_usage) == {"call_count", "total_cputime", "total_time"}
        if response.status_code == 200 or error(response)["code"] != 190:
            assert buc is not None and buc["type"] == "pages"
            assert set(buc) == {
                "type",
                "call_count",
                "total_cputime",
                "total_time",
                "estimated_time_to_regain_access",
            }


def test_page_budget_then_code_32_then_app_budget_code_4(sandbox: FacebookSandbox) -> None:
    sandbox.control.set_rate_limits(page_calls_per_hour=2, app_calls_per_hour=10)
    assert usage(get(sandbox, FB_PAGE_ID))[1]["call_count"] == 50  # type: ignore[index]
    assert get(sandbox, FB_PAGE_ID).status_code == 200
    over = get(sandbox, FB_PAGE_ID)
    assert error(over)["code"] == 32 and error(over)["is_transient"] is True
    buc = usage(over)[1]
    assert buc is not None and buc["call_count"] > 100
    assert 0 < buc["estimated_time_to_regain_access"] <= 60
    sandbox.register_page(id=OTHER_PAGE_ID, name="Globex", access_token=OTHER_TOKEN)
    assert get(sandbox, OTHER_PAGE_ID, token=OTHER_TOKEN).status_code == 200  # its own budget
    sandbox.control.set_rate_limits(app_calls_per_hour=1, page_over_code=80001)
    get(sandbox, OTHER_PAGE_ID, token=OTHER_TOKEN)
    app_over = get(sandbox, OTHER_PAGE_ID, token=OTHER_TOKEN)
    assert error(app_over)["code"] == 4 and usage(app_over, OTHER_PAGE_ID)[0]["call_count"] > 100


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
def test_throttle_switch(sandbox: FacebookSandbox, code: int) -> None:
    sandbox.control.throttle(code, count=2, regain_minutes=7)
    for _ in range(2):
        throttled = get(sandbox, FB_PAGE_ID)
        assert error(throttled)["code"] == code and f"(#{code})" in error(throttled)["message"]
        app_usage, buc = usage(throttled)
        assert app_usage["call_count"] >= 100
        assert buc is not None and buc["estimated_time_to_regain_access"] == 7
    assert get(sandbox, FB_PAGE_ID).status_code == 200


@pytest.mark.parametrize(
    ("status", "code"), [(400, 100), (401, 190), (403, 10), (429, 4), (500, 1), (503, 2)]
)
def test_status_faults(sandbox: FacebookSandbox, page_post: dict, status: int, code: int) -> None:
    sandbox.control.inject_faults(status)
    faulted = post(sandbox, f"{page_post['id']}/comments", message="hello")
    assert faulted.status_code == status and error(faulted)["code"] == code
    if status == 429:  # the reset time travels in the business use case header
        assert usage(faulted)[1]["estimated_time_to_regain_access"] == 5  # type: ignore[index]
    assert sandbox.control.sent(FB_PAGE_ID)["comments"] == []  # not processed
    assert post(sandbox, f"{page_post['id']}/comments", message="hello").status_code == 200


@pytest.mark.parametrize("code", [368, 506])
def test_graph_error_faults(sandbox: FacebookSandbox, page_post: dict, code: int) -> None:
    sandbox.control.inject_graph_error(code, subcode=1390008)
    refused = error(post(sandbox, f"{page_post['id']}/comments", message="hi"))
    assert (refused["code"], refused["error_subcode"]) == (code, 1390008)
    assert f"(#{code})" in refused["message"]


def test_after_commit_delay_and_drop_still_store_the_reply(
    sandbox: FacebookSandbox, page_post: dict
) -> None:
    url = f"{sandbox.url}/{V}/{page_post['id']}/comments"
    data = {"access_token": FB_PAGE_TOKEN, "message": "Delayed"}
    sandbox.control.inject_delay(0.6)
    with pytest.raises(requests.ReadTimeout):
        requests.post(url, data=data, timeout=0.2)
    sandbox.control.inject_drop()
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data={**data, "message": "Dropped"}, timeout=5)
    sent = [c["message"] for c in sandbox.control.sent(FB_PAGE_ID)["comments"]]
    assert sent == ["Delayed", "Dropped"]
    faults = [entry["fault"] for entry in sandbox.control.requests_log()]
    assert faults == ["after_commit_delay", "after_commit_drop"]


def test_malformed_json_after_the_write(sandbox: FacebookSandbox, page_post: dict) -> None:
    sandbox.control.inject_faults(mode="malformed_json")
    garbled = post(sandbox, f"{page_post['id']}/comments", message="Hi")
    assert garbled.status_code == 200
    assert garbled.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        garbled.json()
    assert len(sandbox.control.sent(FB_PAGE_ID)["comments"]) == 1


def walk(sandbox: FacebookSandbox, path: str, **params: Any) -> tuple[list[str], int]:
    """Follow paging.next to the end, as a careful client does; (ids, pages)."""
    response = get(sandbox, path, **params)
    ids, pages = [], 0
    while True:
        body = response.json()
        pages += 1
        ids += [item["id"] for item in body["data"]]
        next_url = body.get("paging", {}).get("next")
        if not next_url:
            return ids, pages
        response = requests.get(next_url, timeout=5)


def test_an_empty_page_in_the_middle_keeps_its_next_link(sandbox: FacebookSandbox) -> None:
    ids = add_visitor_posts(sandbox, 5)
    first = get(sandbox, f"{FB_PAGE_ID}/feed", limit=2).json()
    sandbox.control.inject_faults(mode="empty_page")
    empty = requests.get(first["paging"]["next"], timeout=5).json()
    assert empty["data"] == [] and "next" in empty["paging"]
    rest, _ = walk(
        sandbox, f"{FB_PAGE_ID}/feed", limit=2, after=first["paging"]["cursors"]["after"]
    )
    follow = requests.get(empty["paging"]["next"], timeout=5).json()
    assert [p["id"] for p in follow["data"]] == rest[:2]
    assert [p["id"] for p in first["data"]] + rest == list(reversed(ids))


def test_a_repeated_page(sandbox: FacebookSandbox) -> None:
    ids = add_visitor_posts(sandbox, 6)
    sandbox.control.inject_faults(mode="repeat_page")  # waits for a second page of the edge
    seen, pages = walk(sandbox, f"{FB_PAGE_ID}/feed", limit=2)
    assert pages == 4 and len(seen) == 8  # one page came twice
    assert list(dict.fromkeys(seen)) == list(reversed(ids))


def test_fault_validation(sandbox: FacebookSandbox) -> None:
    with pytest.raises(SandboxError, match="Cannot inject HTTP 418"):
        sandbox.control.inject_faults(418)
    with pytest.raises(SandboxError, match="Unknown fault mode"):
        sandbox.control.inject_faults(mode="sulk")
    with pytest.raises(SandboxError, match="needs the Graph error code"):
        sandbox.control.inject_faults(mode="graph_error")


# Webhooks


class Receiver:
    """A tiny callback server: records raw deliveries and answers the verification GET."""

    def __init__(self, verify_token: str = VERIFY_TOKEN) -> None:
        self.verify_token = verify_token
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                ok = query.get("hub.mode") == ["subscribe"] and query.get("hub.verify_token") == [
                    receiver.verify_token
                ]
                body = query.get("hub.challenge", [""])[0].encode() if ok else b"Forbidden"
                self.send_response(200 if ok else 403)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.deliveries.append((dict(self.headers), raw))
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"EVENT_RECEIVED")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/facebook/"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout)
            return list(self.deliveries)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for _, raw in self.deliveries]


@pytest.fixture
def receiver(sandbox: FacebookSandbox) -> Iterator[Receiver]:
    callback = Receiver()
    sandbox.control.configure_webhooks(callback.url, APP_SECRET)
    yield callback
    callback.server.shutdown()
    callback.server.server_close()


def test_comment_webhook_is_signed_over_the_raw_body(
    sandbox: FacebookSandbox, page_post: dict, receiver: Receiver
) -> None:
    comment = sandbox.control.comment(
        page_post["id"], person_id=DANA, name="Dana Lee", message="Order 12/345 is late, café"
    )
    ((headers, raw),) = receiver.wait_for(1)
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Hub-Signature-256"], expected)
    assert headers["X-Hub-Signature-256"] == sign(raw, APP_SECRET)
    assert headers["Content-Type"] == "application/json"
    # Meta escapes "/" and non-ASCII: re-serialised JSON would not match the signature.
    assert b"12\\/345" in raw and b"caf\\u00e9" in raw
    payload = json.loads(raw)
    assert payload["object"] == "page"
    (entry,) = payload["entry"]
    assert entry["id"] == FB_PAGE_ID and isinstance(entry["time"], int)
    (change,) = entry["changes"]
    assert change["field"] == "feed"
    value = change["value"]
    assert value == {
        "from": {"id": DANA, "name": "Dana Lee"},
        "post_id": page_post["id"],
        "comment_id": comment["id"],
        "parent_id": page_post["id"],
        "message": "Order 12/345 is late, café",
        "created_time": value["created_time"],
        "item": "comment",
        "verb": "add",
    }
    assert abs(value["created_time"] - time.time()) < 60


def test_reply_visitor_post_and_messenger_webhooks(
    sandbox: FacebookSandbox, page_post: dict, receiver: Receiver
) -> None:
    control = sandbox.control
    comment = control.comment(page_post["id"], person_id=DANA, name="Dana", message="Late")
    receiver.wait_for(1)
    reply = control.comment(comment["id"], person_id=BOB, name="Bob", message="+1")
    receiver.wait_for(2)
    visitor = control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="Refund?")
    receiver.wait_for(3)
    message = control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="Hi there")
    control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="tag", tagged=True)
    post(sandbox, f"{comment['id']}/comments", message="We're on it")  # the page's own: none
    assert control.wait_for_webhooks()
    deliveries = receiver.wait_for(4)
    assert len(deliveries) == 4
    for headers, raw in deliveries:
        assert headers["X-Hub-Signature-256"] == sign(raw, APP_SECRET)
    _, reply_hook, visitor_hook, messenger_hook = receiver.payloads()
    reply_value = reply_hook["entry"][0]["changes"][0]["value"]
    assert reply_value["comment_id"] == reply["id"] and reply_value["parent_id"] == comment["id"]
    visitor_value = visitor_hook["entry"][0]["changes"][0]["value"]
    assert (visitor_value["item"], visitor_value["post_id"]) == ("status", visitor["id"])
    (event,) = messenger_hook["entry"][0]["messaging"]
    assert event["sender"] == {"id": DANA_PSID} and event["recipient"] == {"id": FB_PAGE_ID}
    assert event["message"] == {"mid": message["id"], "text": "Hi there"}
    assert event["timestamp"] > 10**12  # milliseconds, as Meta sends them


def test_dropped_deliveries_and_subscriptions(
    sandbox: FacebookSandbox, page_post: dict, receiver: Receiver
) -> None:
    control = sandbox.control
    control.drop_webhooks(2)
    for n in range(3):
        control.comment(page_post["id"], person_id=DANA, name="Dana", message=f"c{n}")
    assert control.wait_for_webhooks()
    ((_, raw),) = receiver.wait_for(1)
    assert json.loads(raw)["entry"][0]["changes"][0]["value"]["message"] == "c2"
    outcomes = [d["outcome"] for d in control.webhook_deliveries()]
    assert outcomes == ["dropped", "dropped", "delivered"]
    # Dropped events are still there for a poller.
    listed = get(sandbox, f"{page_post['id']}/comments").json()["data"]
    assert [c["message"] for c in listed] == ["c0", "c1", "c2"]
    # A page subscribed to messages only gets no feed deliveries.
    assert post(sandbox, f"{FB_PAGE_ID}/subscribed_apps", subscribed_fields="messages").ok
    apps = get(sandbox, f"{FB_PAGE_ID}/subscribed_apps").json()["data"]
    assert apps[0]["subscribed_fields"] == ["messages"]
    control.comment(page_post["id"], person_id=DANA, name="Dana", message="quiet")
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="loud")
    assert control.wait_for_webhooks()
    assert [p["entry"][0].get("messaging") is not None for p in receiver.payloads()] == [
        False,
        True,
    ]
    deleted = requests.delete(
        f"{sandbox.url}/{V}/{FB_PAGE_ID}/subscribed_apps",
        params={"access_token": FB_PAGE_TOKEN},
        timeout=5,
    )
    assert deleted.json() == {"success": True}
    assert get(sandbox, f"{FB_PAGE_ID}/subscribed_apps").json() == {"data": []}


def test_verification_handshake_helper(receiver: Receiver) -> None:
    accepted = verify_webhook(receiver.url, VERIFY_TOKEN, challenge="1158201444")
    assert accepted.ok and accepted.status == 200 and accepted.answer == "1158201444"
    refused = verify_webhook(receiver.url, "wrong-token")
    assert not refused.ok and refused.status == 403


def test_an_unreachable_callback_is_logged(sandbox: FacebookSandbox, page_post: dict) -> None:
    sandbox.control.configure_webhooks("http://127.0.0.1:9/nowhere", APP_SECRET)
    sandbox.control.comment(page_post["id"], person_id=DANA, name="Dana", message="hello")
    assert sandbox.control.wait_for_webhooks()
    (delivery,) = sandbox.control.webhook_deliveries()
    assert delivery["outcome"].startswith("unreachable")
    with pytest.raises(SandboxError, match="app secret"):
        sandbox.control.configure_webhooks("http://127.0.0.1:9/", None)


# State across restarts


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "facebook.json"
    first = create_app(state_path=path)
    first.store.upsert_page(id=FB_PAGE_ID, name="Acme", access_token=FB_PAGE_TOKEN)
    brand_post = first.store.add_post(page_id=FB_PAGE_ID, message="hello")
    comment = first.customer_comment(
        target_id=brand_post.id, person_id=DANA, person_name="Dana", message="late"
    )
    first.customer_message(page_id=FB_PAGE_ID, person_id=DANA, person_name="Dana", text="hi")
    first.store.set_hidden(comment.id, True)
    first.close()
    assert not list(tmp_path.glob(".facebook.json.*"))  # written atomically: no temp left
    second = create_app(state_path=path)
    assert second.store.comments[comment.id].is_hidden is True
    assert second.store.page_by_token(FB_PAGE_TOKEN) is not None
    assert second.store.conversation_with(FB_PAGE_ID, DANA) is not None
    assert second.store.next_number() > comment.number
    second.close()


def test_an_unreadable_state_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "facebook.json"
    path.write_text("{not json", encoding="utf-8")
    app = create_app(state_path=path)
    assert app.store.pages == {}
    assert len(list(tmp_path.glob("facebook.json.corrupt-*"))) == 1
    app.close()


# Control API


def test_control_endpoints(sandbox: FacebookSandbox, page_post: dict) -> None:
    control = sandbox.control
    with pytest.raises(SandboxError, match="No page 999"):
        control.get_page("999")
    with pytest.raises(SandboxError, match="No post or comment"):
        control.comment("1_2", name="Dana", message="hi")
    made_up = control.comment(page_post["id"], name="No Id", message="hi")
    assert control.get_object(made_up["author_id"])["name"] == "No Id"
    assert control.health()["pages"] == 1
    with pytest.raises(SandboxError, match="already belongs"):
        control.create_page(id=OTHER_PAGE_ID, name="Globex", access_token=FB_PAGE_TOKEN)
    now = control.set_clock(offset_seconds=3600)
    assert abs(datetime.fromisoformat(now) - datetime.now(UTC) - timedelta(hours=1)) < SECOND * 5
    control.reset()
    assert control.health()["pages"] == 0
    assert FacebookSandboxControl(sandbox.url).requests_log() == []


# facebook-sdk, unmocked


def test_facebook_sdk_graph_api_against_the_emulator(sandbox: FacebookSandbox) -> None:
    # The version quirk: the constructor refuses every current version.
    with pytest.raises(facebook.GraphAPIError, match="Version number should be"):
        facebook.GraphAPI(access_token=FB_PAGE_TOKEN, version="21.0")
    with pytest.raises(facebook.GraphAPIError, match="Valid API versions"):
        facebook.GraphAPI(access_token=FB_PAGE_TOKEN, version="4.0")
    graph = sandbox.graph()
    control = sandbox.control
    brand_post = control.page_post(FB_PAGE_ID, "New arrivals")
    for n in range(5):
        control.comment(brand_post["id"], person_id=DANA, name="Dana Lee", message=f"q{n}")
    assert graph.get_object("me", fields="name")["name"] == "Acme Support"
    comments = list(
        graph.get_all_connections(brand_post["id"], "comments", limit=2, fields="id,message,from")
    )
    assert [c["message"] for c in comments] == [f"q{n}" for n in range(5)]
    assert comments[0]["from"] == {"name": "Dana Lee", "id": DANA}
    reply = graph.put_comment(comments[0]["id"], "Thanks for asking!")
    assert control.get_object(reply["id"])["parent_id"] == comments[0]["id"]
    private = graph.put_object(
        FB_PAGE_ID,
        "messages",
        recipient=json.dumps({"comment_id": comments[1]["id"]}),
        message=json.dumps({"text": "Could you DM us your order number?"}),
    )
    assert private["recipient_id"] == DANA_PSID
    with pytest.raises(facebook.GraphAPIError) as refused:
        graph.put_object(
            FB_PAGE_ID,
            "messages",
            recipient=json.dumps({"id": DANA_PSID}),
            message=json.dumps({"text": "Any news?"}),
            messaging_type="RESPONSE",
        )
    assert refused.value.code == 10
    assert refused.value.result["error"]["error_subcode"] == 2018278
    assert graph.request(f"{V}/{comments[2]['id']}", post_args={"is_hidden": "true"}) == {
        "success": True
    }
    assert graph.delete_object(comments[3]["id"]) == {"success": True}
    assert graph.get_version() == "21.0"
    with pytest.raises(facebook.GraphAPIError) as bad:
        sandbox.graph("EAAexpired").get_object("me")
    assert bad.value.code == 190 and bad.value.type == "OAuthException"
    moderation = [a["action"] for a in control.sent(FB_PAGE_ID)["moderation"]]
    assert moderation == ["hide", "delete"]


# The management command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_command_options(tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.VAR_DIR = tmp_path
    served: list[FacebookSandboxApp] = []

    def fake_serve_forever(host: str, port: int, app: FacebookSandboxApp) -> None:
        served.append(app)
        app.close()

    monkeypatch.setattr(run_facebook_sandbox, "serve_forever", fake_serve_forever)
    out = StringIO()
    call_command(
        "run_facebook_sandbox",
        "--port=0",
        f"--page={FB_PAGE_ID}:{FB_PAGE_TOKEN}:Acme: Support",
        "--webhook-url=http://127.0.0.1:8000/webhooks/facebook/",
        f"--app-secret={APP_SECRET}",
        stdout=out,
    )
    (app,) = served
    assert app.store.state_path == tmp_path / "facebook_sandbox_state.json"
    assert app.store.pages[FB_PAGE_ID].name == "Acme: Support"
    assert app.webhooks.config.app_secret == APP_SECRET
    assert "webhooks to http://127.0.0.1:8000/webhooks/facebook/" in out.getvalue()
    with pytest.raises(CommandError, match="needs --app-secret"):
        call_command("run_facebook_sandbox", "--webhook-url=http://x/", stdout=out)
    with pytest.raises(CommandError, match="ID:TOKEN:NAME"):
        call_command("run_facebook_sandbox", "--page=acme", stdout=out)


def test_command_serves_and_saves_its_state_on_sigterm(tmp_path: Path) -> None:
    """honcho stops `make run` with SIGTERM; the next run must find the same world."""
    state = tmp_path / "facebook_state.json"
    port = free_port()
    env = {**os.environ, "DEBUG": "1", "CAREINBOX_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "manage.py", "run_facebook_sandbox", "--port", str(port)]
    command += ["--state", str(state), "--page", f"{FB_PAGE_ID}:{FB_PAGE_TOKEN}:Acme Support"]
    root = Path(__file__).resolve().parents[1]
    emulator = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    control = FacebookSandboxControl(f"http://127.0.0.1:{port}")
    try:
        control.wait_until_up(20)
        record = tmp_path / "var" / run_facebook_sandbox.ADDRESS_FILE
        assert json.loads(record.read_text())["url"] == f"http://127.0.0.1:{port}"
        brand_post = control.page_post(FB_PAGE_ID, "hello")
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(10)
    output = emulator.stdout.read().decode() if emulator.stdout else ""
    assert emulator.returncode == 0, output
    saved = json.loads(state.read_text())
    assert [p["id"] for p in saved["posts"]] == [brand_post["id"]]
    assert not (tmp_path / "var" / run_facebook_sandbox.ADDRESS_FILE).exists()
