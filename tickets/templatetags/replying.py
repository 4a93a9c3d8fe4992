"""Template helpers of the reply tools: what the composer needs beside the ticket page's context
(the organisation's canned responses for the step, a reply waiting for approval or sent back,
whether the viewer is a manager), and the priority factors."""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Q

from careinbox.accounts.models import Role
from tickets.models import ApprovalRequest, ApprovalState, CannedResponse, Priority, Ticket
from tickets.services.approval import is_manager

register = template.Library()


@register.simple_tag(takes_context=True)
def reply_tools(context: template.Context, ticket: Ticket, step: Any) -> dict[str, Any]:
    step_value = str(getattr(step, "value", step) or "")
    request = context.get("request")
    user = getattr(request, "user", None)
    latest = ApprovalRequest.objects.filter(ticket=ticket).order_by("-requested_at", "-pk").first()
    pending = latest if latest is not None and latest.state == ApprovalState.PENDING else None
    rejected = (
        latest
        if latest is not None
        and latest.state == ApprovalState.REJECTED
        and latest.step == step_value
        else None
    )
    responses = CannedResponse.objects.filter(organization_id=ticket.organization_id).filter(
        Q(step="") | Q(step=step_value)
    )
    # The request's own membership (the tenancy middleware loaded it, active) answers for its
    # organisation without another query.
    membership = getattr(request, "membership", None)
    if user is None or not user.is_authenticated:
        manager = False
    elif (
        membership is not None
        and membership.organization_id == ticket.organization_id
        and membership.user_id == user.pk
    ):
        manager = membership.has_role(Role.MANAGER)
    else:
        manager = is_manager(user, ticket.organization_id)
    return {
        "canned": list(responses.only("pk", "title")),
        "pending": pending,
        "rejected": rejected,
        "is_manager": manager,
    }


@register.simple_tag
def priority_choices() -> list[tuple[int, str]]:
    return list(Priority.choices)


@register.filter
def points(value: object) -> str:
    """A factor's points as shown beside it: '+25', '-20'."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return ""
    return f"{number:+d}"
