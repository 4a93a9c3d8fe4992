"""Settings → Brands and channels: an organisation admin's own page for brands, their X handles
and Facebook pages (credentials write-only), listening queries, and each channel's health.

Plain typed views; every change is saved with its audit entry in one transaction
(``careinbox.audit.record_change``); another organisation's ids are a 404. The page refreshes
its health section through htmx (the same view answers with the ``#health`` partial), and every
control is a real form, so it all works without JavaScript too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careinbox.accounts.models import Organization, Role
from careinbox.audit import record_change, snapshot
from careinbox.tenancy import OrgRequest, get_for_org_or_404, role_required
from channels_social.base import Stream
from channels_social.forms import BrandForm, ChannelForm, ListeningQueryForm
from channels_social.models import (
    Brand,
    ListeningQuery,
    Platform,
    PollCursor,
    RateBudget,
    SocialAccount,
)
from channels_social.registry import platforms_with_adapters
from channels_social.services import channel_recheck, channel_reconnected, poll_interval

BRAND_FIELDS = ("name",)
CHANNEL_FIELDS = ("brand", "platform", "username", "external_id", "api_base_url", "enabled")
QUERY_FIELDS = ("brand", "query", "enabled")
HEALTH_REFRESH_SECONDS = 10


def _org(request: HttpRequest) -> Organization:
    organization = getattr(request, "organization", None)
    if organization is None:  # role_required lets no such request through
        raise Http404("No organisation.")
    return organization


def _wants_partial(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.boosted


@dataclass(frozen=True)
class Health:
    """One channel's health, as the admin reads it."""

    account: SocialAccount
    state: str  # "ok", "failing", "disconnected", "disabled"
    summary: str
    next_poll_at: datetime | None
    budgets: list[RateBudget]

    @property
    def is_disconnected(self) -> bool:
        return self.state == "disconnected"


def channel_health(account: SocialAccount, *, now: datetime) -> Health:
    budgets = sorted(account.rate_budgets.all(), key=lambda budget: budget.endpoint)
    if account.auth_failed_at is not None:
        state, summary = "disconnected", account.disabled_reason or "Credentials refused."
    elif not account.enabled:
        state, summary = "disabled", "Turned off by an admin: nothing is read or sent."
    elif account.poll_is_stale(now, int(poll_interval(account.platform).total_seconds())):
        state = "failing"
        summary = account.last_poll_error or "No successful poll for a while."
    elif account.last_poll_error:
        state, summary = "failing", account.last_poll_error
    else:
        state, summary = "ok", account.pacing_reason or "Polling as usual."
    next_poll = account.next_poll_at if account.enabled else None
    return Health(account, state, summary, next_poll, budgets)


@require_GET
@role_required(Role.ADMIN)
def channels_home(request: OrgRequest) -> HttpResponse:
    organization = _org(request)
    brands = (
        Brand.objects.for_org(organization)
        .prefetch_related("social_accounts__rate_budgets", "listening_queries")
        .order_by("name")
    )
    now = timezone.now()
    rows = [
        {
            "brand": brand,
            "channels": [
                channel_health(account, now=now)
                for account in sorted(brand.social_accounts.all(), key=lambda a: a.pk)
            ],
            "queries": sorted(brand.listening_queries.all(), key=lambda q: q.pk),
        }
        for brand in brands
    ]
    context = {
        "rows": rows,
        "platforms": platforms_with_adapters(),
        "refresh_seconds": HEALTH_REFRESH_SECONDS,
        "now": now,
    }
    template = "channels_social/settings.html"
    return render(request, f"{template}#health" if _wants_partial(request) else template, context)


def _form_page(
    request: HttpRequest, form: object, *, title: str, intro: str = "", status: int = 200
) -> HttpResponse:
    return render(
        request,
        "channels_social/settings_form.html",
        {"form": form, "title": title, "intro": intro},
        status=status,
    )


def _home() -> HttpResponse:
    return redirect("channels_social:settings-channels")


# Brands ------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def brand_edit(request: OrgRequest, pk: int | None = None) -> HttpResponse:
    organization = _org(request)
    brand = (
        get_for_org_or_404(Brand.objects.all(), organization, pk=pk)
        if pk is not None
        else Brand(organization=organization)
    )
    before = snapshot(brand, BRAND_FIELDS) if brand.pk else {}
    form = BrandForm(request.POST or None, instance=brand, organization=organization)
    title = f"Brand {brand.name}" if brand.pk else "New brand"
    if request.method == "POST":
        if not form.is_valid():
            return _form_page(request, form, title=title, status=422)
        with transaction.atomic():
            action = "updated" if brand.pk else "created"
            saved = form.save()
            record_change(
                organization,
                request.user,
                action,
                saved,
                before=before,
                after=snapshot(saved, BRAND_FIELDS),
            )
        messages.success(request, f"Brand {saved.name} saved.")
        return _home()
    return _form_page(request, form, title=title)


# Channels ----------------------------------------------------------------------------------


def _channel_intro(platform: str) -> str:
    if platform == Platform.FACEBOOK:
        return (
            "A Facebook page: its comments, visitor posts and Messenger come in; replies go "
            "out from the page. The page access token is stored encrypted and never shown."
        )
    return (
        "An X handle: its mentions, DMs and the brand's listening queries come in; replies go "
        "out from it. Its four OAuth 1.0a user keys are stored encrypted and never shown."
    )


def _save_channel(
    request: OrgRequest, form: ChannelForm, account: SocialAccount, before: dict[str, object]
) -> SocialAccount:
    organization = _org(request)
    typed = bool(form.typed_credentials())
    was_disconnected = account.pk is not None and account.auth_failed_at is not None
    with transaction.atomic():
        action = "updated" if account.pk else "created"
        saved: SocialAccount = form.save()
        after = snapshot(saved, CHANNEL_FIELDS)
        if typed:  # that they changed, never what they are
            before = {**before, "credentials": "(stored)" if before else ""}
            after["credentials"] = "(replaced)"
        record_change(
            organization,
            request.user,
            action,
            saved,
            object_type="channel",
            before=before,
            after=after,
        )
        if was_disconnected and typed:
            channel_reconnected(account=saved, actor=request.user, how="new credentials saved")
    return saved


@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def channel_new(request: OrgRequest, brand_pk: int, platform: str) -> HttpResponse:
    organization = _org(request)
    brand = get_for_org_or_404(Brand.objects.all(), organization, pk=brand_pk)
    if platform not in dict(platforms_with_adapters()):
        raise Http404("No such platform.")
    account = SocialAccount(organization=organization, brand=brand, platform=platform)
    form = ChannelForm(
        request.POST or None, instance=account, platform=platform, organization=organization
    )
    label = dict(Platform.choices)[platform]
    title = f"Connect {label} to {brand.name}"
    if request.method == "POST":
        if not form.is_valid():
            return _form_page(
                request, form, title=title, intro=_channel_intro(platform), status=422
            )
        saved = _save_channel(request, form, account, {})
        messages.success(request, f"{saved} connected; its first poll runs within seconds.")
        return _home()
    return _form_page(request, form, title=title, intro=_channel_intro(platform))


@sensitive_post_parameters()
@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def channel_edit(request: OrgRequest, pk: int) -> HttpResponse:
    organization = _org(request)
    account = get_for_org_or_404(SocialAccount.objects.select_related("brand"), organization, pk=pk)
    before = snapshot(account, CHANNEL_FIELDS)
    form = ChannelForm(
        request.POST or None,
        instance=account,
        platform=account.platform,
        organization=organization,
    )
    health = channel_health(account, now=timezone.now())
    context = {"form": form, "title": f"{account}", "health": health, "account": account}
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "channels_social/settings_channel.html", context, status=422)
        saved = _save_channel(request, form, account, before)
        messages.success(request, f"{saved} saved.")
        return _home()
    return render(request, "channels_social/settings_channel.html", context)


@require_POST
@role_required(Role.ADMIN)
def channel_toggle(request: OrgRequest, pk: int) -> HttpResponse:
    """Turn a channel off or on. A channel whose credentials were refused comes back only
    through a re-check the platform accepts (or new credentials)."""
    organization = _org(request)
    account = get_for_org_or_404(SocialAccount.objects.all(), organization, pk=pk)
    if account.auth_failed_at is not None:
        return channel_recheck_view(request, pk)
    before = snapshot(account, CHANNEL_FIELDS)
    with transaction.atomic():
        account.enabled = not account.enabled
        fields = ["enabled"]
        if account.enabled:
            account.next_poll_at = timezone.now()
            fields.append("next_poll_at")
        account.save(update_fields=fields)
        record_change(
            organization,
            request.user,
            "enabled" if account.enabled else "disabled",
            account,
            object_type="channel",
            before=before,
            after=snapshot(account, CHANNEL_FIELDS),
        )
    messages.success(request, f"{account} {'enabled' if account.enabled else 'turned off'}.")
    return _home()


@require_POST
@role_required(Role.ADMIN)
def channel_recheck_view(request: OrgRequest, pk: int) -> HttpResponse:
    """Ask the platform now whether the stored credentials work; reconnect if they do."""
    organization = _org(request)
    account = get_for_org_or_404(SocialAccount.objects.all(), organization, pk=pk)
    result = channel_recheck(account=account, actor=request.user)
    (messages.success if result.ok else messages.error)(request, result.message)
    return redirect(reverse("channels_social:settings-channel", args=[account.pk]))


# Listening queries -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def query_edit(
    request: OrgRequest, brand_pk: int | None = None, pk: int | None = None
) -> HttpResponse:
    organization = _org(request)
    if pk is not None:
        query = get_for_org_or_404(
            ListeningQuery.objects.select_related("brand"), organization, pk=pk
        )
        brand = query.brand
    else:
        brand = get_for_org_or_404(Brand.objects.all(), organization, pk=brand_pk)
        query = ListeningQuery(organization=organization, brand=brand)
    before = snapshot(query, QUERY_FIELDS) if query.pk else {}
    form = ListeningQueryForm(request.POST or None, instance=query, brand=brand)
    title = f"Listening query for {brand.name}"
    intro = (
        'An X search run for this brand every poll: words, #hashtags, "quoted phrases", '
        "-excluded words, from:, is:, has:, lang: and OR. Retweets and the brand's own posts "
        "are left out; each match opens a ticket marked as found by listening."
    )
    if request.method == "POST":
        if not form.is_valid():
            return _form_page(request, form, title=title, intro=intro, status=422)
        with transaction.atomic():
            action = "updated" if query.pk else "created"
            saved = form.save()
            record_change(
                organization,
                request.user,
                action,
                saved,
                before=before,
                after=snapshot(saved, QUERY_FIELDS),
            )
        messages.success(request, f"Listening for {saved.query!r} saved.")
        return _home()
    return _form_page(request, form, title=title, intro=intro)


@require_POST
@role_required(Role.ADMIN)
def query_delete(request: OrgRequest, pk: int) -> HttpResponse:
    organization = _org(request)
    query = get_for_org_or_404(ListeningQuery.objects.select_related("brand"), organization, pk=pk)
    with transaction.atomic():
        record_change(
            organization,
            request.user,
            "deleted",
            query,
            before=snapshot(query, QUERY_FIELDS),
        )
        PollCursor.objects.filter(stream=Stream.SEARCH, key=str(query.pk)).delete()
        query.delete()
    messages.success(request, f"No longer listening for {query.query!r}.")
    return _home()
