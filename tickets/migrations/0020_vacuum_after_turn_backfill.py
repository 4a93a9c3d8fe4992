from django.db import migrations, models


def vacuum_tickets(apps, schema_editor):
    """0019's backfill rewrote every ticket row. Until a VACUUM marks the table's pages all
    visible again an index-only scan would visit the heap for every entry, and the planner
    rightly prefers reading all the organisation's tickets (at 1,000,000 tickets the inbox's
    counts took 0.3-0.9 s instead of milliseconds); ANALYZE gives it the new column's
    statistics. PostgreSQL only; VACUUM cannot run in a transaction, hence this migration
    is not atomic."""
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) tickets_ticket")


class Migration(migrations.Migration):

    # VACUUM runs outside a transaction. The index is built after it, in a statement of its
    # own: built in 0019's transaction it would hold every row's old version too (twice the
    # size, and the planner would not use it for the counts).
    atomic = False

    dependencies = [
        ('tickets', '0019_ticket_last_message_direction'),
    ]

    operations = [
        migrations.RunPython(vacuum_tickets, migrations.RunPython.noop, elidable=True),
        migrations.AddIndex(
            model_name='ticket',
            index=models.Index(condition=models.Q(('status__in', ('new', 'acknowledged', 'offline', 'resolved'))), fields=['organization', 'assigned_to', 'sla_risk_at'], include=('id', 'status', 'sla_due_at', 'approval_required', 'last_message_direction'), name='ticket_inbox_assignee_idx'),
        ),
    ]
