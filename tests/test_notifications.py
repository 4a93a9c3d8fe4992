"""The bell and the notification list (escaped, scoped to the user and organisation), and the
Slack-compatible webhook delivered to a real local HTTP server, retried when it fails."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from careinbox.accounts.models import Organization
from careinbox.notifications.models import Notification
from careinbox.notifications.services import notify
from careinbox.notifications.tasks import deliver_webhook
from monitoring.escalation.engine import escalation_run_actions, escalation_sweep
from monitoring.models import EscalationFiring, EscalationRule
from tests.conftest import Persona
from tests.factories import TicketFactory

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert("x")</script>'


class ChatServer:
    """A local incoming-webhook endpoint: records each body, answers the statuses queued."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.statuses: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                server.bodies.append(json.loads(self.rfile.read(length)))
                status = server.statuses.pop(0) if server.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/services/T0/B0/secret"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


def test_the_bell_shows_the_unread_count_of_this_user_here(
    org: Organization, agent: Persona, manager: Persona, outsider: Persona
) -> None:
    client = agent.client()
    page = client.get(reverse("tickets:inbox")).content.decode()
    badge_url = reverse("notifications:badge")
    assert f'hx-get="{badge_url}"' in page and 'hx-trigger="load, every 15s"' in page
    assert 'href="/notifications/"' in page
    assert client.get(badge_url).content.decode().strip() == ""  # nothing unread: nothing shown

    notify(org, [agent.user], "Ticket #1 at risk", url="/tickets/1/", dedupe_key="a")
    notify(org, [agent.user], "Ticket #2 at risk", url="/tickets/2/", dedupe_key="b")
    notify(org, [manager.user], "Not Alice's", dedupe_key="c")
    notify(outsider.organization, [outsider.user], "Globex's", dedupe_key="d")
    response = client.get(badge_url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and len(response.content) < 300
    assert '<span class="bell-count">2</span>' in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert Client().get(badge_url).status_code == 302  # signed out: to the login page
    assert 'id="bell-count"' not in Client().get(reverse("login")).content.decode()


def test_the_list_is_newest_first_escaped_and_marks_read(
    org: Organization, agent: Persona, outsider: Persona
) -> None:
    first = notify(org, [agent.user], "Older", url="/tickets/1/", dedupe_key="1")[0]
    second = notify(org, [agent.user], HOSTILE, body=HOSTILE, url="/tickets/2/", dedupe_key="2")[0]
    outside = notify(outsider.organization, [outsider.user], "Globex", dedupe_key="3")[0]
    client = agent.client()
    page = client.get(reverse("notifications:list")).content.decode()
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert page.index("&lt;script&gt;") < page.index("Older") and "Globex" not in page
    assert "2 unread" in page

    # Opening one marks it read and goes where it points, inside the app.
    response = client.post(reverse("notifications:read", args=[second.pk]), {"open": "1"})
    assert response.status_code == 302 and response["Location"] == "/tickets/2/"
    second.refresh_from_db()
    assert second.read_at is not None
    # Someone else's is a 404 and stays unread.
    assert client.post(reverse("notifications:read", args=[outside.pk])).status_code == 404
    outside.refresh_from_db()
    assert outside.read_at is None

    assert client.post(reverse("notifications:read-all")).status_code == 302
    first.refresh_from_db()
    assert first.read_at is not None
    assert "0 unread" in client.get(reverse("notifications:list")).content.decode()


def test_a_notification_never_sends_anyone_outside_the_app(
    org: Organization, agent: Persona
) -> None:
    for n, url in enumerate(["https://evil.example/", "//evil.example/", "/\\evil.example"]):
        note = Notification.objects.create(
            organization=org, recipient=agent.user, title="x", url=url, dedupe_key=str(n)
        )
        response = agent.client().post(reverse("notifications:read", args=[note.pk]), {"open": "1"})
        assert response["Location"] == reverse("notifications:list")


def test_the_webhook_is_posted_as_slack_json_with_hostile_text_escaped(
    chat_server: ChatServer,
) -> None:
    text = "Ticket #7 @<!channel> & <https://evil.example|click>"
    assert deliver_webhook.apply(args=(chat_server.url, text)).get() is True
    assert chat_server.bodies == [
        {"text": "Ticket #7 @&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"}
    ]


def test_a_failing_webhook_is_retried_and_a_refused_one_logged(
    chat_server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    chat_server.statuses = [503, 500]
    with caplog.at_level(logging.WARNING, logger="careinbox.notifications.tasks"):
        assert deliver_webhook.apply(args=(chat_server.url, "retry me")).get() is True
    assert chat_server.bodies == [{"text": "retry me"}] * 3  # two failures, then delivered
    assert sum("retrying" in record.message for record in caplog.records) == 2
    assert "secret" not in caplog.text  # the webhook's path is its secret

    chat_server.bodies.clear()
    chat_server.statuses = [404]
    with caplog.at_level(logging.ERROR, logger="careinbox.notifications.tasks"):
        assert deliver_webhook.apply(args=(chat_server.url, "gone")).get() is False
    assert len(chat_server.bodies) == 1  # a 404 is for good: not retried
    assert "not delivered" in caplog.text


def test_an_unreachable_webhook_gives_up_after_its_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="careinbox.notifications.tasks"):
        # Port 9 (discard): nothing listens, the connection is refused at once.
        assert deliver_webhook.apply(args=("http://127.0.0.1:9/hook", "x")).get() is False
    assert "not delivered" in caplog.text


def test_an_escalation_level_posts_to_the_chat_webhook_after_commit(
    org: Organization, chat_server: ChatServer, django_capture_on_commit_callbacks: Any
) -> None:
    """The level's webhook leaves through the task after the actions commit; here the task
    runs in-process (``task_always_eager`` for this test) against the real local server."""
    from careinbox.celery import app

    rule = EscalationRule.objects.create(
        organization=org,
        name="Loud",
        conditions=[{"kind": "followers", "at_least": 1000}],
        levels=[{"after_minutes": 0, "actions": {"webhook_url": chat_server.url}}],
    )
    ticket = TicketFactory(social_account__brand__organization=org, customer_followers=5000)
    escalation_sweep()
    [firing] = EscalationFiring.objects.filter(rule=rule)
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            escalation_run_actions(firing_ids=[firing.pk])
    finally:
        app.conf.task_always_eager = False
    [body] = chat_server.bodies
    assert f"ticket #{ticket.pk}" in body["text"] and f"/tickets/{ticket.pk}/" in body["text"]
