"""Manager dashboard and the health endpoint."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from careinbox.accounts.models import Role
from careinbox.tenancy import role_required
from channels_social.models import QuarantinedPost
from channels_social.services import failing_channels
from monitoring.dashboard import today_summary
from monitoring.policies import org_policies


@require_GET
@role_required(Role.MANAGER)
def dashboard(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    context = {
        "summary": today_summary(organization),
        "policies": org_policies(organization.pk),
    }
    htmx = getattr(request, "htmx", None)
    template = (
        "monitoring/dashboard.html#figures"
        if htmx and not htmx.boosted
        else "monitoring/dashboard.html"
    )
    return render(request, template, context)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Health for people and load balancers.

    503 when the database does not answer (the web process is no use). 200 otherwise, with
    ``status`` "failing" when any handle has had no successful poll for a few intervals or
    posts are waiting in quarantine: the web is up, but intake needs a look. No organisation
    names or secrets: handles are listed by id.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return JsonResponse({"status": "error", "detail": type(exc).__name__}, status=503)
    failing = failing_channels()
    set_aside = QuarantinedPost.objects.waiting().count()
    return JsonResponse(
        {
            "status": "failing" if failing or set_aside else "ok",
            "database": "ok",
            "channels_failing": [
                {
                    "account_id": channel.account_id,
                    "platform": channel.platform,
                    "last_polled_at": channel.last_polled_at,
                    "last_poll_error_at": channel.last_poll_error_at,
                }
                for channel in failing
            ],
            "posts_set_aside": set_aside,
        }
    )
