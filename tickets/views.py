"""The agent inbox and the ticket workspace.

One view serves a full page and its htmx partial (``template#partial``); every control is a
real form or link, so everything works without JavaScript too.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from careinbox.tenancy import get_for_org_or_404, role_required
from tickets.models import STEP_RULES, Direction, OutboxState, Step, StepError, Ticket
from tickets.services import outbox_settle_uncertain, ticket_take_step

PENDING_STATES = (OutboxState.QUEUED, OutboxState.SENDING)
INBOX_PAGE_SIZE = 200  # the most urgent 200; search and views come with the agent inbox work

STEP_HELP = {
    Step.ACKNOWLEDGE: (
        "Public reply",
        "Thank them, say sorry if we got it wrong, and say you are on it. Never ask them to "
        "delete the post.",
    ),
    Step.TAKE_OFFLINE: (
        "Direct message",
        "Move to DM: ask for the order number and the best way to reach them.",
    ),
    Step.RESOLVE: (
        "Direct message",
        "Tell them what you did to fix it, and keep every promise you make.",
    ),
    Step.CLOSE_OUT: (
        "Public reply",
        "Back on the public thread: say that it is sorted, so everyone who saw the complaint "
        "sees the answer.",
    ),
}


def _wants_partial(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.boosted


@require_GET
@role_required()
def inbox(request: HttpRequest) -> HttpResponse:
    open_tickets = Ticket.objects.for_org(request.organization).open()  # type: ignore[attr-defined]
    tickets = open_tickets.inbox_order().select_related("root_message")[:INBOX_PAGE_SIZE]
    context = {
        "tickets": tickets,
        "open_count": open_tickets.count(),
        "current_time": timezone.now(),
    }
    template = "tickets/inbox.html#inbox-table" if _wants_partial(request) else "tickets/inbox.html"
    return render(request, template, context)


def _ticket_context(ticket: Ticket) -> dict[str, object]:
    step = ticket.next_step
    timers = list(ticket.sla_timers.all())
    events = list(ticket.events.select_related("actor", "message").order_by("at", "pk"))
    done = {event.kind for event in events if event.kind in Step.values}
    # The latest step's reply was refused and the step reopened: say why above its form.
    refused = next(
        (e for e in reversed(events) if e.kind in Step.values or e.data.get("reopened_step")),
        None,
    )
    conversation = list(
        ticket.messages.select_related("sent_by", "outbox").order_by("created_at", "pk")
    )
    return {
        "ticket": ticket,
        "conversation": conversation,
        "pending_delivery": any(
            m.direction == Direction.OUTBOUND and m.outbox.state in PENDING_STATES
            for m in conversation
        ),
        "events": events,
        "refusal": refused.data["error"] if refused and refused.kind not in Step.values else None,
        "timers": timers,
        "next_step": Step(step) if step else None,
        "next_step_public": STEP_RULES[step][2] if step else None,
        "next_step_help": STEP_HELP.get(Step(step)) if step else None,
        "next_step_number": list(Step).index(Step(step)) + 1 if step else None,
        "steps": [(s.value, s.label, s.value in done) for s in Step],
    }


def _get_ticket(request: HttpRequest, pk: int) -> Ticket:
    return get_for_org_or_404(
        Ticket.objects.select_related("social_account", "brand"),
        request.organization,  # type: ignore[attr-defined]
        pk=pk,
    )


def _workspace(
    request: HttpRequest, ticket: Ticket, *, error: str | None = None, **extra: object
) -> HttpResponse:
    """The ticket page, or its workspace partial for htmx; 422 when an action was refused.

    A 422 is swapped in too (base.html's htmx-config): it carries the error and the draft.
    """
    context = _ticket_context(ticket)
    context.update(extra)
    partial = _wants_partial(request)
    template = "tickets/ticket.html#workspace" if partial else "tickets/ticket.html"
    return render(request, template, context, status=422 if error else 200)


@require_GET
@role_required()
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    response = _workspace(request, ticket)
    shown_step = request.GET.get("shown_step")
    if _wants_partial(request) and shown_step not in (None, ticket.next_step or ""):
        # The live refresh swaps the conversation only, but the step changed under the agent
        # (a refused reply reopened it): swap the whole workspace, form and reason included.
        response["HX-Retarget"] = "#workspace"
        response["HX-Reselect"] = "#workspace"
        response["HX-Reswap"] = "outerHTML"
    return response


@require_POST
@role_required()
def ticket_step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    text = request.POST.get("text", "")
    try:
        ticket_take_step(ticket=ticket, step=step, by=request.user, text=text)  # type: ignore[arg-type]
    except StepError as exc:
        ticket.refresh_from_db()
        return _workspace(request, ticket, error=str(exc), step_error=str(exc), draft=text)
    ticket.refresh_from_db()
    if _wants_partial(request):
        response = _workspace(request, ticket)
        response["HX-Trigger"] = "ticketChanged"
        return response
    messages.success(request, f"{Step(step).label}: queued to send.")
    return redirect("tickets:detail", pk=ticket.pk)


@require_POST
@role_required()
def settle_uncertain(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    """The agent looked on the platform: the reply whose fate was unknown was posted, or not."""
    ticket = _get_ticket(request, pk)
    try:
        outbox_settle_uncertain(
            ticket=ticket,
            message_id=message_id,
            by=request.user,  # type: ignore[arg-type]
            posted=request.POST.get("outcome") == "posted",
            post=request.POST.get("post", ""),
        )
    except StepError as exc:
        ticket.refresh_from_db()
        return _workspace(request, ticket, error=str(exc), settle_error=str(exc))
    ticket.refresh_from_db()
    if _wants_partial(request):
        return _workspace(request, ticket)
    return redirect("tickets:detail", pk=ticket.pk)
