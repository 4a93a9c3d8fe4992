from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "monitoring.webhooks"
    label = "webhooks"
    verbose_name = "Outbound webhooks"

    def ready(self) -> None:
        from careinbox.settings_area import SettingsSection, register_section
        from monitoring.webhooks import handlers

        handlers.register()
        register_section(
            SettingsSection(
                "webhooks",
                "Outbound webhooks",
                "webhooks:endpoints",
                order=70,
                description="Signed JSON to your own systems when tickets open, move a step, "
                "close, or near and breach an SLA; with a delivery log.",
            )
        )
