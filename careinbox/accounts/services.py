"""Settings changes to people, teams and the organisation: each one audited in its transaction.

Every function here is ``<entity>_<verb>(*, ...)``: it checks what must hold (never leave an
organisation without an active admin, never lock yourself out), makes the change, and writes its
``AuditEntry`` through ``careinbox.audit.record_change`` in the same transaction. Invitation
e-mails leave only after the commit (``transaction.on_commit``), so a rolled-back invitation
never mails a link to an account that does not exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from careinbox.accounts.models import Membership, Organization, Role, Team, User
from careinbox.audit import record_change, snapshot

logger = logging.getLogger(__name__)

MEMBER_TYPE = "member"
TEAM_TYPE = "team"
ORGANIZATION_TYPE = "organization"
ORGANIZATION_FIELDS = ("name", "time_zone")
AVAILABILITY_FIELDS = ("is_away", "capacity")


class SettingsError(ValueError):
    """A change refused for a reason the admin can act on (shown to them as it is worded)."""


def member_label(membership: Membership) -> str:
    user = membership.user
    name = user.get_full_name() or user.username
    return f"{name} <{user.email}>" if user.email and user.email != name else name


def _lock_organization(organization: Organization) -> None:
    # Role and active changes of one organisation run one at a time, so two admins demoting
    # each other at once cannot both pass the "another active admin remains" check.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


def _other_active_admins(membership: Membership) -> bool:
    return (
        Membership.objects.filter(
            organization_id=membership.organization_id, role=Role.ADMIN, is_active=True
        )
        .exclude(pk=membership.pk)
        .exists()
    )


def _fresh(membership: Membership) -> Membership:
    return Membership.objects.select_related("user", "organization").get(pk=membership.pk)


# --- invitations ------------------------------------------------------------------------------


@dataclass
class Invitation:
    """What ``member_invite`` did: the membership, whether the account is new, and the mail."""

    membership: Membership
    new_account: bool
    # None until the mail was handed to the backend after commit; False: it failed (logged).
    email_sent: bool | None = None
    email_error: str = ""


def invitation_link(user: User, base_url: str) -> str:
    """A one-time set-password link: valid for ``PASSWORD_RESET_TIMEOUT`` and only until the
    password is set (Django's token covers the password hash and the last login)."""
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("invitations:accept", kwargs={"uidb64": uidb64, "token": token})
    return base_url.rstrip("/") + path


def _mail_invitation(invitation: Invitation, *, inviter: Any, base_url: str) -> None:
    membership = invitation.membership
    user = membership.user
    needs_password = not user.has_usable_password()
    context = {
        "user": user,
        "organization": membership.organization,
        "role": membership.get_role_display(),
        "inviter": inviter,
        "link": invitation_link(user, base_url) if needs_password else "",
        "login_url": base_url.rstrip("/") + reverse("login"),
        "valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    subject = f"You are invited to {membership.organization} on CareInbox"
    body = render_to_string("registration/invitation_email.txt", context)
    try:
        send_mail(subject, body, None, [user.email])
    except Exception as error:  # the mail server is not the app: the member stays, resend later
        logger.exception("could not e-mail the invitation of membership %s", membership.pk)
        invitation.email_sent = False
        invitation.email_error = str(error) or error.__class__.__name__
    else:
        invitation.email_sent = True


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().partition(" ")
    return first[:150], last.strip()[:150]


def member_invite(
    *,
    organization: Organization,
    actor: Any,
    name: str,
    email: str,
    role: str,
    base_url: str,
) -> Invitation:
    """Invite ``email`` with ``role``: a new account (no password until the link sets one), or
    a membership for the account that already has this address. Mailed after commit."""
    email = email.strip()
    with transaction.atomic():
        accounts = list(User.objects.filter(email__iexact=email)[:2])
        if len(accounts) > 1:
            raise SettingsError(
                f"Several accounts use {email}; an operator has to merge them before inviting."
            )
        new_account = not accounts
        if new_account:
            username = email.lower()
            if User.objects.filter(username__iexact=username).exists():
                raise SettingsError(f"The username {username} is taken by another account.")
            first_name, last_name = _split_name(name)
            user = User(username=username, email=email, first_name=first_name, last_name=last_name)
            user.set_unusable_password()
            user.save()
        else:
            user = accounts[0]
            existing = Membership.objects.filter(user=user, organization=organization).first()
            if existing is not None:
                if not existing.is_active:
                    raise SettingsError(
                        f"{email} is a deactivated member; reactivate them in the list instead."
                    )
                if not user.has_usable_password():
                    raise SettingsError(
                        f"{email} is invited already and has not accepted yet; use “Resend "
                        "invitation” in the list."
                    )
                raise SettingsError(f"{email} is a member already.")
        membership = Membership.objects.create(user=user, organization=organization, role=role)
        membership = _fresh(membership)
        record_change(
            organization,
            actor,
            "invited",
            membership,
            object_type=MEMBER_TYPE,
            object_repr=member_label(membership),
            after={
                "email": email,
                "name": user.get_full_name(),
                "role": role,
                "account": "new" if new_account else "existing",
            },
        )
        invitation = Invitation(membership=membership, new_account=new_account)
        transaction.on_commit(
            lambda: _mail_invitation(invitation, inviter=actor, base_url=base_url)
        )
    return invitation


def member_resend_invitation(*, membership: Membership, actor: Any, base_url: str) -> Invitation:
    """Mail a fresh link to a member who has not set a password yet; earlier links stop working
    (the new unusable password changes what the token is made from)."""
    with transaction.atomic():
        membership = _fresh(membership)
        user = membership.user
        if user.has_usable_password():
            raise SettingsError(
                f"{member_label(membership)} has accepted already and signs in with a password."
            )
        if not membership.is_active:
            raise SettingsError("Reactivate this member before re-sending the invitation.")
        if not user.email:
            raise SettingsError("This account has no e-mail address to send the invitation to.")
        user.set_unusable_password()
        user.save(update_fields=["password"])
        record_change(
            membership.organization,
            actor,
            "invitation resent",
            membership,
            object_type=MEMBER_TYPE,
            object_repr=member_label(membership),
            after={"email": user.email},
        )
        invitation = Invitation(membership=membership, new_account=False)
        transaction.on_commit(
            lambda: _mail_invitation(invitation, inviter=actor, base_url=base_url)
        )
    return invitation


# --- members ----------------------------------------------------------------------------------


def member_change_role(*, membership: Membership, actor: Any, role: str) -> Membership:
    with transaction.atomic():
        _lock_organization(membership.organization)
        membership = _fresh(membership)
        if membership.role == role:
            return membership
        last_admin = membership.role == Role.ADMIN and membership.is_active
        if last_admin and not _other_active_admins(membership):
            raise SettingsError(
                f"{member_label(membership)} is the last active admin; make someone else "
                "an admin first."
            )
        if membership.user_id == getattr(actor, "pk", None):
            raise SettingsError("You cannot change your own role; ask another admin.")
        before = snapshot(membership, ["role"])
        membership.role = role
        membership.save(update_fields=["role"])
        record_change(
            membership.organization,
            actor,
            "updated",
            membership,
            object_type=MEMBER_TYPE,
            object_repr=member_label(membership),
            before=before,
            after=snapshot(membership, ["role"]),
        )
    return membership


def member_set_active(*, membership: Membership, actor: Any, active: bool) -> Membership:
    """Deactivate (they lose access to this organisation at their next request) or reactivate."""
    with transaction.atomic():
        _lock_organization(membership.organization)
        membership = _fresh(membership)
        if membership.is_active == active:
            return membership
        if not active:
            if membership.role == Role.ADMIN and not _other_active_admins(membership):
                raise SettingsError(
                    f"{member_label(membership)} is the last active admin and stays active."
                )
            if membership.user_id == getattr(actor, "pk", None):
                raise SettingsError("You cannot deactivate yourself; ask another admin.")
        membership.is_active = active
        membership.save(update_fields=["is_active"])
        record_change(
            membership.organization,
            actor,
            "reactivated" if active else "deactivated",
            membership,
            object_type=MEMBER_TYPE,
            object_repr=member_label(membership),
            before={"is_active": not active},
            after={"is_active": active},
        )
    return membership


def member_set_availability(
    *, membership: Membership, actor: Any, is_away: bool, capacity: int
) -> Membership:
    with transaction.atomic():
        membership = _fresh(membership)
        before = snapshot(membership, AVAILABILITY_FIELDS)
        membership.is_away = is_away
        membership.capacity = capacity
        after = snapshot(membership, AVAILABILITY_FIELDS)
        if before != after:
            membership.save(update_fields=list(AVAILABILITY_FIELDS))
            record_change(
                membership.organization,
                actor,
                "updated",
                membership,
                object_type=MEMBER_TYPE,
                object_repr=member_label(membership),
                before=before,
                after=after,
            )
    return membership


# --- teams ------------------------------------------------------------------------------------


def _member_names(team: Team) -> list[str]:
    return sorted(
        member_label(membership) for membership in team.members.select_related("user").all()
    )


def _name_taken(organization: Organization, name: str, *, exclude: Team | None = None) -> bool:
    teams = Team.objects.filter(organization=organization, name__iexact=name)
    if exclude is not None:
        teams = teams.exclude(pk=exclude.pk)
    return teams.exists()


def team_create(*, organization: Organization, actor: Any, name: str) -> Team:
    name = name.strip()
    with transaction.atomic():
        if _name_taken(organization, name):
            raise SettingsError(f"There is a team called {name} already.")
        team = Team.objects.create(organization=organization, name=name)
        record_change(
            organization, actor, "created", team, object_type=TEAM_TYPE, after={"name": name}
        )
    return team


def team_rename(*, team: Team, actor: Any, name: str) -> Team:
    name = name.strip()
    with transaction.atomic():
        if _name_taken(team.organization, name, exclude=team):
            raise SettingsError(f"There is a team called {name} already.")
        before = snapshot(team, ["name"])
        if before["name"] == name:
            return team
        team.name = name
        team.save(update_fields=["name"])
        record_change(
            team.organization,
            actor,
            "updated",
            team,
            object_type=TEAM_TYPE,
            before=before,
            after=snapshot(team, ["name"]),
        )
    return team


def team_delete(*, team: Team, actor: Any) -> None:
    """Delete the team; its tickets stay as they are, with no team (the foreign key's SET_NULL)."""
    with transaction.atomic():
        before = {"name": team.name, "members": _member_names(team)}
        record_change(
            team.organization, actor, "deleted", team, object_type=TEAM_TYPE, before=before
        )
        team.delete()


def team_set_member(*, team: Team, membership: Membership, actor: Any, present: bool) -> Team:
    """Add (``present``) or remove one member; recorded as the member list before and after."""
    if membership.organization_id != team.organization_id:
        raise SettingsError("That person is not a member of this organisation.")
    with transaction.atomic():
        before = _member_names(team)
        if present:
            team.members.add(membership)
        else:
            team.members.remove(membership)
        after = _member_names(team)
        if before != after:
            record_change(
                team.organization,
                actor,
                "updated",
                team,
                object_type=TEAM_TYPE,
                before={"members": before},
                after={"members": after},
            )
    return team


# --- the organisation -------------------------------------------------------------------------


def organization_update(
    *, organization: Organization, actor: Any, name: str, time_zone: str
) -> Organization:
    with transaction.atomic():
        before = snapshot(organization, ORGANIZATION_FIELDS)
        organization.name = name.strip()
        organization.time_zone = time_zone
        organization.full_clean(exclude=["slug"])
        after = snapshot(organization, ORGANIZATION_FIELDS)
        if after == before:
            return organization
        organization.save(update_fields=list(ORGANIZATION_FIELDS))
        record_change(
            organization,
            actor,
            "updated",
            organization,
            object_type=ORGANIZATION_TYPE,
            before=before,
            after=after,
        )
    return organization
