"""Beat fans out one poll task per enabled account; each task re-fetches and polls once."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from channels_social.models import SocialAccount
from channels_social.services import account_poll


@shared_task
def poll_all_accounts() -> int:
    ids = list(SocialAccount.objects.pollable().values_list("pk", flat=True))
    for account_id in ids:
        poll_account.apply_async((account_id,), expires=settings.POLL_INTERVAL_SECONDS * 0.9)
    return len(ids)


@shared_task
def poll_account(account_id: int) -> str:
    return account_poll(account_id=account_id)
