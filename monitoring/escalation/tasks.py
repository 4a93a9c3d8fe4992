"""Escalation's thin Celery tasks: ids in, the engine does the work, each idempotent."""

from __future__ import annotations

from celery import shared_task

from monitoring.escalation.engine import (
    escalation_run_actions,
    escalation_run_pending,
    escalation_sweep,
)


@shared_task
def sweep_escalations() -> dict[str, int]:
    """Beat's pass over every enabled rule; also picks up firings whose actions were lost."""
    result = escalation_sweep()
    pending = escalation_run_pending()
    return {
        "matched": result.matched,
        "cleared": result.cleared,
        "fired": len(result.fired),
        "pending_run": pending,
    }


@shared_task(acks_late=True)
def run_escalation_actions(firing_ids: list[int]) -> int:
    return escalation_run_actions(firing_ids=firing_ids)
