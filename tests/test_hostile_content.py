"""Hostile customer text, generated (hypothesis), through real ingest and every page showing it.

Social posts and names are attacker-controlled. Each example posts one generated text (and a
generated display name) through the real ingest paths: a mention in the X emulator fetched by
``account_poll`` (tweepy over HTTP), and a comment delivered as a signed Facebook webhook. Then it
opens every page that shows customer text, as the roles that see them: the inbox (its page, its
search and its live update), the ticket page and its live update, the customer page and the
ticket's customer panel, the manager dashboard, the notifications (a manager assigns the ticket
to the agent, whose bell names the customer) and the API's JSON. It asserts:

- stored as the foundation defines (``channels_social.text.clean_text``: lone surrogates become
  U+FFFD, NUL goes, everything else is kept as sent), never lost;
- no page is a 5xx, and no markup from the text is live in the HTML: parsed with
  ``html.parser``, no element carries an event-handler attribute or a ``javascript:`` URL, no
  inline script runs, and no markup fragment of the text appears unescaped;
- every text node showing the customer's words or name sits inside an element with
  ``dir="auto"`` (a right-to-left override cannot flip the page around it);
- the API returns the stored text, byte for byte, as JSON.

- a notification e-mail (Django's real mail path, the locmem backend) carrying the text: an
  escalation's, whose subject names the customer's handle (on Facebook their own display
  name), and one whose title and body are the text itself: delivered (not refused as a bad
  header), its subject one header line with no CR or LF and nothing after it read as a header
  of its own, its body plain text (no HTML alternative), and no bidirectional control in
  either (an e-mail has no ``dir="auto"``), the customer's words still there.

The app has no CSV export today (nothing to check for formula injection).
"""

from __future__ import annotations

import email
import itertools
import json
import os
import time
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from careinbox.accounts.models import Role
from careinbox.api.models import ApiToken
from careinbox.notifications.services import notify
from channels_social.models import Platform, SocialAccount
from channels_social.sandbox.facebook.webhooks import feed_change, serialise
from channels_social.services import account_poll
from channels_social.text import clean_text
from monitoring.escalation.actions import run_actions
from tests.conftest import Persona
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tests.sandbox_fixtures import XSandbox
from tests.test_facebook_webhooks import SECRET, VERIFY, signature
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "30"))

# What attackers (and unlucky customers) really send, as building blocks.
MARKUP = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">win a prize</a>',
    "<svg/onload=alert(1)>",
    '" onmouseover="alert(1)" x="',
    "' onfocus='alert(1)' autofocus x='",
    "</textarea><script>alert(2)</script>",
    "</title><b>bold</b>",
    "<iframe src=//evil.example></iframe>",
    "<!-- comment -->",
    "<style>body{display:none}</style>",
]
PLAIN = [
    "javascript:alert(1)",
    "&lt;script&gt;",
    "&amp;",
    "&#60;b&#62;",
    "&#x3C;iframe&#x3E;",
    "&quot;",
    "\u202e",  # right-to-left override
    "\u202d\u2066\u2067\u2069",  # left-to-right override, isolates
    "\u200b\u200c\u200d\ufeff",  # zero-width space, joiners, BOM
    "e" + "\u0301" * 300,  # combining-mark flood
    "\x00",
    "\ud800",  # lone high surrogate
    "\udfff",  # lone low surrogate
    "\U0001f621",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic
    '=HYPERLINK("http://evil.example")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "{{ request }}",
    "{% debug %}",
    "%s%n",
    "\r\n\t",
]
piece = st.one_of(
    st.sampled_from(MARKUP),
    st.sampled_from(PLAIN),
    st.text(max_size=12),
)
hostile_text = st.one_of(
    st.lists(piece, min_size=1, max_size=8).map("".join),
    st.builds(lambda head, tail: head + "A" * 10_000 + tail, piece, piece),
)
hostile_name = st.lists(piece, min_size=1, max_size=4).map("".join)

_numbers = itertools.count(1)


class PageCheck(HTMLParser):
    """Collects what would make a page unsafe, and each marker seen outside ``dir="auto"``."""

    VOID = {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr",
    }  # fmt: skip

    def __init__(self, markers: list[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.markers = markers
        self.stack: list[tuple[str, bool]] = []
        self.problems: list[str] = []
        self.seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=…>: an event-handler attribute")
            if (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>: a javascript: URL")
        if tag == "script" and not values.get("src") and values.get("type") != "application/json":
            self.problems.append("an inline <script>")
        if tag not in self.VOID:
            self.stack.append((tag, values.get("dir") == "auto"))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        for marker in self.markers:
            if marker in data:
                self.seen.add(marker)
                inside = [tag for tag, _ in self.stack]
                if "title" in inside:
                    continue  # the browser tab's title: text only, no markup, no direction
                isolated = f"\u2068{marker}" in data  # our sentence isolates it (FSI...PDI)
                if not isolated and not any(auto for _, auto in self.stack):
                    self.problems.append(
                        f"{marker!r} shown outside dir=auto (in {inside[-3:]}: {data[:40]!r})"
                    )


def check_page(body: str, markers: list[str], raw_fragments: list[str]) -> list[str]:
    parser = PageCheck(markers)
    parser.feed(body)
    parser.close()
    problems = list(dict.fromkeys(parser.problems))
    problems += [f"raw markup in the page: {f!r}" for f in raw_fragments if f in body]
    return problems


def _fragments(*texts: str) -> list[str]:
    return [f for f in MARKUP if any(f in t for t in texts)]


def _pages(ticket: Ticket, agent: Persona, manager: Persona, marker: str) -> dict[str, Any]:
    """Every page that shows the ticket's customer text, fetched as who sees it."""
    agent_client, manager_client = agent.client(), manager.client()
    # The manager gives the ticket to the agent: the agent's bell names the customer.
    assign = manager_client.post(
        reverse("tickets:assign", args=[ticket.pk]), {"assignee": agent.user.pk}
    )
    assert assign.status_code == 302, assign.status_code
    htmx = {"HTTP_HX_REQUEST": "true"}
    detail = reverse("tickets:detail", args=[ticket.pk])
    return {
        "inbox": agent_client.get(reverse("tickets:inbox"), {"view": "all"}),
        "inbox search": agent_client.get(reverse("tickets:inbox"), {"q": marker}),
        "inbox live": agent_client.get(
            reverse("tickets:inbox"), {"live": "1", "token": "none"}, **htmx
        ),
        "ticket": agent_client.get(detail),
        "ticket live": agent_client.get(detail, {"live": "1", "shown_step": "none"}, **htmx),
        "customer": agent_client.get(reverse("tickets:customer", args=[ticket.customer_id])),
        "customer panel": agent_client.get(reverse("tickets:customer-sidebar", args=[ticket.pk])),
        "dashboard": manager_client.get(reverse("monitoring:dashboard")),
        "notifications": agent_client.get(reverse("notifications:list")),
        "notification badge": agent_client.get(reverse("notifications:badge")),
    }


def _check_everywhere(
    message: Message,
    markers: tuple[str, str],
    sent: tuple[str, str],
    agent: Persona,
    manager: Persona,
) -> None:
    ticket = message.ticket
    marker, name_marker = markers
    raw = _fragments(*sent)
    problems = []
    for page, response in _pages(ticket, agent, manager, marker).items():
        if response.status_code >= 500 or response.status_code not in (200, 204):
            problems.append(f"{page}: {response.status_code}")
            continue
        body = response.content.decode()
        problems += [f"{page}: {p}" for p in check_page(body, [marker, name_marker], raw)]
        if page in ("ticket", "customer", "customer panel", "inbox"):
            assert marker in body or name_marker in body, f"{page} shows neither text nor name"
    assert problems == [], "\n".join(problems)

    secret = ApiToken.issue(agent.user.memberships.get(), "hostile")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    listed = api.get(reverse("ticket-messages", args=[ticket.pk]))
    assert listed.status_code == 200
    texts = [m["text"] for m in json.loads(listed.content)["results"]]
    assert message.text in texts
    shown = api.get(reverse("ticket-detail", args=[ticket.pk]))
    assert shown.status_code == 200 and json.loads(shown.content)["id"] == ticket.pk
    _check_mail(message, markers, manager)


BIDI_CONTROLS = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
HEADERS = {"Content-Type", "MIME-Version", "Content-Transfer-Encoding", "Subject", "From", "To"}
HEADERS |= {"Date", "Message-ID"}


def _mail_problems(sent: Any, words: str) -> list[str]:
    """What is unsafe in one sent e-mail whose subject or body holds ``words``."""
    problems = []
    if "\r" in sent.subject or "\n" in sent.subject:
        problems.append(f"a line break in the subject: {sent.subject!r}")
    parsed = email.message_from_bytes(sent.message().as_bytes())
    extra = set(parsed.keys()) - HEADERS
    if extra or len(parsed.get_all("Subject") or []) != 1:
        problems.append(f"headers injected: {sorted(extra)}")
    if getattr(sent, "alternatives", []) or sent.content_subtype != "plain":
        problems.append("not plain text")
    for part, value in (("subject", sent.subject), ("body", sent.body)):
        if BIDI_CONTROLS & set(value):
            problems.append(f"a bidirectional control in the {part}")
        if any(ord(c) < 32 and c not in "\n\t" for c in value):
            problems.append(f"a control character in the {part}: {value[:60]!r}")
    if words not in sent.subject and words not in sent.body:
        problems.append(f"{words!r} lost from the e-mail")
    return problems


def _check_mail(message: Message, markers: tuple[str, str], manager: Persona) -> None:
    """The text in notification e-mails: an escalation's (subject: the handle) and one whose
    title and body are the customer's text, through Django's mail path."""
    ticket = message.ticket
    marker, name_marker = markers
    manager.user.email = "manager@example.com"
    manager.user.save(update_fields=["email"])
    mail.outbox.clear()
    run_actions(
        ticket,
        {"notify_roles": [Role.MANAGER], "email": True},
        rule_name="Loud customers",
        level=1,
        firing_id=next(_numbers),
    )
    notify(
        ticket.organization,
        [manager.user],
        f"New words from the customer: {message.text}",
        body=message.text,
        url=f"/tickets/{ticket.pk}/",
        email=True,
    )
    escalation, quoted = mail.outbox
    handle_marker = name_marker if name_marker in ticket.customer_username else ""
    problems = _mail_problems(escalation, handle_marker or f"#{ticket.pk}")
    problems += _mail_problems(quoted, marker)
    assert marker in quoted.body
    assert problems == [], "\n".join(problems)


# --- X: a mention in the emulator, fetched by the poll ----------------------------------------


@pytest.fixture
def x_account(make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox) -> Any:
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return account


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=hostile_text, name=hostile_name)
def test_hostile_x_mentions_are_stored_clean_and_shown_escaped(
    text: str,
    name: str,
    x_account: SocialAccount,
    x_sandbox_clean: XSandbox,
    agent: Persona,
    manager: Persona,
) -> None:
    n = next(_numbers)
    marker, name_marker = f"zqx{n}q", f"zqn{n}q"
    post = x_sandbox_clean.control.post_mention(
        "AcmeCare",
        str(5000 + n),
        f"user{n}",
        10,
        f"{marker} {text}",
        author_name=f"{name_marker} {name}",
    )
    assert account_poll(account_id=x_account.pk).startswith("ok: 1 new")
    message = Message.objects.select_related("ticket").get(external_id=str(post["id"]))
    # Stored as the foundation defines: only what no database can hold is changed.
    assert message.text == clean_text(post["text"])
    assert message.ticket.customer_display_name == clean_text(f"{name_marker} {name}")[:200]
    _check_everywhere(message, (marker, name_marker), (text, name), agent, manager)


# --- Facebook: a comment delivered by a signed webhook -----------------------------------------


@pytest.fixture
def fb_page(
    make_account: Callable[..., SocialAccount],
    facebook_sandbox_clean: FacebookSandbox,
    settings: Any,
) -> SocialAccount:
    settings.FACEBOOK_APP_SECRET = SECRET
    settings.FACEBOOK_VERIFY_TOKEN = VERIFY
    facebook_sandbox_clean.register_page(name="Acme")
    return make_account(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=facebook_sandbox_clean.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
        connected_at=timezone.now() - timedelta(minutes=1),
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=hostile_text, name=hostile_name)
def test_hostile_facebook_comments_are_stored_clean_and_shown_escaped(
    text: str, name: str, fb_page: SocialAccount, agent: Persona, manager: Persona
) -> None:
    n = next(_numbers)
    marker, name_marker = f"zqf{n}q", f"zqm{n}q"
    comment_id = f"11_{9000 + n}"
    value = {
        "from": {"id": str(7000 + n), "name": f"{name_marker} {name}"},
        "post_id": f"{FB_PAGE_ID}_11",
        "comment_id": comment_id,
        "parent_id": f"{FB_PAGE_ID}_11",
        "message": f"{marker} {text}",
        "created_time": int(time.time()),
        "item": "comment",
        "verb": "add",
    }
    body = serialise(feed_change(FB_PAGE_ID, value, int(time.time())))
    answer = Client().post(
        reverse("channels_social:facebook_webhook"),
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature(body),
    )
    assert answer.status_code == 200, answer.content
    message = Message.objects.select_related("ticket").get(external_id=comment_id)
    assert message.text == clean_text(f"{marker} {text}")
    # On Facebook the name is the handle: kept as sent, cut to the column's length.
    assert message.ticket.customer_username == clean_text(f"{name_marker} {name}")[:100]
    _check_everywhere(message, (marker, name_marker), (text, name), agent, manager)
