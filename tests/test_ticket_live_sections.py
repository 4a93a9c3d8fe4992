"""The ticket page renders each live section once: the HTML hashed for the live update is the
HTML the page shows (``{% livesection %}``), and the hash leaves out the forms' CSRF token,
which is masked anew on every page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import Persona
from tests.test_inbox import _sections_sent, _ticket
from tickets.services.promises import promise_make
from tickets.templatetags import live
from tickets.views import LIVE_SECTIONS

pytestmark = pytest.mark.django_db


def _hashes(page: str) -> str:
    found = re.search(r'"h": "([^"]+)"', page)
    assert found
    return found.group(1)


def test_every_live_section_is_rendered_once_and_shown_as_hashed(
    agent: Persona, manager: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = _ticket(agent, customer_username="jo")
    promise_make(  # a form in a live section: its CSRF token is in the hashed HTML
        ticket=ticket, by=manager.user, text="Call by five", due_at=timezone.now() + timedelta(1)
    )
    url = reverse("tickets:detail", args=[ticket.pk])
    again: list[str] = []
    render = live.LiveSectionNode.render

    def counting(self: live.LiveSectionNode, context: object) -> str:
        if self.name not in (context.get("_sections") or {}):  # type: ignore[attr-defined]
            again.append(self.name)  # the page renders it: a second time
        return render(self, context)  # type: ignore[arg-type]

    monkeypatch.setattr(live.LiveSectionNode, "render", counting)
    client = agent.client()
    response = client.get(url)
    page = response.content.decode()
    sections = response.context["_sections"]
    assert set(sections) == set(LIVE_SECTIONS)  # the step is open: step-submit too
    assert again == []
    for name, html in sections.items():
        assert html in page, name  # the page shows what was hashed
    # The forms in the sections carry the page's token, the one the other forms carry.
    tokens = set(re.findall(r'name="csrfmiddlewaretoken" value="([^"]*)"', page))
    assert len(tokens) == 1 and "" not in tokens
    assert tokens == set(
        re.findall(r'name="csrfmiddlewaretoken" value="([^"]*)"', sections["promises-list"])
    )

    # Another page (another mask of the token) hashes the same; a poll sends nothing.
    second = client.get(url).content.decode()
    assert set(re.findall(r'name="csrfmiddlewaretoken" value="([^"]*)"', second)) != tokens
    assert _hashes(second) == _hashes(page)
    live_params = {"live": "1", "shown_step": "acknowledge", "h": _hashes(page)}
    assert client.get(url, live_params, HTTP_HX_REQUEST="true").status_code == 204

    # A change sends its section, its forms with a token (they post without htmx too).
    promise_make(
        ticket=ticket,
        by=manager.user,
        text="And at six",
        due_at=timezone.now() + timedelta(hours=2),
    )
    update = client.get(url, live_params, HTTP_HX_REQUEST="true").content.decode()
    assert _sections_sent(update) == {"promises-list", "history"}
    sent_tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]*)"', update)
    assert sent_tokens and "" not in sent_tokens


def test_a_section_template_rendered_elsewhere_still_renders_itself(agent: Persona) -> None:
    """The side panel's own responses render ``assign.html`` without ``_sections``."""
    ticket = _ticket(agent, customer_username="jo")
    response = agent.client().post(
        reverse("tickets:claim", args=[ticket.pk]), HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200, body[:500]
    assert 'id="assigned-now"' in body and 'id="tags-list"' in body
