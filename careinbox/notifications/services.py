"""``notify``: the one way any app tells people something in the app (and by e-mail if asked)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from careinbox.accounts.models import Membership, Organization, Role, User
from careinbox.notifications.mail import mail_body, mail_subject
from careinbox.notifications.models import Notification

logger = logging.getLogger(__name__)


def members_with_role(organization: Organization, role: str) -> list[User]:
    """Active members of ``organization`` with at least ``role``."""
    members = Membership.objects.filter(organization=organization, is_active=True).select_related(
        "user"
    )
    return [member.user for member in members if member.has_role(role) and member.user.is_active]


def notify(
    organization: Organization,
    recipients: Iterable[User],
    title: str,
    *,
    body: str = "",
    url: str = "",
    kind: str = "",
    dedupe_key: str = "",
    email: bool = False,
) -> list[Notification]:
    """One in-app notification per recipient (once per ``dedupe_key``); e-mail if asked
    (plain text, made safe by ``notifications.mail``: the title may hold customer words).

    Returns the notifications created now (not those that already existed)."""
    created: list[Notification] = []
    for user in {user.pk: user for user in recipients}.values():
        try:
            with transaction.atomic():
                created.append(
                    Notification.objects.create(
                        organization=organization,
                        recipient=user,
                        kind=kind,
                        title=title[:200],
                        body=body,
                        url=url,
                        dedupe_key=dedupe_key,
                    )
                )
        except IntegrityError:
            continue  # this recipient already has it
        if email and user.email:
            try:
                # Plain text only; customer words in the title cannot break the header.
                send_mail(mail_subject(title), mail_body(f"{body}\n\n{url}"), None, [user.email])
            except Exception:  # the mail server is not the app: log, keep the in-app copy
                logger.exception("could not e-mail %s about %r", user.pk, title)
    return created


def notify_admins(organization: Organization, title: str, **kwargs: object) -> list[Notification]:
    return notify(organization, members_with_role(organization, Role.ADMIN), title, **kwargs)  # type: ignore[arg-type]


def unread_count(user: User) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


__all__ = ["members_with_role", "notify", "notify_admins", "unread_count"]
