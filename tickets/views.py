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
from tickets.models import (
    STEP_RULES,
    Direction,
    EventKind,
    MessageKind,
    OutboxState,
    Step,
    StepError,
    Ticket,
)
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
    # The steps before the next one are done (a reopened step is not, whatever it recorded).
    order = list(Step)
    done = {s.value for s in order[: order.index(Step(step)) if step else len(order)]}
    # The latest step's reply did not go out and the step reopened: say why above its form.
    latest = next(
        (e for e in reversed(events) if e.kind in Step.values or e.kind == EventKind.STEP_REOPENED),
        None,
    )
    reopened = latest if latest is not None and latest.kind == EventKind.STEP_REOPENED else None
    # A send whose claim was taken away came back later: offer its link to the settle form.
    late_links = {
        e.message_id: e.data.get("url", "")
        for e in events
        if e.kind == EventKind.LATE_RESULT and e.data.get("outcome") == "posted"
    }
    conversation = list(
        ticket.messages.select_related("sent_by", "outbox").order_by("created_at", "pk")
    )
    # A reopened step's box holds the reply that did not go out, to edit rather than retype.
    replies = [
        m for m in conversation if m.direction == Direction.OUTBOUND and m.kind != MessageKind.HIDE
    ]
    refused_text = ""
    if replies and step and replies[-1].step == step:
        refused_text = replies[-1].text if replies[-1].outbox.state == OutboxState.FAILED else ""
    return {
        "ticket": ticket,
        "conversation": conversation,
        "pending_delivery": any(m.outbox.state in PENDING_STATES for m in replies),
        "events": events,
        "refusal": reopened.data.get("reason") if reopened else None,
        "refused_by_platform": bool(
            reopened and reopened.data.get("cause") == EventKind.REPLY_REFUSED
        ),
        "late_links": late_links,
        "timers": timers,
        "next_step": Step(step) if step else None,
        "next_step_public": STEP_RULES[step].public if step else None,
        "next_step_help": STEP_HELP.get(Step(step)) if step else None,
        "next_step_number": list(Step).index(Step(step)) + 1 if step else None,
        "steps": [(s.value, s.label, s.value in done) for s in Step],
        "draft": refused_text,
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
    from tickets.workflow_views import workflow_context

    context = _ticket_context(ticket)
    context.update(workflow_context(request, ticket, context))
    context.update(extra)
    partial = _wants_partial(request)
    template = "tickets/ticket.html#workspace" if partial else "tickets/ticket.html"
    return render(request, template, context, status=422 if error else 200)


@require_GET
@role_required()
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    shown_step = request.GET.get("shown_step")  # sent by the live refresh only
    live = _wants_partial(request) and shown_step is not None
    step_changed = live and shown_step != (ticket.next_step or "")
    # Same step: the conversation, and out of band the steps, SLA, history and button; the
    # box the agent may be typing in stays. htmx takes out-of-band parts out of the response
    # before its main swap, so none are marked when the whole workspace is swapped.
    response = _workspace(request, ticket, live_refresh=live and not step_changed)
    if step_changed:
        # The step changed under the agent (a refused reply reopened it): swap the whole
        # workspace, form and reason included.
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
        # The draft goes back into the box only if the box is for the step it was written for.
        # If the ticket moved on meanwhile (another tab took the step), a public reply must
        # never land in a DM box, one click from going out privately: it is shown aside.
        if step == ticket.next_step:
            kept: dict[str, object] = {"draft": text}
        else:
            label = Step(step).label if step in Step.values else step
            kept = {"unsent_draft": text.strip(), "unsent_step": label}
        return _workspace(request, ticket, error=str(exc), step_error=str(exc), **kept)
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
            outcome=request.POST.get("outcome", ""),
            post=request.POST.get("post", ""),
        )
    except StepError as exc:
        ticket.refresh_from_db()
        return _workspace(request, ticket, error=str(exc), settle_error=str(exc))
    ticket.refresh_from_db()
    if _wants_partial(request):
        return _workspace(request, ticket)
    return redirect("tickets:detail", pk=ticket.pk)
