from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "SLA and monitoring"

    def ready(self) -> None:
        from careinbox.settings_area import SettingsSection, register_section
        from monitoring import handlers
        from monitoring.escalation import handlers as escalation_handlers
        from monitoring.reports import rekey, rollups

        handlers.register()
        # After the SLA handlers: the roll-ups read the timers they changed.
        rollups.register()
        # A deleted team or user re-keyed to none in the roll-ups (accounts' post_delete).
        rekey.register()
        register_section(
            SettingsSection(
                "sla",
                "SLA policies",
                "monitoring:settings-policies",
                order=40,
                description="Response targets per brand, channel and priority; business hours "
                "and holidays.",
            )
        )
        escalation_handlers.register()
