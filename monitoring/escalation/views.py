"""The "Escalation rules" settings section: list, write, delete, and the dry run."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careinbox.accounts.models import Organization, Role, Team
from careinbox.audit import record_change, snapshot
from careinbox.notifications.webhooks import describe_url
from careinbox.tenancy import OrgRequest, get_for_org_or_404, role_required
from monitoring.escalation.actions import describe_actions, user_names
from monitoring.escalation.conditions import UnknownCondition, describe_conditions
from monitoring.escalation.engine import matching_tickets
from monitoring.escalation.forms import DryRunForm, EscalationRuleForm
from monitoring.models import EscalationRule

DRY_RUN_SHOWN = 20
AUDITED_FIELDS = ("name", "enabled", "position", "conditions", "levels")


def _audit_snapshot(rule: EscalationRule) -> dict[str, Any]:
    """The rule as the audit trail keeps it: a webhook's secret path is never written there."""
    values = snapshot(rule, AUDITED_FIELDS)
    levels = []
    for level in values.get("levels") or []:
        actions = dict(level.get("actions") or {})
        if actions.get("webhook_url"):
            actions["webhook_url"] = describe_url(actions["webhook_url"])
        levels.append({**level, "actions": actions})
    values["levels"] = levels
    return values


def _org(request: OrgRequest) -> Organization:
    return cast(Organization, request.organization)


def _wants_partial(request: OrgRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.boosted


@require_GET
@role_required(Role.ADMIN)
def rule_list(request: OrgRequest) -> HttpResponse:
    org = _org(request)
    rules = list(
        EscalationRule.objects.for_org(org)
        .annotate(
            fired=Count("firings"),
            live=Count("matches", filter=Q(matches__cleared_at__isnull=True)),
        )
        .order_by("position", "pk")
    )
    names = {
        "users": user_names(org.pk),
        "teams": dict(Team.objects.filter(organization=org).values_list("pk", "name")),
    }
    rows = [
        {
            "rule": rule,
            "conditions": describe_conditions(rule.conditions),
            "levels": [
                (
                    number,
                    level.get("after_minutes", 0),
                    describe_actions(level["actions"], names=names),
                )
                for number, level in enumerate(rule.levels, start=1)
            ],
        }
        for rule in rules
    ]
    return render(request, "monitoring/escalation_list.html", {"rows": rows})


def _form_page(
    request: OrgRequest, form: EscalationRuleForm, rule: EscalationRule | None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "monitoring/escalation_form.html",
        {"form": form, "rule": rule},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def rule_create(request: OrgRequest) -> HttpResponse:
    org = _org(request)
    if request.method == "POST":
        form = EscalationRuleForm(request.POST, organization=org)
        if form.is_valid():
            with transaction.atomic():
                rule = form.save()
                record_change(
                    org,
                    request.user,
                    "created",
                    rule,
                    object_type="escalation rule",
                    after=_audit_snapshot(rule),
                )
            messages.success(request, f"Rule “{rule.name}” created.")
            return redirect("escalation:rules")
        return _form_page(request, form, None, status=422)
    return _form_page(request, EscalationRuleForm(organization=org), None)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def rule_edit(request: OrgRequest, pk: int) -> HttpResponse:
    org = _org(request)
    rule = get_for_org_or_404(EscalationRule.objects.all(), org, pk=pk)
    if request.method == "POST":
        form = EscalationRuleForm(request.POST, organization=org, rule=rule)
        if form.is_valid():
            with transaction.atomic():
                rule = EscalationRule.objects.select_for_update().get(pk=rule.pk)
                before = _audit_snapshot(rule)
                form.rule = rule
                rule = form.save()
                record_change(
                    org,
                    request.user,
                    "updated",
                    rule,
                    object_type="escalation rule",
                    before=before,
                    after=_audit_snapshot(rule),
                )
            messages.success(request, f"Rule “{rule.name}” saved.")
            return redirect("escalation:rules")
        return _form_page(request, form, rule, status=422)
    return _form_page(request, EscalationRuleForm(organization=org, rule=rule), rule)


@require_POST
@role_required(Role.ADMIN)
def rule_delete(request: OrgRequest, pk: int) -> HttpResponse:
    org = _org(request)
    rule = get_for_org_or_404(EscalationRule.objects.all(), org, pk=pk)
    with transaction.atomic():
        before = _audit_snapshot(rule)
        record_change(
            org, request.user, "deleted", rule, object_type="escalation rule", before=before
        )
        rule.delete()
    messages.success(request, f"Rule “{before['name']}” deleted.")
    return redirect("escalation:rules")


@require_POST
@role_required(Role.ADMIN)
def dry_run(request: OrgRequest) -> HttpResponse:
    """Which open tickets the conditions on the form (saved or not) match now: the count and
    the first ``DRY_RUN_SHOWN``, most at risk first. Served as the form's partial to htmx, and
    as the whole form page with the answer to a plain POST."""
    org = _org(request)
    rule = None
    rule_id = request.POST.get("rule", "")
    if rule_id:
        pk = int(rule_id) if rule_id.isdigit() else 0
        rule = get_for_org_or_404(EscalationRule.objects.all(), org, pk=pk)
    form = DryRunForm(request.POST, organization=org, rule=rule)
    context: dict[str, Any] = {"form": form, "rule": rule, "dry_run": True}
    if form.is_valid():
        try:
            tickets = matching_tickets(org.pk, form.conditions)
        except UnknownCondition as error:
            context["dry_run_error"] = str(error)
        else:
            context["dry_run_count"] = tickets.count()
            context["dry_run_tickets"] = list(tickets.inbox_order()[:DRY_RUN_SHOWN])
            context["dry_run_conditions"] = describe_conditions(form.conditions)
    else:
        context["dry_run_error"] = " ".join(
            str(error) for errors in form.errors.values() for error in errors
        )
    template = "monitoring/escalation_form.html"
    if _wants_partial(request):
        template += "#dry-run"
    return render(request, template, context)
