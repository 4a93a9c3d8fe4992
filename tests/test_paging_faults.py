"""A paged list that answers a page already read: the X emulator's ``repeat_page`` (the same
``next_token`` again) and the Facebook emulator's ``repeat_page`` and ``loop_back`` (a
``paging.next`` pointing back to a page already read), read over HTTP by the real tweepy and
facebook-sdk clients through a real poll: polling ends, every post is stored exactly once, and
the cursor neither skips what was never read nor what arrives later."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone

from channels_social.base import Stream
from channels_social.facebook import adapter as facebook_adapter
from channels_social.models import Platform, SocialAccount
from channels_social.services import account_poll, cursor_position
from channels_social.x import adapter as x_adapter
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tests.sandbox_fixtures import XSandbox
from tickets.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

BRAND_ID = "1000"
# Pages of 5 rather than 100 (the adapters' page size; the emulators accept both): the same
# paging with a few posts, so a test stays short on a shared machine.
PAGE = 5


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(x_adapter, "PAGE_SIZE", PAGE)
    monkeypatch.setattr(facebook_adapter, "PAGE_SIZE", PAGE)


def stored_ids() -> list[str]:
    ids = list(Message.objects.values_list("external_id", flat=True))
    assert len(ids) == len(set(ids)), "a post was stored twice"
    return ids


# X --------------------------------------------------------------------------------------------


@pytest.fixture
def x_account(
    make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> SocialAccount:
    x_sandbox_clean.register_brand(id=BRAND_ID, username="AcmeCare")
    return make_account(
        external_id=BRAND_ID,
        username="AcmeCare",
        api_base_url=x_sandbox_clean.url,
        connected_at=timezone.now() - timedelta(minutes=5),
    )


def add_mentions(sandbox: XSandbox, count: int, start: int = 0) -> list[str]:
    store = sandbox.app.store
    ids = []
    for n in range(start, start + count):
        author = store.upsert_user(id=str(5000 + n % 7), username=f"cust{n % 7}")
        ids.append(store.add_tweet(author_id=author.id, text=f"@AcmeCare order {n} is late").id)
    return ids


def mention_calls(sandbox: XSandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.control.requests_log() if e["path"].endswith("/mentions")]


def test_x_emulator_repeats_the_page_with_the_same_next_token(x_sandbox_clean: XSandbox) -> None:
    x_sandbox_clean.register_brand(id=BRAND_ID, username="AcmeCare")
    ids = add_mentions(x_sandbox_clean, 12)
    url = f"{x_sandbox_clean.url}/2/users/{BRAND_ID}/mentions"
    auth = {"Authorization": f'OAuth oauth_token="{BRAND_ID}-tok", oauth_signature="x"'}
    first = requests.get(url, params={"max_results": 5}, headers=auth, timeout=5).json()
    token = first["meta"]["next_token"]
    x_sandbox_clean.control.inject_faults(mode="repeat_page", count=2)
    for _ in range(2):  # two faults: the first page twice, naming the token just sent
        again = requests.get(
            url, params={"max_results": 5, "pagination_token": token}, headers=auth, timeout=5
        ).json()
        assert again == first
    second = requests.get(
        url, params={"max_results": 5, "pagination_token": token}, headers=auth, timeout=5
    ).json()
    assert [t["id"] for t in second["data"]] == list(reversed(ids))[5:10]
    faults = [e["fault"] for e in x_sandbox_clean.control.requests_log()]
    assert faults == [None, "repeat_page", "repeat_page", None]


def test_x_a_repeated_page_once_stores_each_mention_once(
    x_account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    ids = add_mentions(x_sandbox_clean, 2 * PAGE + 2)  # three pages
    x_sandbox_clean.control.inject_faults(mode="repeat_page", count=1)
    assert account_poll(account_id=x_account.pk).startswith(f"ok: {2 * PAGE + 2} new")
    assert sorted(stored_ids(), key=int) == ids
    assert cursor_position(x_account, Stream.MENTIONS) == ids[-1]
    assert len(mention_calls(x_sandbox_clean)) == 4  # the repeated page asked for again


@pytest.mark.parametrize("repeats", [3, 1000])
def test_x_a_page_repeated_over_and_over_ends_the_poll_and_keeps_the_cursor(
    repeats: int, x_account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    early = add_mentions(x_sandbox_clean, 3)
    assert account_poll(account_id=x_account.pk).startswith("ok: 3 new")
    assert cursor_position(x_account, Stream.MENTIONS) == early[-1]
    backlog = add_mentions(x_sandbox_clean, 2 * PAGE + 2, start=3)
    x_sandbox_clean.control.inject_faults(mode="repeat_page", count=repeats)
    calls_before = len(mention_calls(x_sandbox_clean))

    outcome = account_poll(account_id=x_account.pk)
    assert outcome.startswith(f"ok: {PAGE} new") and "cut short" in outcome
    assert "X answered a page already read" in outcome
    # It ended: the first page, then the second asked for 1 + MAX_REPEATED_PAGES times.
    calls = len(mention_calls(x_sandbox_clean)) - calls_before
    assert calls == 2 + x_adapter.MAX_REPEATED_PAGES
    assert sorted(stored_ids(), key=int) == early + backlog[-PAGE:]
    # The older posts were never read: the cursor stays where the rows are complete.
    assert cursor_position(x_account, Stream.MENTIONS) == early[-1]

    x_sandbox_clean.app.clear_faults()  # X behaves again
    later = add_mentions(x_sandbox_clean, 2, start=100)
    assert account_poll(account_id=x_account.pk).startswith(f"ok: {PAGE + 4} new")
    assert sorted(stored_ids(), key=int) == early + backlog + later  # each exactly once
    assert cursor_position(x_account, Stream.MENTIONS) == later[-1]
    assert account_poll(account_id=x_account.pk).startswith("ok: 0 new")


def test_x_dm_listing_with_a_page_repeated_over_and_over(
    x_account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    store = x_sandbox_clean.app.store

    def add_dms(count: int, start: int) -> list[str]:
        for n in range(start, start + count):
            store.upsert_user(id=str(7000 + n), username=f"dm{n}")
        return [
            store.add_dm(sender_id=str(7000 + n), recipient_id=BRAND_ID, text=f"hi {n}").dm_event_id
            for n in range(start, start + count)
        ]

    early = add_dms(2, 0)
    assert account_poll(account_id=x_account.pk).startswith("ok: 2 new")
    backlog = add_dms(2 * PAGE - 2, 2)  # two pages of DM events
    x_sandbox_clean.control.inject_faults(mode="repeat_page", count=50)
    outcome = account_poll(account_id=x_account.pk)
    assert "cut short" in outcome, outcome
    assert cursor_position(x_account, Stream.DIRECT_MESSAGES) == early[-1]
    assert sorted(stored_ids(), key=int) == early + backlog[-PAGE:]
    x_sandbox_clean.app.clear_faults()
    assert account_poll(account_id=x_account.pk).startswith(f"ok: {PAGE - 2} new")
    assert sorted(stored_ids(), key=int) == early + backlog
    assert cursor_position(x_account, Stream.DIRECT_MESSAGES) == backlog[-1]


# Facebook -------------------------------------------------------------------------------------


@pytest.fixture
def fb_sandbox(facebook_sandbox_clean: FacebookSandbox) -> FacebookSandbox:
    facebook_sandbox_clean.register_page(name="Acme")
    return facebook_sandbox_clean


@pytest.fixture
def fb_account(
    make_account: Callable[..., SocialAccount], fb_sandbox: FacebookSandbox
) -> SocialAccount:
    return make_account(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=fb_sandbox.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
        connected_at=timezone.now() - timedelta(days=1),
    )


def add_comments(sandbox: FacebookSandbox, post_id: str, count: int, start: int = 0) -> list[str]:
    return [
        sandbox.control.comment(
            post_id, person_id=str(4000 + n), name=f"P{n}", message=f"late {n}"
        )["id"]
        for n in range(start, start + count)
    ]


def comment_calls(sandbox: FacebookSandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.control.requests_log() if e["edge"] == "comments"]


def test_facebook_emulator_loop_back_points_next_at_the_first_page(
    fb_sandbox: FacebookSandbox,
) -> None:
    post = fb_sandbox.control.page_post(FB_PAGE_ID, "Winter sale")
    add_comments(fb_sandbox, post["id"], 5)
    url = f"{fb_sandbox.url}/v21.0/{post['id']}/comments"
    params = {"access_token": FB_PAGE_TOKEN, "limit": "2"}
    first = requests.get(url, params=params, timeout=5).json()
    fb_sandbox.control.inject_faults(mode="loop_back")
    second = requests.get(first["paging"]["next"], timeout=5).json()
    assert [c["id"] for c in second["data"]] != [c["id"] for c in first["data"]]
    back = requests.get(second["paging"]["next"], timeout=5).json()
    assert back["data"] == first["data"]  # a page already read
    # Its own cursor still leads on, and the fault is spent.
    onward = requests.get(
        url, params={**params, "after": second["paging"]["cursors"]["after"]}, timeout=5
    ).json()
    assert len(onward["data"]) == 1 and "next" not in onward.get("paging", {})


@pytest.mark.parametrize(
    ("mode", "count"),
    [("loop_back", 1), ("loop_back", 1000), ("repeat_page", 1), ("repeat_page", 1000)],
)
def test_facebook_a_listing_that_leads_back_ends_and_stores_each_comment_once(
    mode: str, count: int, fb_account: SocialAccount, fb_sandbox: FacebookSandbox
) -> None:
    post = fb_sandbox.control.page_post(FB_PAGE_ID, "Winter sale")
    early = add_comments(fb_sandbox, post["id"], 2)
    assert account_poll(account_id=fb_account.pk).startswith("ok: 2 new")
    cursor = cursor_position(fb_account, Stream.PAGE_FEED)
    assert cursor
    backlog = add_comments(fb_sandbox, post["id"], 2 * PAGE + 2, start=2)  # three pages
    fb_sandbox.control.inject_faults(mode=mode, count=count)
    calls_before = len(comment_calls(fb_sandbox))

    outcome = account_poll(account_id=fb_account.pk)
    assert outcome.startswith("ok:"), outcome
    calls = len(comment_calls(fb_sandbox)) - calls_before
    # It ended, with at most a page or two asked for again.
    assert calls <= 3 + facebook_adapter.MAX_REPEATED_PAGES + 1
    stored = set(stored_ids())
    if count == 1:
        # Asked again (a repeat) or onward by the page's own cursor (a loop): nothing missed.
        assert stored == set(early + backlog) and "cut short" not in outcome
        assert int(cursor_position(fb_account, Stream.PAGE_FEED)) >= int(cursor)
    else:
        # For ever: the poll stops and keeps what it read, and the cursor does not pass
        # what it did not read. A loop reads every comment by the pages' own cursors but
        # never sees a last page; a repeat answers even first pages with the ones of the
        # poll before (stale, and harmless: the cursor stays).
        if mode == "loop_back":
            assert "cut short" in outcome and "Facebook led the comments listing" in outcome
            assert stored == set(early + backlog)
        assert set(early) <= stored <= set(early + backlog)
        if stored != set(early + backlog) or "cut short" in outcome:
            assert cursor_position(fb_account, Stream.PAGE_FEED) == cursor
        fb_sandbox.app.clear_faults()

    time.sleep(1.1)  # Graph's times are whole seconds: the later ones are newer
    later = add_comments(fb_sandbox, post["id"], 2, start=100)
    assert account_poll(account_id=fb_account.pk).startswith("ok:")
    assert set(stored_ids()) == set(early + backlog + later)  # each exactly once
    assert int(cursor_position(fb_account, Stream.PAGE_FEED)) > int(cursor)
    assert account_poll(account_id=fb_account.pk).startswith("ok: 0 new")


def test_facebook_empty_pages_for_ever_store_nothing_and_keep_the_cursor(
    fb_account: SocialAccount, fb_sandbox: FacebookSandbox
) -> None:
    """Every listing page empty, its ``next`` asking for itself again (Graph's filtered page,
    for ever): the poll ends, the cursor does not move, and once Graph behaves all arrive."""
    post = fb_sandbox.control.page_post(FB_PAGE_ID, "Winter sale")
    ids = add_comments(fb_sandbox, post["id"], PAGE + 2)
    fb_sandbox.control.inject_faults(mode="empty_page", count=1000)
    outcome = account_poll(account_id=fb_account.pk)
    assert "cut short" in outcome and "feed listing" in outcome, outcome
    assert stored_ids() == []
    assert cursor_position(fb_account, Stream.PAGE_FEED) == ""
    fb_sandbox.app.clear_faults()
    assert account_poll(account_id=fb_account.pk).startswith(f"ok: {PAGE + 2} new")
    assert sorted(stored_ids()) == sorted(ids)
