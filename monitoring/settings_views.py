"""The "SLA policies" section of the settings area (organisation admins).

Plain forms and links; htmx swaps the list after a move. Every change goes through
``monitoring.policy_changes``, which audits it and applies it to running timers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from careinbox.accounts.models import Organization, Role, User
from careinbox.tenancy import OrgRequest, get_for_org_or_404, role_required
from monitoring.forms import SlaPolicyForm
from monitoring.models import LIVE_STATES, Metric, SlaPolicy, SlaTimer
from monitoring.policies import org_policies
from monitoring.policy_changes import (
    PolicyError,
    sla_policy_create,
    sla_policy_delete,
    sla_policy_move,
    sla_policy_update,
)

LIST_URL = "monitoring:settings-policies"


def _organization(request: OrgRequest) -> Organization:
    assert request.organization is not None  # role_required let the request in
    return request.organization


def _actor(request: OrgRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _wants_partial(request: OrgRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.boosted


def _list_context(organization: Organization) -> dict[str, Any]:
    org_policies(organization.pk)  # an organisation with none gets its catch-all here
    policies = (
        SlaPolicy.objects.for_org(organization)
        .select_related("brand", "social_account")
        .order_by("position", "pk")
    )
    running = dict(
        SlaTimer.objects.filter(
            organization=organization,
            state__in=LIVE_STATES,
            fulfilled_at__isnull=True,
            policy__isnull=False,
        )
        .values("policy_id")
        .annotate(count=Count("pk"))
        .values_list("policy_id", "count")
    )
    rows = []
    caught_by: SlaPolicy | None = None
    for policy in policies:
        rows.append(
            {
                "policy": policy,
                "targets": [
                    (label, minutes)
                    for value, label in Metric.choices
                    if (minutes := policy.target_minutes(value)) is not None
                ],
                "running": running.get(policy.pk, 0),
                # Below a catch-all, nothing reaches it: say so rather than let it look live.
                "unreached_after": caught_by,
            }
        )
        if caught_by is None and policy.is_catch_all:
            caught_by = policy
    return {"rows": rows, "has_catch_all": caught_by is not None}


@require_http_methods(["GET"])
@role_required(Role.ADMIN)
def policies(request: OrgRequest) -> HttpResponse:
    context = _list_context(_organization(request))
    template = "monitoring/settings_policies.html"
    if _wants_partial(request):
        template += "#policy-list"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def policy_create(request: OrgRequest) -> HttpResponse:
    organization = _organization(request)
    form = SlaPolicyForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        policy = sla_policy_create(
            organization=organization, actor=_actor(request), policy=form.save(commit=False)
        )
        messages.success(request, f"Policy “{policy.name}” added, at position {policy.position}.")
        return redirect(LIST_URL)
    status = 422 if form.is_bound else 200
    return render(
        request,
        "monitoring/settings_policies_form.html",
        {"form": form, "policy": None},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def policy_edit(request: OrgRequest, pk: int) -> HttpResponse:
    organization = _organization(request)
    policy = get_for_org_or_404(SlaPolicy.objects.all(), organization, pk=pk)
    form = SlaPolicyForm(request.POST or None, instance=policy, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            recomputed = sla_policy_update(policy=form.save(commit=False), actor=_actor(request))
        except PolicyError as error:
            form.add_error(None, str(error))
        else:
            note = f" The due times of {recomputed} running timers changed." if recomputed else ""
            messages.success(request, f"Policy “{policy.name}” saved.{note}")
            return redirect(LIST_URL)
    status = 422 if form.is_bound else 200
    return render(
        request,
        "monitoring/settings_policies_form.html",
        {"form": form, "policy": policy},
        status=status,
    )


@require_POST
@role_required(Role.ADMIN)
def policy_move(request: OrgRequest, pk: int, direction: str) -> HttpResponse:
    if direction not in ("up", "down"):
        raise Http404("Policies move up or down.")
    organization = _organization(request)
    policy = get_for_org_or_404(SlaPolicy.objects.all(), organization, pk=pk)
    sla_policy_move(policy=policy, actor=_actor(request), up=direction == "up")
    if _wants_partial(request):
        return render(
            request, "monitoring/settings_policies.html#policy-list", _list_context(organization)
        )
    return redirect(LIST_URL)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def policy_delete(request: OrgRequest, pk: int) -> HttpResponse:
    organization = _organization(request)
    policy = get_for_org_or_404(SlaPolicy.objects.all(), organization, pk=pk)
    if request.method == "POST":
        try:
            moved = sla_policy_delete(policy=policy, actor=_actor(request))
        except PolicyError as error:
            messages.error(request, str(error))
        else:
            note = (
                f" The running timers of {moved} tickets moved to their next policy."
                if moved
                else ""
            )
            messages.success(request, f"Policy “{policy.name}” deleted.{note}")
        return redirect(LIST_URL)
    running = SlaTimer.objects.filter(
        policy=policy, state__in=LIVE_STATES, fulfilled_at__isnull=True
    )
    context = {
        "policy": policy,
        "running_tickets": running.values("ticket_id").distinct().count(),
        "only_catch_all": policy.is_catch_all
        and not any(
            other.is_catch_all for other in org_policies(organization.pk) if other.pk != policy.pk
        ),
    }
    return render(request, "monitoring/settings_policies_delete.html", context)
