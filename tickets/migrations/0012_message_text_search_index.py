"""Full-text search over messages (the inbox's search box): a GIN index on PostgreSQL.

The index lives outside the model state, because SQLite (the no-setup default) has no GIN
indexes; there the inbox searches with a plain ``icontains`` fallback (``tickets.inbox``). The
expression is the one ``tickets.inbox.message_search_vector`` queries with, so PostgreSQL uses it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import migrations

INDEX_NAME = "message_text_fts_idx"


def _index() -> GinIndex:
    return GinIndex(SearchVector("text", config="simple"), name=INDEX_NAME)


def create_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("tickets", "Message"), _index())


def drop_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("tickets", "Message"), _index())


class Migration(migrations.Migration):
    dependencies = [("tickets", "0011_inbox_saved_views_and_close_as")]

    operations = [migrations.RunPython(create_index, drop_index)]
