"""Periodic SLA work."""

from __future__ import annotations

from celery import shared_task

from monitoring.services import sla_rematch_open_tickets, sla_start_gained_targets, sla_sweep


@shared_task
def sweep_sla() -> dict[str, int]:
    """One set-based pass: warnings and breaches of every running timer, each once."""
    result = sla_sweep()
    return {"warned": result.warned, "breached": result.breached}


@shared_task
def sweep_sla_breaches() -> int:
    """The name beat used before warnings; a message already queued under it still runs."""
    return sla_sweep().breached


@shared_task
def rematch_open_tickets(organization_id: int) -> int:
    """After the organisation's policies were reordered or their matching changed."""
    return sla_rematch_open_tickets(organization_id=organization_id)


@shared_task
def start_gained_targets(policy_id: int, metrics: list[str]) -> int:
    """After a policy gained targets: they start on the open tickets that follow it."""
    return sla_start_gained_targets(policy_id=policy_id, metrics=metrics)
