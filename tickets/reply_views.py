"""Replying well, on the web: the composer (send with the guard, canned responses, the live
check), the agent's priority override, the managers' approval queue, and the settings sections
"Canned responses" and "Priority rules".

Every view serves a full page and, for htmx, its partial; every control is a real form.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careinbox.accounts.models import Role
from careinbox.audit import record_change, snapshot
from careinbox.tenancy import get_for_org_or_404, role_required
from channels_social.base import OutboundKind
from tickets import canned, reply_guard
from tickets.models import (
    STEP_RULES,
    ApprovalRequest,
    ApprovalRules,
    CannedResponse,
    Priority,
    PriorityRules,
    Sentiment,
    StepError,
    Ticket,
)
from tickets.reply_forms import ApprovalRulesForm, CannedResponseForm, PriorityRulesForm
from tickets.services.approval import Decision, approval_decide
from tickets.views import _get_ticket, _wants_partial, _workspace

CANNED_FIELDS = ["title", "step", "variants"]
PRIORITY_FIELDS = ["keywords", "hashtags", "vip_handles"]
APPROVAL_FIELDS = ["legal_keywords", "vip_authors", "min_followers"]


def _reply_kind(ticket: Ticket, step: str) -> str:
    """How the step's reply goes out, for the counter and the guard (the service decides for
    real, with the platform's windows)."""
    rule = STEP_RULES.get(step)
    public = bool(rule and rule.public and ticket.is_public)
    return OutboundKind.PUBLIC_REPLY if public else OutboundKind.PRIVATE_MESSAGE


# The composer --------------------------------------------------------------------------------


@require_POST
@role_required()
def send_reply(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    """The composer's send: the same view as the ticket page's step form (collision check, the
    guard, then approval or the outbox through ``ticket_take_step``)."""
    from tickets.views import ticket_step

    return ticket_step(request, pk, step)


@require_POST
@role_required()
def check_reply(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    """The live counter and guard flags while the agent types (htmx), by the platform's count."""
    ticket = _get_ticket(request, pk)
    text = request.POST.get("text", "")
    return render(request, "tickets/partials/guard.html", _guard_context(ticket, step, text))


def _guard_context(ticket: Ticket, step: str, text: str) -> dict[str, Any]:
    kind = _reply_kind(ticket, step)
    length, limit, unit = reply_guard.measure(text, platform=ticket.platform, kind=kind)
    flags = (
        reply_guard.check_reply(
            text,
            platform=ticket.platform,
            kind=kind,
            ticket_negative=ticket.sentiment == Sentiment.NEGATIVE,
            step=step,
        )
        if text.strip()
        else []
    )
    return {
        "ticket": ticket,
        "length": length,
        "limit": limit,
        "unit": unit,
        "over": limit is not None and length > limit,
        "live_flags": flags,
    }


@require_GET
@role_required()
def insert_canned(request: HttpRequest, pk: int) -> HttpResponse:
    """A canned response filled for this customer, in a variant they have not had; into the
    box (htmx), or the ticket page with it as the draft."""
    ticket = _get_ticket(request, pk)
    try:
        canned_id = int(request.GET.get("canned", ""))
    except ValueError:
        canned_id = 0
    response = get_for_org_or_404(
        CannedResponse.objects.all(),
        request.organization,  # type: ignore[attr-defined]
        pk=canned_id,
    )
    rendered = canned.render_for(response, ticket, request.user)  # type: ignore[arg-type]
    if _wants_partial(request):
        return render(
            request,
            "tickets/partials/composer_box.html",
            {"draft": rendered.text, "ticket": ticket, "next_step": ticket.next_step},
        )
    return _workspace(request, ticket, draft=rendered.text)


@require_POST
@role_required()
def override_priority(request: HttpRequest, pk: int) -> HttpResponse:
    """The agent sets the priority by hand, with a reason; recorded (``change_priority``)."""
    ticket = _get_ticket(request, pk)
    reason = request.POST.get("reason", "").strip()
    try:
        level = Priority(int(request.POST.get("priority", "")))
    except ValueError:
        problem = "Choose a priority."
        return _workspace(request, ticket, error=problem, priority_error=problem)
    if not reason:
        problem = "Say why: it is kept in the history."
        return _workspace(request, ticket, error=problem, priority_error=problem)
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
        locked.change_priority(level, by=request.user, reason=reason)  # type: ignore[arg-type]
    ticket.refresh_from_db()
    if _wants_partial(request):
        return _workspace(request, ticket)
    return redirect("tickets:detail", pk=ticket.pk)


# The approval queue ----------------------------------------------------------------------------


def _queue(request: HttpRequest) -> list[ApprovalRequest]:
    return list(
        ApprovalRequest.objects.for_org(request.organization)  # type: ignore[attr-defined]
        .pending()
        .select_related("ticket__root_message", "ticket__brand", "requested_by")
        .order_by("requested_at", "pk")
    )


@require_GET
@role_required(Role.MANAGER)
def approval_queue(request: HttpRequest) -> HttpResponse:
    return render(request, "tickets/approvals.html", {"approvals": _queue(request)})


@require_POST
@role_required(Role.MANAGER)
def approval_decision(request: HttpRequest, approval_id: int) -> HttpResponse:
    approval = get_for_org_or_404(
        ApprovalRequest.objects.all(),
        request.organization,  # type: ignore[attr-defined]
        pk=approval_id,
    )
    decision = request.POST.get("decision", "")
    text = request.POST.get("text")
    try:
        approval_decide(
            approval=approval,
            by=request.user,  # type: ignore[arg-type]
            decision=decision,
            text=text if decision == Decision.APPROVE else None,
            comment=request.POST.get("comment", ""),
        )
    except StepError as exc:
        context = {
            "approvals": _queue(request),
            "decision_error": str(exc),
            "error_for": approval.pk,
            "edited_text": text,
        }
        return render(request, "tickets/approvals.html", context, status=422)
    verb = "approved and queued to send" if decision == Decision.APPROVE else "sent back"
    messages.success(request, f"Reply to @{approval.ticket.customer_username} {verb}.")
    return redirect("tickets:approvals")


# Settings: canned responses ----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.MANAGER)
def canned_list(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    form = CannedResponseForm(
        request.POST or None, instance=CannedResponse(organization=organization)
    )
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            created = form.save()
            record_change(
                organization,
                request.user,
                "created",
                created,
                object_type="Canned response",
                after=snapshot(created, CANNED_FIELDS),
            )
        messages.success(request, f"Canned response “{created.title}” saved.")
        return redirect("tickets:canned-list")
    responses = CannedResponse.objects.for_org(organization)
    status = 422 if form.errors else 200
    return render(
        request, "settings/canned_list.html", {"form": form, "responses": responses}, status=status
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.MANAGER)
def canned_edit(request: HttpRequest, canned_id: int) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    response = get_for_org_or_404(CannedResponse.objects.all(), organization, pk=canned_id)
    if request.method == "POST" and request.POST.get("delete") == "1":
        with transaction.atomic():
            record_change(
                organization,
                request.user,
                "deleted",
                response,
                object_type="Canned response",
                before=snapshot(response, CANNED_FIELDS),
            )
            response.delete()
        messages.success(request, "Canned response deleted.")
        return redirect("tickets:canned-list")
    before = snapshot(response, CANNED_FIELDS)
    form = CannedResponseForm(request.POST or None, instance=response)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save()
            record_change(
                organization,
                request.user,
                "updated",
                saved,
                object_type="Canned response",
                before=before,
                after=snapshot(saved, CANNED_FIELDS),
            )
        messages.success(request, f"Canned response “{saved.title}” saved.")
        return redirect("tickets:canned-list")
    status = 422 if form.errors else 200
    return render(
        request, "settings/canned_form.html", {"form": form, "response": response}, status=status
    )


# Settings: priority and approval rules -----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def priority_rules(request: HttpRequest) -> HttpResponse:
    organization = request.organization  # type: ignore[attr-defined]
    rules = PriorityRules.for_organization(organization.pk)
    approvals = ApprovalRules.for_organization(organization.pk)
    before = snapshot(rules, PRIORITY_FIELDS)
    approvals_before = {
        **snapshot(approvals, APPROVAL_FIELDS),
        "brands": sorted(str(b) for b in approvals.brands.all()),
    }
    data = request.POST or None
    form = PriorityRulesForm(data, instance=rules, prefix="priority")
    approval_form = ApprovalRulesForm(data, instance=approvals, prefix="approval")
    if request.method == "POST" and form.is_valid() and approval_form.is_valid():
        with transaction.atomic():
            saved = form.save()
            record_change(
                organization,
                request.user,
                "updated",
                saved,
                object_type="Priority rules",
                before=before,
                after=snapshot(saved, PRIORITY_FIELDS),
            )
            saved_approvals = approval_form.save()
            record_change(
                organization,
                request.user,
                "updated",
                saved_approvals,
                object_type="Approval rules",
                before=approvals_before,
                after={
                    **snapshot(saved_approvals, APPROVAL_FIELDS),
                    "brands": sorted(str(b) for b in saved_approvals.brands.all()),
                },
            )
        messages.success(request, "Priority and approval rules saved.")
        return redirect("tickets:priority-rules")
    status = 422 if form.errors or approval_form.errors else 200
    return render(
        request,
        "settings/priority_rules.html",
        {"form": form, "approval_form": approval_form, "queue_url": reverse("tickets:approvals")},
        status=status,
    )
