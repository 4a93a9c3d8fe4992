from __future__ import annotations

from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Tickets"

    def ready(self) -> None:
        # channels_social reads the platforms; tickets is where what it reads is stored.
        from channels_social.intake import register_post_sink
        from tickets.services.ingest import ingest_posts

        register_post_sink(ingest_posts)

        # A repost widens a ticket's reach and virality: score it again.
        from tickets.events import subscribe
        from tickets.models import EventKind
        from tickets.priority import on_reposted

        subscribe(on_reposted, kinds=[EventKind.REPOSTED])

        from careinbox.accounts.models import Role
        from careinbox.settings_area import SettingsSection, register_section

        register_section(
            SettingsSection(
                "canned", "Canned responses", "tickets:canned-list", 60, min_role=Role.MANAGER
            )
        )
        register_section(
            SettingsSection("priority", "Priority and approval rules", "tickets:priority-rules", 61)
        )
