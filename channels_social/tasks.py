"""Beat asks every few seconds which accounts are due and sends one poll task for each."""

from __future__ import annotations

from celery import shared_task

from channels_social.services import account_poll, accounts_to_poll, requeue_after


@shared_task
def poll_due_accounts() -> int:
    ids = accounts_to_poll()
    expires = requeue_after().total_seconds()
    for account_id in ids:
        # An expired task frees its account at the same moment the dispatcher would queue it
        # again, most overdue first, so nothing is dropped for good.
        poll_account.apply_async((account_id,), expires=expires)
    return len(ids)


@shared_task
def poll_account(account_id: int) -> str:
    return account_poll(account_id=account_id)
