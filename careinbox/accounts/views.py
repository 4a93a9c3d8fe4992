"""The settings area's own sections: people and roles, teams, the organisation, the audit trail;
and the invitation page a new member sets a password on.

Each view serves its page and, for htmx, the part of it that changed (``template#partial``);
every control is a real form, so it all works as plain POST-redirect-GET without JavaScript.
The sections are for organisation admins only (``role_required``: anyone else gets a 404), and
another organisation's ids are a 404 too (``get_for_org_or_404``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.tokens import default_token_generator
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careinbox.accounts import services
from careinbox.accounts.forms import (
    AcceptInvitationForm,
    AuditFilterForm,
    AvailabilityForm,
    InviteForm,
    OrganizationForm,
    RoleForm,
    TeamForm,
    TeamMemberForm,
    time_zone_names,
)
from careinbox.accounts.models import AuditEntry, Membership, Organization, Role, Team, User
from careinbox.tenancy import OrgRequest, role_required

AUDIT_PAGE_SIZE = 25


def _wants_partial(request: OrgRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.boosted


def _organization(request: OrgRequest) -> Organization:
    if request.organization is None:  # role_required has let no such request through
        raise Http404("No organisation.")
    return request.organization


def _membership_or_404(request: OrgRequest, pk: int) -> Membership:
    try:
        return Membership.objects.select_related("user").get(
            pk=pk, organization=_organization(request)
        )
    except Membership.DoesNotExist as error:
        raise Http404("No such member.") from error


def _team_or_404(request: OrgRequest, pk: int) -> Team:
    try:
        return Team.objects.get(pk=pk, organization=_organization(request))
    except Team.DoesNotExist as error:
        raise Http404("No such team.") from error


def _base_url(request: OrgRequest) -> str:
    return request.build_absolute_uri("/")


@require_GET
@role_required(Role.ADMIN)
def settings_home(request: OrgRequest) -> HttpResponse:
    return render(request, "settings/home.html")


# --- people and roles -------------------------------------------------------------------------


def _member_rows(organization: Organization) -> QuerySet[Membership]:
    """Members with what their row shows: one query for them, one for all their teams."""
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .prefetch_related(Prefetch("teams", queryset=Team.objects.order_by("name")))
        .order_by("-is_active", "user__first_name", "user__last_name", "user__username")
    )


def _row_context(member: Membership, **extra: Any) -> dict[str, Any]:
    return {
        "member": member,
        "role_choices": Role.choices,
        "pending": not member.user.has_usable_password(),
        **extra,
    }


def _members_page(
    request: OrgRequest,
    *,
    form: InviteForm | None = None,
    notice: str = "",
    notice_is_error: bool = False,
    status: int = 200,
    partial: bool = False,
) -> HttpResponse:
    members = _member_rows(_organization(request))
    context = {
        "members": [_row_context(member) for member in members],
        "invite_form": form or InviteForm(),
        "notice": notice,
        "notice_is_error": notice_is_error,
        "role_choices": Role.choices,
    }
    template = "settings/members.html#members-panel" if partial else "settings/members.html"
    return render(request, template, context, status=status)


@require_GET
@role_required(Role.ADMIN)
def members(request: OrgRequest) -> HttpResponse:
    return _members_page(request)


def _invitation_notice(invitation: services.Invitation, email: str) -> tuple[str, bool]:
    if invitation.email_sent is False:
        return (
            f"{email} was added, but the invitation e-mail could not be sent "
            f"({invitation.email_error}); use “Resend invitation” once mail works.",
            False,
        )
    if invitation.new_account:
        return f"Invitation sent to {email}: the link in it sets their password.", True
    if invitation.membership.user.has_usable_password():
        return f"{email} already has an account: added, and told by e-mail to sign in.", True
    return f"Invitation sent to {email}.", True


@require_POST
@role_required(Role.ADMIN)
def member_invite(request: OrgRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    partial = _wants_partial(request)
    if form.is_valid():
        email = form.cleaned_data["email"]
        try:
            invitation = services.member_invite(
                organization=_organization(request),
                actor=request.user,
                name=form.cleaned_data["name"],
                email=email,
                role=form.cleaned_data["role"],
                base_url=_base_url(request),
            )
        except services.SettingsError as error:
            form.add_error("email", str(error))
        else:
            notice, ok = _invitation_notice(invitation, email)
            if partial:
                return _members_page(request, notice=notice, notice_is_error=not ok, partial=True)
            (messages.success if ok else messages.error)(request, notice)
            return redirect("accounts:members")
    return _members_page(request, form=form, status=422, partial=partial)


def _member_changed(
    request: OrgRequest, member: Membership, *, notice: str = "", error: str = ""
) -> HttpResponse:
    """The member's row for htmx (422 with the reason if refused); else back to the list."""
    if _wants_partial(request):
        fresh = _member_rows(_organization(request)).get(pk=member.pk)
        context = _row_context(fresh, row_notice=notice, row_error=error)
        return render(
            request, "settings/members.html#member-row", context, status=422 if error else 200
        )
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect("accounts:members")


@require_POST
@role_required(Role.ADMIN)
def member_role(request: OrgRequest, pk: int) -> HttpResponse:
    member = _membership_or_404(request, pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _member_changed(request, member, error="Choose agent, manager or admin.")
    try:
        member = services.member_change_role(
            membership=member, actor=request.user, role=form.cleaned_data["role"]
        )
    except services.SettingsError as error:
        return _member_changed(request, member, error=str(error))
    label = services.member_label(member)
    return _member_changed(
        request, member, notice=f"{label} is now {member.get_role_display().lower()}."
    )


@require_POST
@role_required(Role.ADMIN)
def member_active(request: OrgRequest, pk: int) -> HttpResponse:
    member = _membership_or_404(request, pk)
    active = request.POST.get("active") == "1"
    try:
        member = services.member_set_active(membership=member, actor=request.user, active=active)
    except services.SettingsError as error:
        return _member_changed(request, member, error=str(error))
    label = services.member_label(member)
    return _member_changed(
        request,
        member,
        notice=f"{label} {'is active again' if active else 'is deactivated'}.",
    )


@require_POST
@role_required(Role.ADMIN)
def member_availability(request: OrgRequest, pk: int) -> HttpResponse:
    member = _membership_or_404(request, pk)
    form = AvailabilityForm(request.POST)
    if not form.is_valid():
        reasons = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return _member_changed(request, member, error=f"Not saved: {reasons}")
    member = services.member_set_availability(
        membership=member,
        actor=request.user,
        is_away=form.cleaned_data["is_away"],
        capacity=form.cleaned_data["capacity"],
    )
    return _member_changed(request, member, notice="Saved.")


@require_POST
@role_required(Role.ADMIN)
def member_resend(request: OrgRequest, pk: int) -> HttpResponse:
    member = _membership_or_404(request, pk)
    try:
        invitation = services.member_resend_invitation(
            membership=member, actor=request.user, base_url=_base_url(request)
        )
    except services.SettingsError as error:
        return _member_changed(request, member, error=str(error))
    notice, ok = _invitation_notice(invitation, member.user.email)
    if not ok:
        return _member_changed(request, member, error=notice)
    return _member_changed(request, member, notice=f"{notice} Earlier links no longer work.")


# --- teams ------------------------------------------------------------------------------------


def _teams_page(
    request: OrgRequest, *, form: TeamForm | None = None, status: int = 200, notice: str = ""
) -> HttpResponse:
    teams = (
        Team.objects.filter(organization=_organization(request))
        .annotate(member_count=Count("members"), ticket_count=Count("tickets", distinct=True))
        .order_by("name")
    )
    context = {"teams": teams, "form": form or TeamForm(), "notice": notice}
    partial = _wants_partial(request)
    template = "settings/teams.html#teams-panel" if partial else "settings/teams.html"
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def teams(request: OrgRequest) -> HttpResponse:
    if request.method != "POST":
        return _teams_page(request)
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = services.team_create(
                organization=_organization(request),
                actor=request.user,
                name=form.cleaned_data["name"],
            )
        except services.SettingsError as error:
            form.add_error("name", str(error))
        else:
            notice = f"Team {team.name} created."
            if _wants_partial(request):
                return _teams_page(request, notice=notice)
            messages.success(request, notice)
            return redirect("accounts:team", pk=team.pk)
    return _teams_page(request, form=form, status=422)


def _team_page(
    request: OrgRequest,
    team: Team,
    *,
    rename_form: TeamForm | None = None,
    member_form: TeamMemberForm | None = None,
    notice: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "team": team,
        "team_members": list(
            team.members.select_related("user").order_by(
                "user__first_name", "user__last_name", "user__username"
            )
        ),
        "ticket_count": team.tickets.count(),  # type: ignore[attr-defined]
        "rename_form": rename_form or TeamForm(initial={"name": team.name}),
        "member_form": member_form or TeamMemberForm(team=team),
        "notice": notice,
    }
    partial = _wants_partial(request)
    template = "settings/team.html#team-panel" if partial else "settings/team.html"
    return render(request, template, context, status=status)


def _team_changed(request: OrgRequest, team: Team, notice: str) -> HttpResponse:
    if _wants_partial(request):
        return _team_page(request, team, notice=notice)
    messages.success(request, notice)
    return redirect("accounts:team", pk=team.pk)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def team(request: OrgRequest, pk: int) -> HttpResponse:
    team = _team_or_404(request, pk)
    if request.method != "POST":
        return _team_page(request, team)
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            name = form.cleaned_data["name"]
            team = services.team_rename(team=team, actor=request.user, name=name)
        except services.SettingsError as error:
            form.add_error("name", str(error))
        else:
            return _team_changed(request, team, f"Renamed to {team.name}.")
    team.refresh_from_db()
    return _team_page(request, team, rename_form=form, status=422)


@require_POST
@role_required(Role.ADMIN)
def team_delete(request: OrgRequest, pk: int) -> HttpResponse:
    team = _team_or_404(request, pk)
    name = team.name
    services.team_delete(team=team, actor=request.user)
    messages.success(request, f"Team {name} deleted; its tickets now have no team.")
    if _wants_partial(request):
        response = HttpResponse(status=204)
        response["HX-Location"] = reverse("accounts:teams")
        return response
    return redirect("accounts:teams")


@require_POST
@role_required(Role.ADMIN)
def team_member_add(request: OrgRequest, pk: int) -> HttpResponse:
    team = _team_or_404(request, pk)
    form = TeamMemberForm(request.POST, team=team)
    if not form.is_valid():
        return _team_page(request, team, member_form=form, status=422)
    membership: Membership = form.cleaned_data["membership"]
    services.team_set_member(team=team, membership=membership, actor=request.user, present=True)
    return _team_changed(request, team, f"{services.member_label(membership)} added.")


@require_POST
@role_required(Role.ADMIN)
def team_member_remove(request: OrgRequest, pk: int, member_pk: int) -> HttpResponse:
    team = _team_or_404(request, pk)
    membership = _membership_or_404(request, member_pk)
    services.team_set_member(team=team, membership=membership, actor=request.user, present=False)
    return _team_changed(request, team, f"{services.member_label(membership)} removed.")


# --- the organisation -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def organization(request: OrgRequest) -> HttpResponse:
    org = _organization(request)
    status = 200
    if request.method == "POST":
        form = OrganizationForm(request.POST)
        if form.is_valid():
            services.organization_update(
                organization=org,
                actor=request.user,
                name=form.cleaned_data["name"],
                time_zone=form.cleaned_data["time_zone"],
            )
            messages.success(request, "Organisation saved.")
            return redirect("accounts:organization")
        status = 422
    else:
        form = OrganizationForm.for_organization(org)
    context = {"form": form, "time_zones": time_zone_names()}
    return render(request, "settings/organization.html", context, status=status)


# --- the audit trail --------------------------------------------------------------------------


def _changes(entry: AuditEntry) -> list[dict[str, Any]]:
    before = entry.before if isinstance(entry.before, dict) else {}
    after = entry.after if isinstance(entry.after, dict) else {}
    keys = list(dict.fromkeys([*before, *after]))
    return [
        {
            "field": key.replace("_", " "),
            "before": before.get(key),
            "after": after.get(key),
            "had_before": key in before,
            "has_after": key in after,
        }
        for key in keys
    ]


@require_GET
@role_required(Role.ADMIN)
def audit(request: OrgRequest) -> HttpResponse:
    org = _organization(request)
    form = AuditFilterForm(request.GET or None, organization=org)
    entries = AuditEntry.objects.filter(organization=org).select_related("actor")
    query: dict[str, str] = {}
    if form.is_valid():
        if form.cleaned_data["object_type"]:
            entries = entries.filter(object_type=form.cleaned_data["object_type"])
            query["object_type"] = form.cleaned_data["object_type"]
        if form.cleaned_data["actor"]:
            entries = entries.filter(actor_id=form.cleaned_data["actor"])
            query["actor"] = form.cleaned_data["actor"]
    page = Paginator(entries.order_by("-created_at", "-pk"), AUDIT_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "form": form,
        "page": page,
        "rows": [{"entry": entry, "changes": _changes(entry)} for entry in page.object_list],
        "filter_query": urlencode(query),
    }
    partial = _wants_partial(request)
    return render(
        request, "settings/audit.html#audit-table" if partial else "settings/audit.html", context
    )


# --- accepting an invitation (no sign-in needed: the link is the proof) -----------------------


def _invited_user(uidb64: str) -> User | None:
    try:
        pk = int(force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError):
        return None
    return User.objects.filter(pk=pk).first()


@require_http_methods(["GET", "POST"])
def invitation_accept(request: OrgRequest, uidb64: str, token: str) -> HttpResponse:
    user = _invited_user(uidb64)
    if user is None or not default_token_generator.check_token(user, token):
        invalid = {"already_accepted": bool(user and user.has_usable_password())}
        return render(request, "registration/invitation_invalid.html", invalid, status=410)
    memberships = list(
        Membership.objects.filter(user=user, is_active=True)
        .select_related("organization")
        .order_by("-created_at", "-pk")
    )
    if request.method == "POST":
        form = AcceptInvitationForm(user, request.POST)
        if form.is_valid():
            form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            if memberships:  # the organisation that invited them last
                request.session["organization_id"] = memberships[0].organization_id
            messages.success(request, "Welcome to CareInbox: your password is set.")
            return redirect("tickets:inbox")
        status = 422
    else:
        form = AcceptInvitationForm(user)
        status = 200
    context: dict[str, Any] = {"form": form, "invited": user, "memberships": memberships}
    return render(request, "registration/invitation_accept.html", context, status=status)
