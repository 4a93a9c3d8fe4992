"""Manager dashboard and the health endpoint."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from careinbox.accounts.models import Role, Team
from careinbox.tenancy import role_required
from channels_social.models import Brand, QuarantinedPost, SocialAccount
from channels_social.services import failing_channels
from monitoring.reports.charts import chart_for
from monitoring.reports.definitions import DEFINITIONS
from monitoring.reports.drill import DrillError, drill
from monitoring.reports.export import table_csv
from monitoring.reports.figures import Report
from monitoring.reports.filters import PERIODS, parse_filter


@require_GET
@role_required(Role.AGENT)
def landing(request: HttpRequest) -> HttpResponse:
    """Where signing in leads: managers (and admins) to the dashboard, agents to the inbox."""
    membership = request.membership  # type: ignore[attr-defined]
    return redirect(
        "monitoring:dashboard" if membership.has_role(Role.MANAGER) else "tickets:inbox"
    )


@require_GET
@role_required(Role.MANAGER)
def dashboard(request: HttpRequest) -> HttpResponse:
    """Every figure for the chosen period, brand, channel and team, from the roll-ups, in a
    fixed number of queries; each with its definition, chart, table, CSV and tickets."""
    organization = request.organization  # type: ignore[attr-defined]
    filt = parse_filter(request.GET, organization)
    tables = Report(filt).all()
    for table in tables.values():
        table.chart = chart_for(table)
    context = {
        "filt": filt,
        "tables": tables,
        "periods": PERIODS,
        "brands": Brand.objects.filter(organization=organization).order_by("name"),
        "channels": SocialAccount.objects.filter(organization=organization).order_by(
            "platform", "username"
        ),
        "teams": Team.objects.filter(organization=organization).order_by("name"),
        "querystring": filt.querystring(),
    }
    htmx = getattr(request, "htmx", None)
    template = (
        "monitoring/dashboard.html#figures"
        if htmx and not htmx.boosted
        else "monitoring/dashboard.html"
    )
    return render(request, template, context)


@require_GET
@role_required(Role.MANAGER)
def report_csv(request: HttpRequest) -> HttpResponse:
    """One dashboard table as CSV (``?table=`` and the dashboard's filters)."""
    key = request.GET.get("table", "")
    if key not in Report.TABLES:
        raise Http404("There is no such table.")
    filt = parse_filter(request.GET, request.organization)  # type: ignore[attr-defined]
    response = HttpResponse(
        table_csv(Report(filt).table(key)), content_type="text/csv; charset=utf-8"
    )
    name = f"{key}-{filt.start.isoformat()}-{filt.end.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@role_required(Role.MANAGER)
def report_tickets(request: HttpRequest) -> HttpResponse:
    """The tickets behind a figure (the link's ``source`` and narrowing, the page's filters)."""
    filt = parse_filter(request.GET, request.organization)  # type: ignore[attr-defined]
    try:
        title, tickets = drill(filt, request.GET)
    except DrillError as error:
        return render(
            request,
            "monitoring/report_tickets.html",
            {"error": str(error), "filt": filt},
            status=400,
        )
    page = Paginator(tickets, 50).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "monitoring/report_tickets.html",
        {
            "filt": filt,
            "title": title,
            "page": page,
            "querystring": params.urlencode(),
            "back": filt.querystring(),
            "definitions": DEFINITIONS,
        },
    )


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
