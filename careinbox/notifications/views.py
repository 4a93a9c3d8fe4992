"""The bell: an unread count htmx polls, the list, and marking read."""

from __future__ import annotations

from typing import cast

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from careinbox.accounts.models import Organization, Role, User
from careinbox.notifications.models import Notification
from careinbox.tenancy import OrgRequest, role_required

PAGE_SIZE = 50


def _mine(request: OrgRequest) -> QuerySet[Notification]:
    return Notification.objects.filter(
        recipient=cast(User, request.user), organization=cast(Organization, request.organization)
    )


def _safe_target(url: str) -> str | None:
    """A path inside the app, or None (a notification never sends anyone elsewhere)."""
    inside = url.startswith("/") and not url.startswith("//") and "\\" not in url
    return url if inside and url_has_allowed_host_and_scheme(url, allowed_hosts=None) else None


@require_GET
@role_required(Role.AGENT)
def badge(request: OrgRequest) -> HttpResponse:
    """The top bar's unread count (a few hundred bytes, polled every 15 s)."""
    unread = _mine(request).filter(read_at__isnull=True).count()
    response = render(request, "notifications/badge.html", {"unread": unread})
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@role_required(Role.AGENT)
def notification_list(request: OrgRequest) -> HttpResponse:
    mine = _mine(request)
    page = Paginator(mine.order_by("-created_at", "-pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    unread = mine.filter(read_at__isnull=True).count()
    return render(request, "notifications/list.html", {"page": page, "unread": unread})


@require_POST
@role_required(Role.AGENT)
def mark_read(request: OrgRequest, pk: int) -> HttpResponse:
    """Mark one read; with ``open`` set, go where it points."""
    notification = _mine(request).filter(pk=pk).first()
    if notification is None:
        raise Http404("No such notification.")
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    if request.POST.get("open"):
        target = _safe_target(notification.url)
        if target:
            return redirect(target)
    return redirect("notifications:list")


@require_POST
@role_required(Role.AGENT)
def mark_all_read(request: OrgRequest) -> HttpResponse:
    _mine(request).filter(read_at__isnull=True).update(read_at=timezone.now())
    return redirect("notifications:list")
