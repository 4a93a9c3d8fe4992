"""``ticket_fact_first_response_idx`` gains ``closed_reason`` in its ``INCLUDE`` (the
responsiveness badge's p90 bucket read index-only, ``monitoring.reports.responsiveness``).

Rebuilt without blocking the roll-ups: on PostgreSQL the new index is built ``CONCURRENTLY``
under a temporary name, the old one dropped ``CONCURRENTLY`` and the new one renamed (a plain
``DROP``/``CREATE`` held a lock on ``monitoring_ticketfact`` that stopped every roll-up
refresh, and with it the event handlers, for the 19.5 s the build takes at 1,000,000
tickets). Non-atomic, so each step commits on its own; a re-run after a failure picks up
where it stopped (a half-built index dropped first, ``IF EXISTS``). SQLite: the plain remove and add.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

NAME = "ticket_fact_first_response_idx"
FIELDS = ["organization", "opened_day", "first_response_seconds"]
CONDITION = models.Q(first_response_seconds__isnull=False)
BEFORE = ("id", "brand", "social_account", "team", "agent")
AFTER = (*BEFORE, "closed_reason")


def _index(name: str, include: tuple[str, ...]) -> models.Index:
    return models.Index(fields=FIELDS, include=include, condition=CONDITION, name=name)


def _swap(apps: Any, schema_editor: Any, include: tuple[str, ...], was: tuple[str, ...]) -> None:
    model = apps.get_model("monitoring", "TicketFact")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(model, _index(NAME, was))
        schema_editor.add_index(model, _index(NAME, include))
        return
    building = f"{NAME}_new"
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {building}")  # a failed build
    schema_editor.execute(_index(building, include).create_sql(model, schema_editor, concurrently=True))
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
    schema_editor.execute(f"ALTER INDEX {building} RENAME TO {NAME}")


def forward(apps: Any, schema_editor: Any) -> None:
    _swap(apps, schema_editor, AFTER, BEFORE)


def backward(apps: Any, schema_editor: Any) -> None:
    _swap(apps, schema_editor, BEFORE, AFTER)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("monitoring", "0013_running_due_counts")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="ticketfact", name=NAME),
                migrations.AddIndex(model_name="ticketfact", index=_index(NAME, AFTER)),
            ],
            database_operations=[migrations.RunPython(forward, backward)],
        )
    ]
