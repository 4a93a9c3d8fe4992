from __future__ import annotations

from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Tickets"

    def ready(self) -> None:
        # channels_social reads the platforms; tickets is where what it reads is stored.
        from channels_social.intake import register_post_sink, register_update_sink
        from tickets.events import register_kinds
        from tickets.services.ingest import PostChangeKind, apply_post_updates, ingest_posts

        register_post_sink(ingest_posts)
        register_update_sink(apply_post_updates)
        register_kinds(PostChangeKind)
