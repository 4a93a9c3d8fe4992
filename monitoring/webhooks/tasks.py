"""Thin tasks: ids in, the service does the work (and re-enqueues its own retries)."""

from __future__ import annotations

from celery import shared_task

from monitoring.webhooks.services import delivery_attempt, requeue_lost_deliveries


@shared_task(acks_late=True, ignore_result=True)
def deliver_webhook_event(delivery_id: int) -> str:
    """One attempt of one delivery (a delivery already sent, or not due yet, is skipped)."""
    return delivery_attempt(delivery_id=delivery_id)


@shared_task(ignore_result=True)
def requeue_lost_webhook_deliveries() -> int:
    return requeue_lost_deliveries()
