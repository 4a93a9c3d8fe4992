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

        from careinbox.settings_area import SettingsSection, register_section

        register_section(
            SettingsSection("threading", "Threading", "tickets:settings-threading", order=60)
        )
