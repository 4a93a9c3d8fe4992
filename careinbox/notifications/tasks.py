"""Notification deliveries that leave the app, each a thin retrying task."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval

from careinbox.notifications.webhooks import WebhookError, describe_url, post_webhook

log = logging.getLogger(__name__)

MAX_RETRIES = 6


@shared_task(bind=True, max_retries=MAX_RETRIES, acks_late=True)
def deliver_webhook(self: Task, url: str, text: str) -> bool:
    """POST one Slack-compatible message; a failure that may pass is retried with exponential
    backoff and jitter (2 s, 4 s, … up to 10 min), a permanent one logged and dropped.
    Returns whether it was delivered."""
    try:
        post_webhook(url, text)
    except WebhookError as error:
        if error.permanent or self.request.retries >= MAX_RETRIES:
            log.error("webhook to %s not delivered: %s", describe_url(url), error)
            return False
        log.warning(
            "webhook to %s failed (attempt %s), retrying: %s",
            describe_url(url),
            self.request.retries + 1,
            error,
        )
        countdown = get_exponential_backoff_interval(
            factor=2, retries=self.request.retries, maximum=600, full_jitter=True
        )
        raise self.retry(countdown=countdown, exc=error) from error
    return True
