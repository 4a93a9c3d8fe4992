"""The ticket's team-work controls: assignment, tags, internal notes, promises, skipping a step,
closing without a public close-out, hiding a post; and the managers' team-routing page.

Each POST answers an htmx request with the ticket's workspace partial (422 with the error when
refused) and a plain form with a redirect (or the page with the error), like the step form.
The side panel's forms select only the panel from it (``hx-select``), so the reply the agent
is typing stays in its box; the hide form selects the conversation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from careinbox.accounts.models import Membership, Role, Team
from careinbox.accounts.services import member_set_availability
from careinbox.audit import record_change, snapshot
from careinbox.tenancy import role_required
from channels_social.base import OutboundKind
from channels_social.registry import adapter_class
from tickets.models import (
    EventKind,
    MessageKind,
    ModerationReason,
    PromiseState,
    SkipReason,
    Step,
    StepError,
    TeamRouting,
    Ticket,
)
from tickets.services.promises import DEFAULT_REMINDER_LEAD, promise_keep, promise_make
from tickets.services.teamwork import (
    TeamworkError,
    moderation_delete,
    moderation_hide,
    note_add,
    open_load,
    redistribute_open_tickets,
    routing_for,
    ticket_assign,
    ticket_close_without_close_out,
    ticket_skip_step,
)
from tickets.views import _get_ticket, _wants_partial, _workspace

# --- Forms ----------------------------------------------------------------------------------------


class NoteForm(forms.Form):
    # Required-ness and length are the service's to say (note_add), in its words.
    body = forms.CharField(required=False, widget=forms.Textarea)


class TagForm(forms.Form):
    name = forms.CharField(max_length=60)


class SkipForm(forms.Form):
    reason = forms.ChoiceField(choices=SkipReason.choices)
    note = forms.CharField(max_length=200, required=False)


class PromiseForm(forms.Form):
    promise = forms.CharField(label="What was promised", required=False)
    due_at = forms.DateTimeField(
        label="Due time",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    remind_minutes_before = forms.IntegerField(
        label="Reminder (minutes before)",
        min_value=0,
        max_value=7 * 24 * 60,
        initial=int(DEFAULT_REMINDER_LEAD.total_seconds() // 60),
    )


class HideForm(forms.Form):
    reason = forms.ChoiceField(choices=ModerationReason.choices)


class DeleteForm(HideForm):
    """The same reasons as hiding: a post is deleted only for breaking a community guideline."""


class RoutingForm(forms.Form):
    auto_assign = forms.BooleanField(required=False)
    takes_new_tickets = forms.BooleanField(required=False)


def _form_error(form: forms.Form) -> str:
    parts = []
    for name, errors in form.errors.items():
        text = " ".join(str(error) for error in errors)
        label = (
            form.fields[name].label or name.replace("_", " ").capitalize()
            if name in form.fields
            else ""
        )
        parts.append(f"{label}: {text}" if label else text)
    return " ".join(parts)


# --- The ticket page's part -----------------------------------------------------------------------


def workflow_context(
    request: HttpRequest, ticket: Ticket, context: dict[str, Any]
) -> dict[str, Any]:
    """What the team-work partials show, in a fixed number of queries whatever the number of
    notes, promises or tags."""
    membership: Membership | None = getattr(request, "membership", None)
    conversation = context.get("conversation", [])
    hides = {
        m.raw.get("target_message_id"): m.outbox.state
        for m in conversation
        if m.kind == MessageKind.HIDE and getattr(m, "outbox", None) is not None
    }
    deletions = {
        m.raw.get("target_message_id"): m.outbox.state
        for m in conversation
        if m.kind == MessageKind.DELETE and getattr(m, "outbox", None) is not None
    }
    adapter = adapter_class(ticket.platform)
    members = list(
        Membership.objects.filter(organization_id=ticket.organization_id, is_active=True)
        .select_related("user")
        .order_by("user__username")
    )
    teams = list(Team.objects.filter(organization_id=ticket.organization_id))
    closing = next(
        (
            e
            for e in reversed(context.get("events", []))
            if e.kind in (EventKind.CLOSE_OUT, EventKind.CLOSED_WITHOUT_CLOSE_OUT)
        ),
        None,
    )
    return {
        "notes": list(ticket.notes.select_related("author").order_by("created_at", "pk")),
        "promises": list(ticket.promises.select_related("made_by", "kept_by")),
        "ticket_tags": list(ticket.tags.all()),
        "assignable": members,
        "teams": teams,
        "assigned_to_name": next(
            (str(m.user) for m in members if m.user_id == ticket.assigned_to_id), ""
        ),
        "team_name": next((t.name for t in teams if t.pk == ticket.team_id), ""),
        "is_mine": ticket.assigned_to_id == getattr(request.user, "pk", None),
        "can_manage": bool(membership and membership.has_role(Role.MANAGER)),
        "hides": hides,
        # A hide on its way: the conversation refreshes itself (a hide holds no step back).
        "deletions": deletions,
        "moderation_pending": any(
            state in ("queued", "sending") for state in [*hides.values(), *deletions.values()]
        ),
        # What the platform allows: the hide and delete controls appear only where it does.
        "can_hide_posts": adapter.moderation_refusal(OutboundKind.HIDE) is None,
        "delete_refusal": adapter.moderation_refusal(OutboundKind.DELETE) or "",
        "closed_without_close_out": closing.data.get("summary", "")
        if closing is not None and closing.kind == EventKind.CLOSED_WITHOUT_CLOSE_OUT
        else "",
        "skip_reasons": SkipReason.choices,
        "moderation_reasons": ModerationReason.choices,
        "promise_open": PromiseState.OPEN,
        "promise_broken": PromiseState.BROKEN,
        "promise_default_lead": int(DEFAULT_REMINDER_LEAD.total_seconds() // 60),
        "promise_min_due": timezone.localtime(
            timezone.now(),
            ZoneInfo(request.organization.time_zone),  # type: ignore[attr-defined]
        ).strftime("%Y-%m-%dT%H:%M"),
    }


def _done(request: HttpRequest, ticket: Ticket, said: str) -> HttpResponse:
    ticket.refresh_from_db()
    if _wants_partial(request):
        response = _workspace(request, ticket)
        response["HX-Trigger"] = "ticketChanged"
        return response
    messages.success(request, said)
    return redirect("tickets:detail", pk=ticket.pk)


def _refused(
    request: HttpRequest, ticket: Ticket, error: str, area: str, **extra: object
) -> HttpResponse:
    ticket.refresh_from_db()
    return _workspace(
        request, ticket, error=error, workflow_error=error, workflow_area=area, **extra
    )


# --- Assignment -----------------------------------------------------------------------------------


def _int_or_none(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise TeamworkError("Choose someone from the list.") from None


@require_POST
@role_required()
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    """Assign, reassign or unassign (``assignee`` empty), and/or move to a team (``team``)."""
    ticket = _get_ticket(request, pk)
    try:
        ticket_assign(
            ticket=ticket,
            by=request.membership,  # type: ignore[attr-defined]
            assignee_id=_int_or_none(request.POST.get("assignee")),
            change_team="team" in request.POST,
            team_id=_int_or_none(request.POST.get("team")),
        )
    except TeamworkError as exc:
        return _refused(request, ticket, str(exc), "assign")
    return _done(request, ticket, "Assignment saved.")


@require_POST
@role_required()
def claim(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    try:
        ticket_assign(
            ticket=ticket,
            by=request.membership,  # type: ignore[attr-defined]
            assignee_id=request.user.pk,
        )
    except TeamworkError as exc:
        return _refused(request, ticket, str(exc), "assign")
    return _done(request, ticket, "The ticket is yours.")


# --- Tags and notes -------------------------------------------------------------------------------


@require_POST
@role_required()
def tag_add(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    form = TagForm(request.POST)
    if not form.is_valid() or not form.cleaned_data["name"].strip(" #"):
        return _refused(request, ticket, "Type a tag: a word or two, such as refund.", "tags")
    ticket.add_tag(form.cleaned_data["name"], by=request.user)  # type: ignore[arg-type]
    return _done(request, ticket, "Tagged.")


@require_POST
@role_required()
def tag_remove(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    ticket.remove_tag(request.POST.get("name", ""), by=request.user)  # type: ignore[arg-type]
    return _done(request, ticket, "Tag removed.")


@require_POST
@role_required()
def note(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    form = NoteForm(request.POST)
    try:
        if not form.is_valid():
            raise TeamworkError(_form_error(form))
        note_add(ticket=ticket, by=request.user, body=form.cleaned_data["body"])  # type: ignore[arg-type]
    except TeamworkError as exc:
        return _refused(request, ticket, str(exc), "notes")
    return _done(request, ticket, "Note added.")


# --- Promises -------------------------------------------------------------------------------------


@require_POST
@role_required()
def promise(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    form = PromiseForm(request.POST)
    try:
        # The due time is typed in the organisation's time zone.
        zone = ZoneInfo(request.organization.time_zone)  # type: ignore[attr-defined]
        with timezone.override(zone):
            valid = form.is_valid()
        if not valid:
            raise TeamworkError(_form_error(form))
        promise_make(
            ticket=ticket,
            by=request.user,  # type: ignore[arg-type]
            text=form.cleaned_data["promise"],
            due_at=form.cleaned_data["due_at"],
            remind_before=timedelta(minutes=form.cleaned_data["remind_minutes_before"]),
        )
    except TeamworkError as exc:
        return _refused(request, ticket, str(exc), "promises")
    return _done(request, ticket, "Promise recorded.")


@require_POST
@role_required()
def promise_kept(request: HttpRequest, pk: int, promise_id: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    try:
        promise_keep(ticket=ticket, promise_id=promise_id, by=request.user)  # type: ignore[arg-type]
    except TeamworkError as exc:
        return _refused(request, ticket, str(exc), "promises")
    return _done(request, ticket, "Promise kept.")


# --- The steps: skip, close without a close-out ---------------------------------------------------


@require_POST
@role_required()
def skip_step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    form = SkipForm(request.POST)
    try:
        if not form.is_valid():
            raise StepError("Choose a reason to skip the step.")
        ticket_skip_step(
            ticket=ticket,
            step=step,
            by=request.user,  # type: ignore[arg-type]
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
        )
    except StepError as exc:
        return _refused(request, ticket, str(exc), "steps")
    label = Step(step).label if step in Step.values else step
    return _done(request, ticket, f"{label} skipped.")


@require_POST
@role_required()
def close_without_close_out(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    form = SkipForm(request.POST)
    try:
        if not form.is_valid():
            raise StepError("Choose a reason to close without a public close-out.")
        ticket_close_without_close_out(
            ticket=ticket,
            by=request.user,  # type: ignore[arg-type]
            reason=form.cleaned_data["reason"],
            note=form.cleaned_data["note"],
        )
    except StepError as exc:
        return _refused(request, ticket, str(exc), "steps")
    return _done(request, ticket, "Closed without a public close-out.")


# --- Moderation -----------------------------------------------------------------------------------


@require_POST
@role_required()
def hide_post(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    form = HideForm(request.POST)
    try:
        if not form.is_valid():
            raise TeamworkError("Hide a post only for a community-guideline reason: choose one.")
        moderation_hide(
            ticket=ticket,
            message_id=message_id,
            by=request.user,  # type: ignore[arg-type]
            reason=form.cleaned_data["reason"],
        )
    except TeamworkError as exc:
        return _refused(request, ticket, str(exc), "moderation", workflow_target=message_id)
    return _done(request, ticket, "Hiding the post: queued.")


@require_POST
@role_required(Role.MANAGER)
def delete_post(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    """Delete a customer's post (managers only: to an agent the URL is a 404, as every page
    above their role), for a community-guideline reason; the platform must allow it (Facebook
    does, X never)."""
    ticket = _get_ticket(request, pk)
    membership: Membership = request.membership  # type: ignore[attr-defined]
    form = DeleteForm(request.POST)
    try:
        if not form.is_valid():
            raise TeamworkError("Delete a post only for a community-guideline reason: choose one.")
        moderation_delete(
            ticket=ticket,
            message_id=message_id,
            by=membership,
            reason=form.cleaned_data["reason"],
        )
    except TeamworkError as exc:
        return _refused(
            request,
            ticket,
            str(exc),
            "moderation",
            workflow_target=message_id,
            workflow_action="delete",
        )
    return _done(request, ticket, "Deleting the post: queued.")


# --- My availability: an agent marks themselves away ----------------------------------------


@require_http_methods(["GET", "POST"])
@role_required()
def my_availability(request: HttpRequest) -> HttpResponse:
    """Any member marks themselves away (round-robin gives them nothing new) or back, each in
    the audit trail, and, away, may hand their open tickets to their team at once."""
    membership: Membership = request.membership  # type: ignore[attr-defined]
    error = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action in ("away", "back"):
            member_set_availability(
                membership=membership,
                actor=request.user,
                is_away=action == "away",
                capacity=membership.capacity,
            )
            said = (
                "You are away: round-robin gives you nothing new."
                if action == "away"
                else "You are back: round-robin hands you tickets again."
            )
            messages.success(request, said)
            return redirect("tickets:my-availability")
        if action == "redistribute":
            try:
                result = redistribute_open_tickets(membership=membership, by=request.user)  # type: ignore[arg-type]
            except TeamworkError as exc:
                error = str(exc)
            else:
                messages.success(
                    request,
                    f"Your open tickets: {result.reassigned} handed to colleagues, "
                    f"{result.queued} back in the team queue (nobody free).",
                )
                return redirect("tickets:my-availability")
        else:
            error = "Unknown action."
    open_tickets = (
        Ticket.objects.filter(
            organization_id=membership.organization_id, assigned_to_id=membership.user_id
        )
        .open()
        .count()
    )
    return render(
        request,
        "tickets/my_availability.html",
        {"open_tickets": open_tickets, "availability_error": error},
        status=422 if error else 200,
    )


# --- The managers' routing page -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.MANAGER)
def routing(request: HttpRequest) -> HttpResponse:
    """Each team's routing (round-robin on or off, which team takes new tickets), its members'
    load against their capacity and availability, and redistributing an away member's tickets."""
    organization = request.organization  # type: ignore[attr-defined]
    error = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "routing":
            team = get_object_or_404(
                Team, organization=organization, pk=_pk(request.POST.get("team"))
            )
            form = RoutingForm(request.POST)
            form.is_valid()  # two checkboxes: any input is valid
            _save_routing(request, team, form.cleaned_data)
            messages.success(request, f"Routing of {team} saved.")
            return redirect("tickets:routing")
        elif action == "availability":
            member = get_object_or_404(
                Membership.objects.select_related("user"),
                organization=organization,
                pk=_pk(request.POST.get("member")),
            )
            with transaction.atomic():
                before = snapshot(member, ["is_away"])
                member.is_away = request.POST.get("is_away") == "on"
                member.save(update_fields=["is_away"])
                record_change(
                    organization,
                    request.user,
                    "updated",
                    member,
                    object_type="Membership",
                    before=before,
                    after=snapshot(member, ["is_away"]),
                )
            state = "away: routing gives them nothing new" if member.is_away else "back"
            messages.success(request, f"{member.user} is {state}.")
            return redirect("tickets:routing")
        elif action == "redistribute":
            member = get_object_or_404(
                Membership.objects.select_related("user"),
                organization=organization,
                pk=_pk(request.POST.get("member")),
            )
            try:
                result = redistribute_open_tickets(membership=member, by=request.user)  # type: ignore[arg-type]
            except TeamworkError as exc:
                error = str(exc)
            else:
                messages.success(
                    request,
                    f"{member.user}'s open tickets: {result.reassigned} reassigned, "
                    f"{result.queued} back in the team queue (nobody free).",
                )
                return redirect("tickets:routing")
        else:
            error = "Unknown action."
    teams = list(Team.objects.filter(organization=organization).prefetch_related("members__user"))
    routings = {r.team_id: r for r in TeamRouting.objects.filter(organization=organization)}
    members = list(
        Membership.objects.filter(organization=organization, is_active=True)
        .select_related("user")
        .order_by("user__username")
    )
    load = open_load(organization.pk, [m.user_id for m in members])
    rows = [
        {
            "team": team,
            "routing": routings.get(team.pk),
            "members": [
                {"member": m, "open": load.get(m.user_id, 0)}
                for m in team.members.all()
                if m.is_active
            ],
        }
        for team in teams
    ]
    away = [{"member": m, "open": load.get(m.user_id, 0)} for m in members if m.is_away]
    return render(
        request,
        "tickets/routing.html",
        {"rows": rows, "away": away, "routing_error": error},
        status=422 if error else 200,
    )


ROUTING_FIELDS = ("auto_assign", "takes_new_tickets")


def _pk(value: str | None) -> int:
    """An id from a form; anything else is 0, which no row has (a 404)."""
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _save_routing(request: HttpRequest, team: Team, data: dict[str, Any]) -> None:
    with transaction.atomic():
        routing = TeamRouting.objects.select_for_update().get(pk=routing_for(team).pk)
        before = snapshot(routing, ROUTING_FIELDS)
        if data.get("takes_new_tickets"):
            # One team takes new tickets: choosing it here takes the role from the other.
            for other in TeamRouting.objects.filter(
                organization_id=team.organization_id, takes_new_tickets=True
            ).exclude(pk=routing.pk):
                other_before = snapshot(other, ROUTING_FIELDS)
                other.takes_new_tickets = False
                other.save(update_fields=["takes_new_tickets", "updated_at"])
                record_change(
                    team.organization,
                    request.user,
                    "updated",
                    other,
                    object_type="Team routing",
                    before=other_before,
                    after=snapshot(other, ROUTING_FIELDS),
                )
        routing.auto_assign = bool(data.get("auto_assign"))
        routing.takes_new_tickets = bool(data.get("takes_new_tickets"))
        routing.save(update_fields=["auto_assign", "takes_new_tickets", "updated_at"])
        record_change(
            team.organization,
            request.user,
            "updated",
            routing,
            object_type="Team routing",
            before=before,
            after=snapshot(routing, ROUTING_FIELDS),
        )
