"""The agent inbox and the ticket workspace.

One view serves a full page and its htmx partial (``template#partial``); every control is a
real form or link, so everything works without JavaScript too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from careinbox.tenancy import get_for_org_or_404, role_required
from tickets.inbox import (
    BULK_ACTIONS,
    DEFAULT_VIEW,
    ROW_CACHE_TTL,
    VIEWS,
    VIEWS_BY_KEY,
    LiveState,
    Presence,
    ViewFilterForm,
    has_filters,
    inbox_tickets,
    live_diff,
    live_recall,
    live_remember,
    parse_hashes,
    presence_on,
    presence_touch,
    presence_words,
    reply_ways,
    row_cache_key,
    row_fingerprint,
    row_hash,
    row_reading,
    row_tags,
    saved_views_for,
    step_way,
    tickets_bulk_apply,
    total_label,
    view_counts,
    with_oob,
)
from tickets.models import (
    MODERATION_MESSAGE_KINDS,
    STEP_RULES,
    ApprovalRequest,
    Direction,
    EventKind,
    InboxCountsStamp,
    Message,
    OutboxState,
    SavedView,
    Step,
    StepError,
    Ticket,
)
from tickets.services import outbox_settle_uncertain, ticket_take_step
from tickets.services.outbox import reply_facts
from tickets.services.steps import GuardRefused

PENDING_STATES = (OutboxState.QUEUED, OutboxState.SENDING)
APPROVAL_EVENT_KINDS = (EventKind.REPLY_HELD, EventKind.REPLY_APPROVED, EventKind.REPLY_REJECTED)

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


def _row_html(
    ticket: Ticket, people: list[Presence], now: datetime, tags: Sequence[str] = ()
) -> str:
    return render_to_string(
        "tickets/partials/row.html",
        {
            "ticket": ticket,
            "tags": tags,
            "presence": presence_words(people),
            "replying": any(p.replying for p in people),
            "now": now,
        },
    )


def _rows_html(state: dict[str, Any], pks: Iterable[int]) -> dict[int, str]:
    """The rows of ``pks`` rendered (only those: a poll renders what changed).

    Rendering is most of an inbox request's time (``bench/read_paths.py``), so a row's HTML is
    kept in the cache under its fingerprint (``row_fingerprint``: everything the row shows) and
    the zone its times are shown in; a row is rendered again only once something it shows has
    changed. One cache round trip for all of them."""
    wanted = set(pks)
    people, now, tags = state["presence"], state["current_time"], state["tags"]
    fingerprints = dict(state["row_hashes"])
    tickets = [t for t in state["tickets"] if t.pk in wanted]
    reading = row_reading()
    keys = {t.pk: row_cache_key(t.pk, fingerprints[t.pk], reading) for t in tickets}
    cached = cache.get_many(list(keys.values())) if keys else {}
    rendered: dict[int, str] = {}
    missing: dict[str, str] = {}
    for ticket in tickets:
        html = cached.get(keys[ticket.pk])
        if not isinstance(html, str):
            html = _row_html(ticket, people.get(ticket.pk, []), now, tags.get(ticket.pk, ()))
            missing[keys[ticket.pk]] = html
        rendered[ticket.pk] = html
    if missing:
        cache.set_many(missing, ROW_CACHE_TTL)
    return rendered


def _inbox_state(request: HttpRequest) -> dict[str, Any]:
    """Everything the inbox page and its live update render, in a fixed number of queries."""
    org = request.organization  # type: ignore[attr-defined]
    user = request.user
    now = timezone.now()
    saved: SavedView | None = None
    params: Any = request.GET
    if request.GET.get("saved"):
        saved = get_for_org_or_404(
            SavedView.objects.filter(owner=user),  # type: ignore[misc]
            org,
            pk=request.GET["saved"] if request.GET["saved"].isdigit() else 0,
        )
        params = ViewFilterForm.data_from_saved(saved)
    view_key = params.get("view") or DEFAULT_VIEW
    if view_key not in VIEWS_BY_KEY:
        view_key = DEFAULT_VIEW
    form = ViewFilterForm(params, organization=org)
    data = form.cleaned_data if form.is_valid() else {}
    # Read before anything it stands for is counted (InboxCountsStamp).
    token = InboxCountsStamp.token_for(org.pk)
    counts = view_counts(org, user=user, now=now, token=token)  # type: ignore[arg-type]
    tickets, total = inbox_tickets(
        org,
        user=user,  # type: ignore[arg-type]
        view=view_key,
        data=data,
        now=now,
        counts=counts,
        token=token,
    )
    people = presence_on([t.pk for t in tickets], except_user=user.pk)
    tags = row_tags([t.pk for t in tickets])
    query = request.GET.copy()
    for name in ("live", "token"):
        query.pop(name, None)
    return {
        "view": VIEWS_BY_KEY[view_key],
        "views": VIEWS,
        "counts": counts,
        "saved": saved,
        "saved_views": saved_views_for(org, user),  # type: ignore[arg-type]
        "form": form,
        # The filters in force, carried by the "save as a view" form.
        "filter_pairs": [
            (name, str(value))
            for name, value in params.items()
            if name in form.fields and value not in (None, "")
        ],
        "filtered": has_filters(data),
        "tickets": tickets,
        "total": total,
        # "1,000+" when a search matched more than it counts (SEARCH_COUNT_CAP).
        "total_label": total_label(total, data),
        "presence": people,
        "tags": tags,
        "row_hashes": [
            (t.pk, row_fingerprint(t, people.get(t.pk, []), now, tags.get(t.pk, ())))
            for t in tickets
        ],
        "query": query.urlencode(),
        "bulk_actions": BULK_ACTIONS,
        "current_time": now,
    }


def _count_id(key: str) -> str:
    """The id of a count on the inbox page (``partials/counts.html``)."""
    return {"open": "open-count", "total": "view-count"}.get(key, f"count-{key}")


def _counts_html(state: dict[str, Any]) -> str:
    return render_to_string("tickets/partials/counts.html", state)


@require_GET
@role_required()
def inbox(request: HttpRequest) -> HttpResponse:
    """The inbox: a view of tickets with live counts, filters, search and bulk actions.

    ``?live=1&token=…`` is the page's poll: it answers with only what changed since the state
    the token names (rows out of band, the counts, the order), or 204 if nothing did.
    """
    state = _inbox_state(request)
    user_id: int = request.user.pk or 0  # role_required: signed in
    live = LiveState(rows=state["row_hashes"], counts={**state["counts"], "total": state["total"]})
    if request.GET.get("live") and _wants_partial(request):
        before = live_recall(user_id, request.GET.get("token", ""))
        diff = live_diff(before, live)
        if diff.empty:
            return HttpResponse(status=204)
        pks = [pk for pk, _ in live.rows] if diff.full else [*diff.changed, *diff.added]
        rows = _rows_html(state, pks)
        token = live_remember(user_id, live)
        response = render(
            request,
            "tickets/partials/live.html",
            {
                **state,
                "token": token,
                # Each count that changed, by the id it has on the page.
                "changed_counts": [
                    (_count_id(key), live.counts[key]) for key in diff.counts_changed
                ],
                "changed_rows": [with_oob(rows[pk]) for pk in diff.changed],
                "added_rows": [rows[pk] for pk in diff.added],
                "all_rows": [rows[pk] for pk, _ in live.rows] if diff.full else None,
            },
        )
        if diff.order is not None or diff.added:
            response["HX-Trigger-After-Settle"] = json.dumps(
                {
                    "inbox:order": {
                        "order": diff.order or [pk for pk, _ in live.rows],
                        "added": diff.added,
                    }
                }
            )
        return response
    state["token"] = live_remember(user_id, live)
    rows = _rows_html(state, [t.pk for t in state["tickets"]])
    state["rows"] = [(t.pk, rows[t.pk]) for t in state["tickets"]]
    state["counts_html"] = _counts_html(state)
    state["open_count"] = state["counts"]["open"]
    return render(request, "tickets/inbox.html", state)


@require_POST
@role_required()
def inbox_bulk(request: HttpRequest) -> HttpResponse:
    """Assign, tag, or close as spam or duplicate the selected tickets (all or none)."""
    action = request.POST.get("action", "")
    assignee = request.POST.get("assignee", "")
    try:
        ids = [int(pk) for pk in request.POST.getlist("ticket")]
    except ValueError:
        ids = []
    try:
        result = tickets_bulk_apply(
            organization=request.organization,  # type: ignore[attr-defined]
            by=request.user,  # type: ignore[arg-type]
            ticket_ids=ids,
            action=action,
            assignee_id=int(assignee) if assignee.isdigit() else None,
            tag=request.POST.get("tag", ""),
            reason=request.POST.get("reason", ""),
        )
    except StepError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, result.summary(action))
    back = request.POST.get("next", "")
    # A path of this site only: anything else (another host, or a bare word redirect() would
    # try to reverse as a URL name) goes back to the inbox.
    if not back.startswith("/") or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}
    ):
        back = reverse("tickets:inbox")
    return redirect(back or reverse("tickets:inbox"))


@require_POST
@role_required()
def saved_view_create(request: HttpRequest) -> HttpResponse:
    org = request.organization  # type: ignore[attr-defined]
    form = ViewFilterForm(request.POST, organization=org)
    name = " ".join(request.POST.get("name", "").split())[:60]
    view_key = request.POST.get("view", DEFAULT_VIEW)
    if not name:
        messages.error(request, "Give the view a name to save it.")
    elif not form.is_valid():
        messages.error(
            request,
            "The filters are not valid: "
            + "; ".join(
                f"{form.fields[name].label}: {' '.join(str(m) for m in errors)}"
                for name, errors in form.errors.items()
            ),
        )
    else:
        filters = form.saved_filters()
        filters["view"] = view_key if view_key in VIEWS_BY_KEY else DEFAULT_VIEW
        saved, created = SavedView.objects.update_or_create(
            organization=org,
            owner=request.user,
            name=name,
            defaults={"filters": filters, "sort": form.cleaned_data.get("sort") or "risk"},
        )
        messages.success(request, f"View \u201c{name}\u201d {'saved' if created else 'updated'}.")
        return redirect(f"{reverse('tickets:inbox')}?saved={saved.pk}")
    return redirect(reverse("tickets:inbox"))


@require_POST
@role_required()
def saved_view_delete(request: HttpRequest, pk: int) -> HttpResponse:
    saved = get_for_org_or_404(
        SavedView.objects.filter(owner=request.user),  # type: ignore[misc]
        request.organization,  # type: ignore[attr-defined]
        pk=pk,
    )
    saved.delete()
    messages.success(request, f"View \u201c{saved.name}\u201d deleted.")
    return redirect(reverse("tickets:inbox"))


def _ticket_context(request: HttpRequest, ticket: Ticket) -> dict[str, Any]:
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
        m
        for m in conversation
        if m.direction == Direction.OUTBOUND and m.kind not in MODERATION_MESSAGE_KINDS
    ]
    # The reply still on its way (its step named in the note beside the send button, which
    # the live update takes away once it has gone).
    pending = [m for m in replies if m.outbox.state in PENDING_STATES]
    refused_text = ""
    if replies and step and replies[-1].step == step:
        refused_text = replies[-1].text if replies[-1].outbox.state == OutboxState.FAILED else ""
    public = STEP_RULES[step].public and ticket.is_public if step else None
    facts = reply_facts(ticket, conversation=conversation)
    ways = reply_ways(ticket, facts)
    user_id = request.user.pk
    people = presence_on([ticket.pk], except_user=user_id).get(ticket.pk, [])
    # The reply held for a manager, approved or sent back: from the events, no query of its own.
    approval = next((e for e in reversed(events) if e.kind in APPROVAL_EVENT_KINDS), None)
    return {
        "ticket": ticket,
        "conversation": conversation,
        "pending_delivery": pending[-1] if pending else None,
        "events": events,
        "refusal": reopened.data.get("reason") if reopened else None,
        "refused_by_platform": bool(
            reopened and reopened.data.get("cause") == EventKind.REPLY_REFUSED
        ),
        "late_links": late_links,
        "timers": timers,
        "next_step": Step(step) if step else None,
        "next_step_public": public,
        "next_step_help": STEP_HELP.get(Step(step)) if step else None,
        "next_step_number": list(Step).index(Step(step)) + 1 if step else None,
        "steps": [(s.value, s.label, s.value in done, _step_timer(timers, s.value)) for s in Step],
        "draft": refused_text,
        "reply_ways": ways,
        "step_way": step_way(ticket, public, ways, facts),
        "presence": presence_words(people),
        "presence_replying": any(p.replying for p in people),
        # The newest message the agent has seen when the box was drawn: a reply by someone
        # else after it is a collision, warned about before sending.
        "seen_message": max((m.pk for m in conversation), default=0),
        "current_time": timezone.now(),
        # What the page shows of the approval (the live update redraws the workspace when it
        # changes: a reply sent back brings the composer back with the manager's comment).
        "approval_shown": f"{approval.kind}:{approval.data.get('approval_id', '')}"
        if approval is not None
        else "",
        # While a reply is held the page shows no composer, so no send button to update.
        "approval_held": approval is not None and approval.kind == EventKind.REPLY_HELD,
    }


# The SLA target each care step answers (monitoring's metric names, read from its timers).
STEP_TARGETS = {
    Step.ACKNOWLEDGE: "first_response",
    Step.TAKE_OFFLINE: "take_offline",
    Step.RESOLVE: "resolution",
    Step.CLOSE_OUT: "close_out",
}


def _step_timer(timers: list[Any], step: str) -> Any:
    """The step's SLA timer still running, for the step tracker's countdown (None if none)."""
    metric = STEP_TARGETS.get(Step(step))
    running = [t for t in timers if t.metric == metric and t.state == "running"]
    return min(running, key=lambda t: t.due_at) if running else None


def _get_ticket(request: HttpRequest, pk: int) -> Ticket:
    return get_for_org_or_404(
        Ticket.objects.select_related("social_account", "brand", "assigned_to", "customer"),
        request.organization,  # type: ignore[attr-defined]
        pk=pk,
    )


# The parts of the workspace that update by themselves, each a partial (its root element has
# the section's id). The boxes the agent types in are never one of them: the reply box changes
# only when the step does, the side panel's forms never (only the lists beside them update).
LIVE_SECTIONS: dict[str, str] = {
    "messages": "tickets/ticket.html#messages",
    "ticket-badges": "tickets/ticket.html#ticket-badges",
    "presence": "tickets/ticket.html#presence",
    "reply-ways": "tickets/ticket.html#reply-ways",
    "step-submit": "tickets/ticket.html#step-submit",
    "steps-box": "tickets/ticket.html#steps-box",
    "sla-box": "tickets/ticket.html#sla-box",
    "history": "tickets/ticket.html#history",
    "assigned-now": "tickets/partials/assign.html#assigned-now",
    "tags-list": "tickets/partials/assign.html#tags-list",
    "promises-list": "tickets/partials/promises.html#promises-list",
    "notes-list": "tickets/partials/notes.html#notes-list",
    # The customer sidebar renders from its own context (``customer_sidebar`` below).
    "customer-info": "tickets/partials/customer_sidebar.html#customer-info",
}


def _sections(context: dict[str, Any], csrf_token: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    for name, template in LIVE_SECTIONS.items():
        if name == "step-submit" and (not context["next_step"] or context["approval_held"]):
            continue
        own = context["customer_sidebar"] if name == "customer-info" else context
        sections[name] = render_to_string(template, {**own, "csrf_token": csrf_token})
    return sections


def live_section_hash(html: str, csrf_token: str) -> str:
    """A live section's hash, without its forms' CSRF token (a new mask every page)."""
    return row_hash(html.replace(csrf_token, "") if csrf_token else html)


def _with_hashes(context: dict[str, Any], request: HttpRequest) -> dict[str, Any]:
    """Render the live sections once: their hashes for the live update, and the same HTML for
    the page (``{% livesection %}`` shows ``_sections`` instead of rendering them again)."""
    csrf_token = get_token(request)
    sections = _sections(context, csrf_token)
    hashes = {name: live_section_hash(html, csrf_token) for name, html in sections.items()}
    context["csrf_token"] = csrf_token  # the page's other forms carry the same token
    context["live_hashes"] = ",".join(f"{k}:{v}" for k, v in hashes.items())
    context["_sections"] = sections
    context["_section_hashes"] = hashes
    context["customer_sidebar"]["_sections"] = sections
    return context


def _full_context(request: HttpRequest, ticket: Ticket) -> dict[str, Any]:
    """Everything the ticket page shows (the workspace and the team-work panel): the page and
    its live update must render from the same context, or every poll would see a change."""
    from tickets.customer_views import sidebar_context
    from tickets.workflow_views import workflow_context

    context = _ticket_context(request, ticket)
    context.update(workflow_context(request, ticket, context))
    context["customer_sidebar"] = sidebar_context(
        ticket, conversation=context["conversation"], events=context["events"]
    )
    return context


def _workspace(
    request: HttpRequest, ticket: Ticket, *, error: str | None = None, **extra: object
) -> HttpResponse:
    """The ticket page, or its workspace partial for htmx; 422 when an action was refused.

    A 422 is swapped in too (base.html's htmx-config): it carries the error and the draft.
    """
    context = _full_context(request, ticket)
    context.update(extra)
    _with_hashes(context, request)
    partial = _wants_partial(request)
    template = "tickets/ticket.html#workspace" if partial else "tickets/ticket.html"
    return render(request, template, context, status=422 if error else 200)


@require_GET
@role_required()
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The ticket workspace; with ``live=1`` (htmx, every 3 s) its live update.

    The live update says who is here (presence, "replying" while the agent types) and answers
    with only the sections whose content changed (out of band), 204 if none did; if the step
    changed under the agent (a refused reply reopened it, a colleague took it) the whole
    workspace, form and reason included.
    """
    ticket = _get_ticket(request, pk)
    live = _wants_partial(request) and request.GET.get("live") == "1"
    if live:
        presence_touch(ticket.pk, request.user, replying=request.GET.get("replying") == "1")  # type: ignore[arg-type]
    if not live:
        return _workspace(request, ticket)
    context = _with_hashes(_full_context(request, ticket), request)
    shown_step = request.GET.get("shown_step")
    shown_approval = request.GET.get("shown_approval")
    if (shown_step is not None and shown_step != (ticket.next_step or "")) or (
        shown_approval is not None and shown_approval != context["approval_shown"]
    ):
        response = render(request, "tickets/ticket.html#workspace", context)
        response["HX-Retarget"] = "#workspace"
        response["HX-Reselect"] = "#workspace"
        response["HX-Reswap"] = "outerHTML"
        return response
    shown = parse_hashes(request.GET.get("h", ""))
    hashes = context["_section_hashes"]
    changed = [
        html for name, html in context["_sections"].items() if shown.get(name) != hashes[name]
    ]
    if not changed:
        return HttpResponse(status=204)
    poller = render_to_string("tickets/ticket.html#live-poller", context)
    return HttpResponse("".join(with_oob(html) for html in [*changed, poller]))


def _collision(ticket: Ticket, request: HttpRequest) -> Message | None:
    """A reply someone else sent (in CareInbox or on the platform) after the agent's box was
    drawn: shown before the agent's own goes out."""
    seen = request.POST.get("seen", "")
    if not seen.isdigit():
        return None
    return (
        ticket.messages.filter(direction=Direction.OUTBOUND, pk__gt=int(seen))
        .exclude(sent_by_id=request.user.pk)
        .select_related("sent_by")
        .order_by("-pk")
        .first()
    )


def _collision_words(message: Message) -> str:
    who = (
        str(message.sent_by) if message.sent_by else f"Someone on {message.get_platform_display()}"
    )
    text = message.text if len(message.text) <= 80 else message.text[:79] + "…"
    return f"{who} replied meanwhile: “{text}”."


@require_POST
@role_required()
def ticket_step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    text = request.POST.get("text", "")
    collision = _collision(ticket, request)
    if collision is not None and step == ticket.next_step and not request.POST.get("confirm"):
        # Same step still open (a reply sent on the platform, or one that bounced): the agent
        # decides, with their draft kept.
        warning = _collision_words(collision) + " Read it, then send yours anyway or change it."
        return _workspace(
            request, ticket, error=warning, step_error=warning, draft=text, confirm_collision=True
        )
    try:
        outcome = ticket_take_step(
            ticket=ticket,
            step=step,
            by=request.user,  # type: ignore[arg-type]
            text=text,
            override_guard=request.POST.get("override_guard") == "1",
            confirm_warnings=request.POST.get("confirm_warnings") == "1",
        )
    except GuardRefused as exc:
        # The reply guard: each flag says why; warnings can be confirmed, a blocking flag a
        # manager may override. The draft stays in the box.
        ticket.refresh_from_db()
        return _workspace(
            request,
            ticket,
            error=str(exc),
            step_error=str(exc),
            draft=text,
            guard_flags=exc.flags,
            guard_needs_confirmation=exc.needs_confirmation,
            guard_overridable=not exc.needs_confirmation
            and all(f.manager_may_override for f in exc.flags if f.blocks),
        )
    except StepError as exc:
        ticket.refresh_from_db()
        error = str(exc)
        if collision is not None:
            error = f"{_collision_words(collision)} {error}"
        # The draft goes back into the box only if the box is for the step it was written for.
        # If the ticket moved on meanwhile (another tab took the step), a public reply must
        # never land in a DM box, one click from going out privately: it is shown aside.
        if step == ticket.next_step:
            kept: dict[str, object] = {"draft": text}
        else:
            label = Step(step).label if step in Step.values else step
            kept = {"unsent_draft": text.strip(), "unsent_step": label}
        return _workspace(request, ticket, error=error, step_error=error, **kept)
    presence_touch(ticket.pk, request.user, replying=False)  # type: ignore[arg-type]
    ticket.refresh_from_db()
    # A held reply says so above the box. A queued one is said beside the send button, in
    # the section the live update redraws, so the note goes once the reply has gone (it sat
    # above the box saying "queued to send" long after delivery); the page it redirects to
    # without JavaScript shows that same note while the reply is on its way.
    if _wants_partial(request):
        if isinstance(outcome, ApprovalRequest):
            held = "Held for a manager's approval: " + " ".join(outcome.reasons)
            response = _workspace(request, ticket, reply_note=held)
        else:
            response = _workspace(request, ticket, sent_step=Step(step).label)
        response["HX-Trigger"] = "ticketChanged"
        return response
    if isinstance(outcome, ApprovalRequest):
        messages.success(request, "Held for a manager's approval: " + " ".join(outcome.reasons))
    return redirect("tickets:detail", pk=ticket.pk)


@require_POST
@role_required()
def assign_to_me(request: HttpRequest, pk: int) -> HttpResponse:
    """The agent takes the ticket (the ``m`` key), by the same rule as the assignment form
    (``ticket_assign``: an agent claims a ticket nobody has, never a colleague's)."""
    from tickets.services.teamwork import TeamworkError, ticket_assign

    ticket = _get_ticket(request, pk)
    try:
        event = ticket_assign(
            ticket=ticket,
            by=request.membership,  # type: ignore[attr-defined]
            assignee_id=request.user.pk,
        )
    except TeamworkError as exc:
        ticket.refresh_from_db()
        return _workspace(request, ticket, error=str(exc))
    messages.success(
        request, "Assigned to you." if event is not None else "It was assigned to you already."
    )
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
