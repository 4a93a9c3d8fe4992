"""Manager dashboard and the health endpoint."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from careinbox.accounts.models import Role
from careinbox.tenancy import role_required
from monitoring.dashboard import today_summary
from monitoring.models import SlaPolicy


@require_GET
@role_required(Role.MANAGER)
def dashboard(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    context = {
        "summary": today_summary(organization),
        "policy": SlaPolicy.for_org(organization),
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
    """Liveness for load balancers and docker: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok"})
    except Exception as exc:
        return JsonResponse({"status": "error", "detail": type(exc).__name__}, status=503)
