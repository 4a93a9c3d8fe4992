"""Periodic SLA work."""

from __future__ import annotations

from celery import shared_task

from monitoring.services import sla_sweep_breaches


@shared_task
def sweep_sla_breaches() -> int:
    return sla_sweep_breaches()
