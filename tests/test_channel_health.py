"""Revoked or expired credentials and the platforms' rate budgets, end to end against the
emulators: a refused token disables the channel, tells the admins once and is picked up again
once fixed; the usage headers pace the polls beyond a 429."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from careinbox.accounts.models import AuditEntry, Organization
from careinbox.notifications.models import Notification
from channels_social.base import ChannelError, OutboundKind, RateObservation, SendTarget
from channels_social.facebook.adapter import FacebookAdapter
from channels_social.models import Platform, RateBudget, SocialAccount
from channels_social.services import account_poll, channel_recheck, failing_channels
from channels_social.x.adapter import XAdapter
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tests.sandbox_fixtures import XSandbox
from tickets.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def x_account(
    make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox
) -> SocialAccount:
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return make_account(
        external_id="1000",
        username="AcmeCare",
        api_base_url=x_sandbox_clean.url,
        connected_at=timezone.now() - timedelta(minutes=1),
    )


@pytest.fixture
def fb_account(
    make_account: Callable[..., SocialAccount], facebook_sandbox_clean: FacebookSandbox
) -> SocialAccount:
    facebook_sandbox_clean.register_page(name="Acme")
    return make_account(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=facebook_sandbox_clean.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
        connected_at=timezone.now() - timedelta(minutes=1),
    )


def _refreshed(account: SocialAccount) -> SocialAccount:
    return SocialAccount.objects.get(pk=account.pk)


def test_a_revoked_x_token_disables_tells_admins_once_and_a_recheck_picks_it_up(
    x_account: SocialAccount, x_sandbox_clean: XSandbox, org: Organization, org_admin, agent
) -> None:
    token = x_account.credentials["access_token"]
    x_sandbox_clean.control.revoke_token(token)

    outcome = account_poll(account_id=x_account.pk)

    account = _refreshed(x_account)
    assert outcome.startswith("disabled:")
    assert not account.enabled and account.auth_failed_at is not None
    assert "no longer accepts this handle's keys" in account.disabled_reason
    assert "401" not in account.disabled_reason  # in words, not a code
    notes = Notification.objects.filter(kind="channel")
    assert [n.recipient for n in notes] == [org_admin.user]  # admins only, not the agent
    entry = AuditEntry.objects.get(organization=org, action="disabled")
    assert entry.actor is None and entry.after["enabled"] is False

    # Intake has stopped there: the health endpoint says so until it is fixed.
    assert [c.account_id for c in failing_channels()] == [x_account.pk]

    # A second poll attempt (a task queued before the failure) tells nobody again.
    assert account_poll(account_id=x_account.pk).startswith("skipped")
    assert Notification.objects.filter(kind="channel").count() == 1

    # Re-check while still revoked: refused, in words, still disabled.
    result = channel_recheck(account=account, actor=org_admin.user)
    assert not result.ok and "no longer accepts" in result.message
    assert not _refreshed(x_account).enabled

    # The user authorises the app again: the re-check probes X and polling resumes.
    x_sandbox_clean.control.restore_token(token)
    result = channel_recheck(account=_refreshed(x_account), actor=org_admin.user)
    assert result.ok, result.message
    account = _refreshed(x_account)
    assert account.enabled and account.auth_failed_at is None and account.disabled_reason == ""
    assert AuditEntry.objects.get(action="reconnected").actor == org_admin.user
    x_sandbox_clean.control.post_mention("AcmeCare", "2001", "jo", 10, "Are you there?")
    assert account_poll(account_id=x_account.pk).startswith("ok: 1 new")
    assert failing_channels() == []


def test_an_expired_page_token_is_worded_and_new_credentials_reconnect(
    fb_account: SocialAccount, facebook_sandbox_clean: FacebookSandbox, org_admin
) -> None:
    control = facebook_sandbox_clean.control
    control.revoke_token(FB_PAGE_TOKEN, subcode=463)

    assert account_poll(account_id=fb_account.pk).startswith("disabled:")
    account = _refreshed(fb_account)
    assert not account.enabled
    assert "the token expired" in account.disabled_reason
    assert "190" not in account.disabled_reason
    assert Notification.objects.filter(recipient=org_admin.user, kind="channel").count() == 1

    # A new long-lived token: the page gets it on Meta's side, the admin saves it here.
    control.create_page(id=FB_PAGE_ID, name="Acme", access_token="EAAnew-token")
    account.set_credentials(page_access_token="EAAnew-token")
    account.save(update_fields=["credentials"])
    result = channel_recheck(account=account, actor=org_admin.user)
    assert result.ok and "Acme" in result.message
    control.visitor_post(FB_PAGE_ID, person_id="2001", name="Dana Lee", message="Hello?")
    assert account_poll(account_id=fb_account.pk).startswith("ok: 1 new")
    assert Ticket.objects.filter(social_account=fb_account).count() == 1


def test_x_endpoint_budgets_are_kept_per_endpoint_and_zero_stops_until_reset(
    x_account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.control.set_rate_limits(mentions=1)

    assert account_poll(account_id=x_account.pk).startswith("ok")

    budgets = {b.endpoint: b for b in RateBudget.objects.filter(account=x_account)}
    mentions = budgets["GET /2/users/:id/mentions"]
    assert mentions.limit == 1 and mentions.remaining == 0
    assert mentions.raw_headers["x-rate-limit-remaining"] == "0"
    assert budgets["GET /2/dm_events"].remaining is not None  # its own budget
    account = _refreshed(x_account)
    # No 429 was needed: remaining 0 stops polling until the window resets.
    assert account.next_poll_at == mentions.reset_at
    assert "GET /2/users/:id/mentions" in account.pacing_reason
    before = len(x_sandbox_clean.control.requests_log())
    SocialAccount.objects.filter(pk=x_account.pk).update(next_poll_at=timezone.now())
    assert account_poll(account_id=x_account.pk).startswith("skipped: rate limited")
    assert len(x_sandbox_clean.control.requests_log()) == before  # not one call to X


def test_graph_usage_slows_polls_and_stops_them_at_the_limit(
    fb_account: SocialAccount, facebook_sandbox_clean: FacebookSandbox
) -> None:
    control = facebook_sandbox_clean.control
    control.set_rate_limits(page_calls_per_hour=5)

    assert account_poll(account_id=fb_account.pk).startswith("ok")  # feed, tagged, Messenger

    page = RateBudget.objects.get(account=fb_account, endpoint="page")
    assert page.used_percent == 60  # 3 of the 5 calls
    assert json.loads(page.raw_headers["X-Business-Use-Case-Usage"])[FB_PAGE_ID]
    assert RateBudget.objects.get(account=fb_account, endpoint="app").used_percent is not None
    account = _refreshed(fb_account)
    interval = timedelta(seconds=FacebookAdapter.min_poll_interval_seconds)
    assert account.last_polled_at is not None and account.next_poll_at is not None
    assert account.next_poll_at - account.last_polled_at == 2 * interval
    assert "60 % used" in account.pacing_reason and "2 times less often" in account.pacing_reason

    # Used up: the poll is throttled, and nothing runs before Graph's time to regain access.
    control.set_rate_limits(page_calls_per_hour=1)
    account_poll(account_id=fb_account.pk)
    account_poll(account_id=fb_account.pk)
    account = _refreshed(fb_account)
    assert account.next_poll_at is not None
    assert account.next_poll_at - timezone.now() > timedelta(minutes=30)


def test_graph_pacing_thresholds() -> None:
    now = timezone.now()
    interval = timedelta(minutes=1)

    def paced(percent: int, regain: timedelta | None = None) -> timedelta | None:
        budget = RateObservation(
            endpoint="page",
            observed_at=now,
            used_percent=percent,
            reset_at=now + regain if regain else None,
        )
        pacing = FacebookAdapter.pacing([budget], now=now, interval=interval)
        return pacing.not_before - now if pacing.not_before else None

    assert paced(10) is None
    assert paced(49) is None
    assert paced(50) == 2 * interval
    assert paced(80) == 4 * interval
    assert paced(95) == 10 * interval
    assert paced(100, timedelta(minutes=7)) == timedelta(minutes=7)
    assert paced(120) == timedelta(hours=1)  # no estimate: the rolling hour


def test_x_pacing_ignores_a_window_already_reset() -> None:
    now = timezone.now()
    spent = RateObservation(
        endpoint="GET /2/dm_events", observed_at=now, remaining=0, reset_at=now - timedelta(1)
    )
    assert XAdapter.pacing([spent], now=now, interval=timedelta(seconds=15)).not_before is None


def test_a_send_refused_for_the_credentials_disconnects_the_channel_too(
    x_account: SocialAccount, x_sandbox_clean: XSandbox, org_admin
) -> None:
    customer = x_sandbox_clean.control.post_mention("AcmeCare", "2001", "jo", 10, "Help?")
    x_sandbox_clean.control.revoke_token(x_account.credentials["access_token"])
    adapter = XAdapter(x_account)
    with pytest.raises(ChannelError) as refused:
        adapter.send(
            OutboundKind.PUBLIC_REPLY,
            SendTarget(in_reply_to_external_id=str(customer["id"])),
            "Sorry!",
        )
    assert refused.value.auth_failed and refused.value.permanent
    account = _refreshed(x_account)
    assert not account.enabled and "no longer accepts" in account.disabled_reason
    assert Notification.objects.filter(recipient=org_admin.user, kind="channel").count() == 1
