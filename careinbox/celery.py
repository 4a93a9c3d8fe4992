"""The Celery app. Configuration comes from Django settings (``CELERY_*``); the beat schedule is
declared here, in code, each entry expiring before its next run so a backlog never piles up."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careinbox.settings")

# How often beat asks which accounts are due for a poll.
DISPATCH_TICK_SECONDS = 1

app = Celery("careinbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule(sender: Celery, **_: object) -> None:
    from django.conf import settings

    poll = settings.POLL_INTERVAL_SECONDS
    sweep = settings.SLA_SWEEP_INTERVAL_SECONDS
    sender.conf.beat_schedule = {
        # Asks every second which accounts are due (two statements on the accounts table);
        # each account is polled every ``poll`` seconds, most overdue first
        # (channels_social.services.accounts_to_poll). A tick of 1 s, not 2, halves what a
        # due handle waits for the next look (a second at most, on top of the interval).
        "poll-due-accounts": {
            "task": "channels_social.tasks.poll_due_accounts",
            "schedule": float(min(poll, DISPATCH_TICK_SECONDS)),
            "options": {"expires": min(poll, DISPATCH_TICK_SECONDS) * 0.9},
        },
        # Warnings and breaches of every running SLA timer, set-based (~0.2 s at 100,000
        # open tickets, docs/benchmarks.md); each ticket event also checks its own at once.
        "sla-sweep": {
            "task": "monitoring.tasks.sweep_sla",
            "schedule": float(sweep),
            "options": {"expires": sweep * 0.9},
        },
        # Escalation rules, set-based per rule (docs/benchmarks.md); each ticket event also
        # checks its own ticket at once.
        "escalation-sweep": {
            "task": "monitoring.escalation.tasks.sweep_escalations",
            "schedule": float(sweep),
            "options": {"expires": sweep * 0.9, "queue": settings.CELERY_INTERACTIVE_QUEUE},
        },
        "dispatch-ticket-events": {
            "task": "tickets.tasks.dispatch_ticket_events",
            "schedule": 10.0,
            "options": {"expires": 9},
        },
        # Promise reminders before they are due, and broken promises once due (tickets).
        "sweep-promises": {
            "task": "tickets.tasks.sweep_promises",
            "schedule": 30.0,
            "options": {"expires": 27},
        },
        # Outbound webhook deliveries whose task was lost or whose worker died mid-attempt.
        "requeue-lost-webhook-deliveries": {
            "task": "monitoring.webhooks.tasks.requeue_lost_webhook_deliveries",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
        "outbox-housekeeping": {
            "task": "tickets.tasks.outbox_housekeeping",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
    }
