"""What a level does when it fires. Every action goes through the ticket's own methods (each
records its event and does nothing the second time), so running a firing's actions again after
a crash changes nothing twice; notifications are kept once per firing and recipient
(``dedupe_key``), and the webhook is a retrying task of its own that never holds up the sweep."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.urls import reverse

from careinbox.accounts.models import Membership, Role, Team, User
from careinbox.notifications.services import notify
from careinbox.notifications.tasks import deliver_webhook
from tickets.models import Priority, Ticket

log = logging.getLogger(__name__)

Actions = dict[str, Any]

ROLE_CHOICES = [(Role.AGENT, "Agents"), (Role.MANAGER, "Managers"), (Role.ADMIN, "Admins")]


def _recipients(ticket: Ticket, actions: Actions) -> list[User]:
    """The active members the level notifies: by role (exactly that role), by name, by team,
    and the ticket's assignee if asked."""
    members = Membership.objects.filter(
        organization_id=ticket.organization_id, is_active=True, user__is_active=True
    ).select_related("user")
    wanted = members.none()
    roles = actions.get("notify_roles") or []
    if roles:
        wanted |= members.filter(role__in=roles)
    if actions.get("notify_users"):
        wanted |= members.filter(user_id__in=actions["notify_users"])
    if actions.get("notify_teams"):
        wanted |= members.filter(teams__in=actions["notify_teams"])
    if actions.get("notify_assignee") and ticket.assigned_to_id:
        wanted |= members.filter(user_id=ticket.assigned_to_id)
    return [member.user for member in wanted.distinct()]


def describe_actions(actions: Actions, *, names: dict[str, dict[int, str]] | None = None) -> str:
    """The level's actions in words ("notify managers; tag “at-risk”; raise to Urgent")."""
    names = names or {}
    parts = []
    who = [label for value, label in ROLE_CHOICES if value in (actions.get("notify_roles") or [])]
    who += [names.get("users", {}).get(pk, f"user {pk}") for pk in actions.get("notify_users", [])]
    who += [
        "team " + names.get("teams", {}).get(pk, str(pk)) for pk in actions.get("notify_teams", [])
    ]
    if actions.get("notify_assignee"):
        who.append("the assignee")
    if who:
        parts.append("notify " + ", ".join(who) + (" (and e-mail)" if actions.get("email") else ""))
    if actions.get("webhook_url"):
        parts.append("post to a chat webhook")
    if actions.get("assign_user") or actions.get("assign_team"):
        target = []
        if actions.get("assign_team"):
            target.append("team " + names.get("teams", {}).get(actions["assign_team"], "?"))
        if actions.get("assign_user"):
            target.append(names.get("users", {}).get(actions["assign_user"], "?"))
        parts.append("assign to " + " / ".join(target))
    if actions.get("raise_priority"):
        parts.append(f"raise priority to {Priority(actions['raise_priority']).label}")
    if actions.get("require_approval"):
        parts.append("replies need approval")
    if actions.get("add_tag"):
        parts.append(f"tag “{actions['add_tag']}”")
    return "; ".join(parts) or "record only"


def run_actions(
    ticket: Ticket, actions: Actions, *, rule_name: str, level: int, firing_id: int
) -> list[str]:
    """Carry out one fired level on ``ticket``; what each action did, in words. The ticket's
    changes come first, so "notify the assignee" reaches the person the level assigned."""
    reason = f"Escalation “{rule_name}”, level {level}"
    done: list[str] = []
    title = f"{reason}: ticket #{ticket.pk} @{ticket.customer_username}"
    url = reverse("tickets:detail", args=[ticket.pk])

    assign_user_id = actions.get("assign_user")
    assign_team_id = actions.get("assign_team")
    if assign_user_id or assign_team_id:
        user = (
            User.objects.filter(
                pk=assign_user_id,
                memberships__organization_id=ticket.organization_id,
                memberships__is_active=True,
            ).first()
            if assign_user_id
            else None
        )
        team = (
            Team.objects.filter(pk=assign_team_id, organization_id=ticket.organization_id).first()
            if assign_team_id
            else None
        )
        if (assign_user_id and user is None) or (assign_team_id and team is None):
            done.append("assignee no longer in the organisation: not assigned")
        else:
            changed = ticket.assign(
                user if user is not None else ticket.assigned_to,
                team=team if team is not None else ...,
                by=None,
                reason=reason,
            )
            done.append("assigned" if changed else "already assigned")

    raise_to = actions.get("raise_priority")
    if raise_to and ticket.priority > int(raise_to):  # 1 is Urgent: raising lowers the number
        ticket.change_priority(int(raise_to), by=None, reason=reason)
        done.append(f"priority raised to {Priority(raise_to).label}")

    if actions.get("require_approval") and ticket.require_approval(reason, by=None):
        done.append("replies need approval")

    if actions.get("add_tag") and ticket.add_tag(actions["add_tag"], by=None):
        done.append(f"tagged {actions['add_tag']}")
    recipients = _recipients(ticket, actions)
    if recipients:
        created = notify(
            ticket.organization,
            recipients,
            title,
            body=f"Priority {Priority(ticket.priority).label}, {ticket.get_status_display()}.",
            url=url,
            kind="escalation",
            dedupe_key=f"escalation:{firing_id}",
            email=bool(actions.get("email")),
        )
        done.append(f"notified {len(created)} of {len(recipients)}")

    webhook_url = actions.get("webhook_url") or ""
    if webhook_url:
        text = f"{title}\n{url}"
        transaction.on_commit(
            lambda: deliver_webhook.apply_async(args=(webhook_url, text)), robust=True
        )
        done.append("chat webhook queued")
    return done


def user_names(organization_id: int) -> dict[int, str]:
    return {
        member.user_id: member.user.get_full_name() or member.user.username
        for member in Membership.objects.filter(organization_id=organization_id).select_related(
            "user"
        )
    }
