"""The Facebook emulator answers, and accepts, only what Meta's Graph node specs allow.

Every field the emulator returns for a Page, PagePost, Comment, UnifiedThread or User must be
a field (or edge) of that node in ../shared/specs/facebook-graph/ with a value of the listed
type, nested nodes and edge items included; every request a client made through facebook-sdk
(read from the emulator's log) must name an edge and parameters the node's spec lists. The
field lists the emulator carries (graph_fields.py) must equal the specs'.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from channels_social.sandbox.facebook import graph_fields
from channels_social.sandbox.facebook.render import EMULATED_EDGES
from channels_social.sandbox.facebook.store import psid_for
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FacebookSandbox

SPEC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "facebook-graph"
NODES = ("Page", "PagePost", "Comment", "UnifiedThread", "User")
GRAPH_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$")
# Parameters Graph takes on any read or edge (paging, field selection, the token, the override).
GENERIC_PARAMS = {"fields", "limit", "after", "before", "since", "until", "summary", "method"}
DANA, BOB = "2001", "2002"
DANA_PSID = psid_for(DANA)  # her Page-scoped id on Messenger

pytestmark = pytest.mark.skipif(
    not SPEC_DIR.is_dir(), reason=f"The Graph spec folder {SPEC_DIR} is not present."
)


@cache
def spec(node: str) -> dict[str, Any]:
    return json.loads((SPEC_DIR / f"{node}.json").read_text())


def has_spec(node: str) -> bool:
    return (SPEC_DIR / f"{node}.json").is_file()


def field_types(node: str) -> dict[str, str]:
    return {f["name"]: f["type"] for f in spec(node)["fields"]}


def api(node: str, method: str, edge: str | None) -> dict[str, Any]:
    name = {"GET": "#get", "POST": "#update", "DELETE": "#delete"}[method]
    for entry in spec(node)["apis"]:
        if entry["method"] == method and (
            entry.get("endpoint") == edge if edge else entry.get("name") == name
        ):
            return entry
    raise AssertionError(f"{method} {node}/{edge or ''} is not in the {node} spec")


def get_edges(node: str) -> dict[str, str]:
    """GET edge name -> the node type its items are."""
    return {
        a["endpoint"]: a["return"]
        for a in spec(node)["apis"]
        if a["method"] == "GET" and a.get("endpoint")
    }


def check_value(value: Any, type_: str, where: str) -> None:
    if type_ == "string":
        assert isinstance(value, str), where
    elif type_ == "bool":
        assert isinstance(value, bool), where
    elif type_ in ("int", "unsigned int"):
        assert isinstance(value, int) and not isinstance(value, bool), where
        assert type_ == "int" or value >= 0, where
    elif type_ == "float":
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    elif type_ == "datetime":
        assert isinstance(value, str) and GRAPH_TIME.match(value), f"{where}: {value!r}"
    elif type_.startswith("list"):
        assert isinstance(value, list), where
        inner = type_[5:-1] if type_.startswith("list<") else None
        for n, item in enumerate(value):
            if inner:
                check_value(item, inner, f"{where}[{n}]")
    elif type_ == "Object" or type_.startswith("map"):
        assert isinstance(value, dict), where
    elif has_spec(type_):
        assert isinstance(value, dict), where
        assert_node(value, type_, where)
    elif type_[:1].isupper():  # a node type without a spec file here (Application, Profile...)
        assert isinstance(value, dict), where
    else:  # an enum type such as page_attire
        assert isinstance(value, str), where


def assert_node(body: dict[str, Any], node: str, where: str = "") -> None:
    """Every key is a field of ``node`` with the spec's type, or one of its edges."""
    where = where or node
    assert isinstance(body.get("id"), str), f"{where} has no string id"
    types, edges = field_types(node), get_edges(node)
    for key, value in body.items():
        if key in edges:
            assert_edge(value, edges[key], f"{where}.{key}")
            continue
        assert key in types, f"{where}.{key} is not a field of {node} in the spec"
        check_value(value, types[key], f"{where}.{key}")


def assert_edge(body: dict[str, Any], item_type: str, where: str) -> None:
    assert set(body) <= {"data", "paging", "summary"}, where
    assert isinstance(body["data"], list), where
    if "paging" in body:
        assert set(body["paging"]) <= {"cursors", "next", "previous"}, where
        assert set(body["paging"].get("cursors", {})) <= {"before", "after"}, where
    for n, item in enumerate(body["data"]):
        if has_spec(item_type):
            assert_node(item, item_type, f"{where}[{n}]")
        else:  # UnifiedMessage: no spec file; the emulator's own list is the judge
            assert set(item) <= graph_fields.UNIFIED_MESSAGE_FIELDS, f"{where}[{n}]"


def all_fields(node: str) -> str:
    return ",".join(sorted(field_types(node)))


@pytest.fixture
def world(facebook_sandbox_clean: FacebookSandbox) -> dict[str, str]:
    """A page with a post, comments (one reply, one hidden, one privately replied), a visitor
    post, a tagged post and a Messenger thread with both sides in it."""
    sandbox = facebook_sandbox_clean
    sandbox.register_page(username="acmesupport", fan_count=10, followers_count=12)
    control = sandbox.control
    brand_post = control.page_post(FB_PAGE_ID, "Spring sale!")
    comment = control.comment(brand_post["id"], person_id=DANA, name="Dana Lee", message="Late")
    reply = control.comment(comment["id"], person_id=BOB, name="Bob", message="Mine too")
    graph = sandbox.graph()
    answer = graph.put_comment(comment["id"], "Sorry, checking now")
    graph.request(f"v21.0/{reply['id']}", post_args={"is_hidden": "true"})
    visitor = control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="Refund?")
    control.visitor_post(FB_PAGE_ID, person_id=DANA, name="Dana Lee", message="x", tagged=True)
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana Lee", text="Hello on Messenger")
    graph.put_object(
        FB_PAGE_ID,
        "messages",
        recipient=json.dumps({"comment_id": comment["id"]}),
        message=json.dumps({"text": "Could you DM your order number?"}),
    )
    graph.put_object(
        FB_PAGE_ID,
        "messages",
        recipient=json.dumps({"id": DANA_PSID}),
        message=json.dumps({"text": "Thanks, looking"}),
        messaging_type="MESSAGE_TAG",
        tag="HUMAN_AGENT",
    )
    (thread,) = graph.get_connections(FB_PAGE_ID, "conversations", platform="messenger")["data"]
    return {
        "post": brand_post["id"],
        "comment": comment["id"],
        "reply": reply["id"],
        "answer": answer["id"],
        "visitor": visitor["id"],
        "thread": thread["id"],
        "person": DANA,
    }


def test_carried_field_lists_equal_the_specs() -> None:
    for node, constant in (
        ("Page", "PAGE"),
        ("PagePost", "PAGE_POST"),
        ("Comment", "COMMENT"),
        ("UnifiedThread", "UNIFIED_THREAD"),
        ("User", "USER"),
    ):
        assert getattr(graph_fields, f"{constant}_FIELDS") == set(field_types(node)), node
        assert getattr(graph_fields, f"{constant}_EDGES") == set(get_edges(node)), node
    for node, edges in EMULATED_EDGES.items():
        assert set(edges) <= set(get_edges(node)), node
    # A thread's messages are UnifiedMessage nodes, which have no spec file here.
    assert get_edges("UnifiedThread") == {"messages": "UnifiedMessage"}
    assert not has_spec("UnifiedMessage")


@pytest.mark.parametrize(
    ("key", "node"),
    [
        ("page", "Page"),
        ("post", "PagePost"),
        ("visitor", "PagePost"),
        ("comment", "Comment"),
        ("reply", "Comment"),
        ("thread", "UnifiedThread"),
        ("person", "User"),
    ],
)
def test_every_field_of_every_node_conforms(
    facebook_sandbox_clean: FacebookSandbox, world: dict[str, str], key: str, node: str
) -> None:
    graph = facebook_sandbox_clean.graph()
    object_id = FB_PAGE_ID if key == "page" else world[key]
    default = graph.get_object(object_id)
    assert_node(default, node)
    everything = graph.get_object(object_id, fields=all_fields(node))
    assert_node(everything, node)
    # The emulator fills a real share of each node, not just the id.
    assert len(everything) >= {"User": 4, "UnifiedThread": 8}.get(node, 6), everything


@pytest.mark.parametrize(
    ("key", "edge", "item"),
    [
        ("page", "feed", "PagePost"),
        ("page", "posts", "PagePost"),
        ("page", "published_posts", "PagePost"),
        ("page", "visitor_posts", "PagePost"),
        ("page", "tagged", "PagePost"),
        ("page", "conversations", "UnifiedThread"),
        ("post", "comments", "Comment"),
        ("comment", "comments", "Comment"),
        ("thread", "messages", "UnifiedMessage"),
    ],
)
def test_every_edge_item_conforms(
    facebook_sandbox_clean: FacebookSandbox,
    world: dict[str, str],
    key: str,
    edge: str,
    item: str,
) -> None:
    graph = facebook_sandbox_clean.graph()
    object_id = FB_PAGE_ID if key == "page" else world[key]
    fields = all_fields(item) if has_spec(item) else ",".join(graph_fields.UNIFIED_MESSAGE_FIELDS)
    body = graph.get_connections(object_id, edge, fields=fields, limit=1, filter="stream")
    assert body["data"], f"{edge} is empty in the world"
    assert_edge(body, item, f"{key}/{edge}")


def test_nested_edges_and_nodes_conform(
    facebook_sandbox_clean: FacebookSandbox, world: dict[str, str]
) -> None:
    graph = facebook_sandbox_clean.graph()
    comment_fields = all_fields("Comment")
    page = graph.get_object(
        FB_PAGE_ID,
        fields=f"name,feed.limit(5){{{all_fields('PagePost')},"
        f"comments.summary(true).filter(stream){{{comment_fields},parent{{{comment_fields}}}}}}},"
        f"conversations{{{all_fields('UnifiedThread')},messages{{message,from,to,created_time}}}}",
    )
    assert_node(page, "Page")
    comments = [c for p in page["feed"]["data"] for c in p.get("comments", {}).get("data", [])]
    assert any("parent" in c for c in comments)


def test_every_request_names_an_edge_and_parameters_of_the_spec(
    facebook_sandbox_clean: FacebookSandbox, world: dict[str, str]
) -> None:
    """What the fixture's facebook-sdk calls and these reads sent, judged by the spec's apis."""
    graph = facebook_sandbox_clean.graph()
    graph.get_connections(world["post"], "comments", filter="stream", order="reverse_chronological")
    graph.get_connections(FB_PAGE_ID, "conversations", platform="messenger", user_id=DANA_PSID)
    graph.get_connections(world["thread"], "messages", fields="message,from")
    graph.put_object(FB_PAGE_ID, "subscribed_apps", subscribed_fields="feed,messages")
    graph.put_object(FB_PAGE_ID, "feed", message="We are open on Sunday")
    graph.request(f"v21.0/{world['answer']}", post_args={"message": "Sorry, checking now!"})
    graph.delete_object(world["reply"])
    checked = 0
    for entry in facebook_sandbox_clean.control.requests_log():
        assert entry["status"] == 200, entry
        node, edge, method = entry["node_type"], entry["edge"], entry["method"]
        if not has_spec(node):  # a UnifiedMessage node read: no spec file to judge by
            continue
        accepted = {p["name"] for p in api(node, method, edge)["params"]}
        sent = set(entry["params"]) - GENERIC_PARAMS
        assert sent <= accepted, f"{method} {node}/{edge or ''}: {sorted(sent - accepted)}"
        checked += 1
    assert checked >= 12


@pytest.mark.parametrize(
    "body",
    [
        {"id": "1_2", "is_hidden": "false"},  # a bool as a string
        {"id": "1_2", "mood": "sunny"},  # not a Comment field
        {"id": "1_2", "created_time": "2026-03-02T09:00:00Z"},  # not Graph's time format
        {"id": "1_2", "comment_count": -1},  # unsigned
        {"id": "1_2", "parent": {"id": "1_1", "like_count": "3"}},  # a nested Comment
        {"id": "1_2", "comments": {"data": [{"id": "1_3", "from": "Dana"}]}},  # an edge item
    ],
)
def test_the_judge_refuses_a_wrong_shape(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError):
        assert_node(body, "Comment")
