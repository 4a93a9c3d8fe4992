"""Approval: replies that a manager must see before they go out, and the manager's decision.

``approval_reasons`` says whether a reply is held (``ticket_take_step`` asks it before it
queues anything); ``approval_decide`` approves (as written or edited: the reply then goes
through ``ticket_take_step`` and the outbox like any other, once) or rejects with a comment
(the agent gets their text back, with the comment, and a notification).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Membership, Role
from careinbox.notifications.services import members_with_role, notify
from tickets.models import (
    DEFAULT_LEGAL_KEYWORDS,
    ApprovalRequest,
    ApprovalRules,
    ApprovalState,
    Direction,
    EventKind,
    Message,
    PriorityRules,
    StepError,
    Ticket,
)

if TYPE_CHECKING:
    from careinbox.accounts.models import User


class Decision:
    APPROVE = "approve"
    REJECT = "reject"
    CHOICES = (APPROVE, REJECT)


@lru_cache(maxsize=128)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    words = [re.escape(k.strip()) for k in keywords if k.strip()]
    if not words:
        return None
    return re.compile(
        r"(?<!\w)(" + "|".join(sorted(words, key=len, reverse=True)) + r")(?!\w)", re.I
    )


def is_manager(user: User | None, organization_id: int) -> bool:
    if user is None:
        return False
    membership = Membership.objects.filter(
        user=user, organization_id=organization_id, is_active=True
    ).first()
    return membership is not None and membership.has_role(Role.MANAGER)


def approval_reasons(ticket: Ticket, text: str) -> list[str]:
    """Why a reply on this ticket must wait for a manager (empty: it goes straight out)."""
    reasons: list[str] = []
    if ticket.approval_required:
        reasons.append(ticket.approval_reason or "Replies on this ticket need approval.")
    rules = ApprovalRules.objects.filter(organization_id=ticket.organization_id).first()
    keywords = tuple(rules.legal_keywords) if rules is not None else tuple(DEFAULT_LEGAL_KEYWORDS)
    pattern = _keyword_pattern(keywords)
    if pattern is not None:
        hit = pattern.search(text)
        if hit:
            reasons.append(f'The reply mentions "{hit.group(0).lower()}" (a legal keyword).')
        else:
            customer_texts = ticket.messages.filter(direction=Direction.INBOUND).values_list(
                "text", flat=True
            )
            for customer_text in customer_texts:
                hit = pattern.search(customer_text)
                if hit:
                    reasons.append(
                        f'The customer mentions "{hit.group(0).lower()}" (a legal keyword).'
                    )
                    break
    if rules is None or rules.vip_authors:
        vips = PriorityRules.objects.filter(organization_id=ticket.organization_id).values_list(
            "vip_handles", flat=True
        )
        handles = {h.lower() for row in vips for h in row}
        if ticket.customer_username.lower() in handles:
            reasons.append(f"@{ticket.customer_username} is on the VIP list.")
    if rules is not None:
        if rules.min_followers and ticket.customer_followers >= rules.min_followers:
            reasons.append(
                f"@{ticket.customer_username} has {ticket.customer_followers:,} followers "
                f"(approval from {rules.min_followers:,})."
            )
        if rules.brands.filter(pk=ticket.brand_id).exists():
            reasons.append(f"Replies for the brand {ticket.brand} need approval.")
    return reasons


def approval_hold(
    *, ticket: Ticket, step: str, by: User, text: str, reasons: list[str], flags: list[dict]
) -> ApprovalRequest:
    """Hold a reply for a manager (inside ``ticket_take_step``'s transaction), and tell them."""
    if ApprovalRequest.objects.pending().filter(ticket=ticket).exists():
        raise StepError(
            "A reply on this ticket is already waiting for a manager's approval; it goes out "
            "once approved, or comes back to you."
        )
    request = ApprovalRequest.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        step=step,
        text=text,
        reasons=reasons,
        guard_flags=flags,
        requested_by=by,
    )
    ticket.record(
        EventKind.REPLY_HELD, actor=by, approval_id=request.pk, step=step, reasons=reasons
    )
    organization = ticket.organization
    managers = [m for m in members_with_role(organization, Role.MANAGER) if m.pk != by.pk]
    transaction.on_commit(
        lambda: notify(
            organization,
            managers,
            f"A reply to @{ticket.customer_username} is waiting for your approval",
            body="; ".join(reasons),
            url=reverse("tickets:approvals"),
            kind="approval",
            dedupe_key=f"approval:{request.pk}",
        )
    )
    return request


def approval_decide(
    *,
    approval: ApprovalRequest,
    by: User,
    decision: str,
    text: str | None = None,
    comment: str = "",
) -> ApprovalRequest:
    """A manager approves (``text`` edits the reply first) or rejects (a comment required).

    Approving sends the reply through ``ticket_take_step`` and the outbox, exactly once: the
    request is locked and must still be pending. If the step cannot be taken now (the
    platform's window closed, the ticket moved on), StepError is raised and it stays pending.
    """
    from tickets.services.steps import ticket_take_step

    if decision not in Decision.CHOICES:
        raise StepError("Approve or reject the reply.")
    comment = comment.strip()
    if decision == Decision.REJECT and not comment:
        raise StepError("Say why it is rejected: the agent sees your comment with their reply.")
    if not is_manager(by, approval.organization_id):
        raise StepError("Only a manager can approve or reject replies.")
    with transaction.atomic():
        locked = (
            ApprovalRequest.objects.select_for_update(of=("self",))
            .select_related("ticket", "requested_by")
            .get(pk=approval.pk)
        )
        if locked.state != ApprovalState.PENDING:
            raise StepError(
                f"This reply was already {locked.get_state_display().lower()} by "
                f"{locked.decided_by or 'someone'}."
            )
        ticket = locked.ticket
        now = timezone.now()
        if decision == Decision.REJECT:
            locked.state = ApprovalState.REJECTED
            locked.decided_by, locked.decided_at, locked.comment = by, now, comment
            locked.save(update_fields=["state", "decided_by", "decided_at", "comment"])
            ticket.record(
                EventKind.REPLY_REJECTED, actor=by, approval_id=locked.pk, comment=comment
            )
            _tell_agent(locked, f"{by} sent your reply back: {comment}")
            return locked
        final = (text if text is not None else locked.text).strip()
        edited = final != locked.text.strip()
        # The step is taken now, under the approver's authority (a guard override included);
        # the reply stays the agent's (``sent_by``) unless the manager wrote it anew.
        author = locked.requested_by or by
        sent = ticket_take_step(
            ticket=ticket,
            step=locked.step,
            by=author,
            text=final,
            approval=locked,
            approver=by,
            override_guard=True,  # approving is the manager overriding what may be overridden
        )
        assert isinstance(sent, Message)  # an approved reply is never held again
        locked.state = ApprovalState.APPROVED
        locked.decided_by, locked.decided_at, locked.comment = by, now, comment
        locked.sent_text = final if edited else ""
        locked.message = sent
        locked.save(
            update_fields=["state", "decided_by", "decided_at", "comment", "sent_text", "message"]
        )
        ticket.record(
            EventKind.REPLY_APPROVED,
            actor=by,
            message=sent,
            approval_id=locked.pk,
            edited=edited,
            comment=comment,
            waited_seconds=round((now - locked.requested_at).total_seconds()),
        )
        if edited or comment:
            _tell_agent(locked, f"{by} approved your reply" + (" with edits" if edited else ""))
    return locked


def _tell_agent(approval: ApprovalRequest, title: str) -> None:
    agent = approval.requested_by
    if agent is None:
        return
    ticket = approval.ticket
    transaction.on_commit(
        lambda: notify(
            ticket.organization,
            [agent],
            title,
            body=approval.comment,
            url=reverse("tickets:detail", args=[ticket.pk]),
            kind="approval",
            dedupe_key=f"approval-decided:{approval.pk}",
        )
    )
