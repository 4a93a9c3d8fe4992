"""In a real browser: the merge offer in the ticket's sidebar merges with htmx and lands on the
ticket merged into; splitting a message out lands on the new ticket. No console errors."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from channels_social.models import SocialAccount
from tests.conftest import Persona
from tests.test_browser import _sign_in, browser, page  # noqa: F401 - fixtures
from tests.test_threading import post
from tickets.models import EventKind, Ticket
from tickets.services import ingest_posts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_merge_from_the_offer_then_split_back_out(
    page: Page,  # noqa: F811
    live_server: object,
    agent: Persona,
    make_account: object,
) -> None:
    account: SocialAccount = make_account(external_id="1000", username="AcmeCare")  # type: ignore[operator]
    now = timezone.now()
    ingest_posts(account, [post("my parcel is a week late, where is it?", at=now)])
    ingest_posts(account, [post("my parcel is now two weeks late", at=now + timedelta(minutes=5))])
    a, b = Ticket.objects.order_by("pk")
    base = str(live_server)
    _sign_in(page, base, agent, next_path=f"/tickets/{b.pk}/")

    page.get_by_role("button", name=f"Merge this ticket into #{a.pk}").click()
    page.wait_for_url(f"{base}/tickets/{a.pk}/")
    expect(page.locator(".messages")).to_contain_text("now two weeks late")
    b.refresh_from_db()
    assert b.merged_into_id == a.pk

    page.get_by_text("Split messages into a new ticket").click()
    page.get_by_label(re.compile("now two weeks late")).check()
    page.get_by_role("button", name="Split into a new ticket").click()
    new = Ticket.objects.exclude(pk__in=[a.pk, b.pk])
    page.wait_for_url(lambda url: url.rstrip("/").rsplit("/", 1)[-1] not in (str(a.pk), ""))
    split = new.get()
    assert page.url == f"{base}/tickets/{split.pk}/"
    expect(page.locator(".messages")).to_contain_text("now two weeks late")
    assert a.events.filter(kind=EventKind.SPLIT).exists()
