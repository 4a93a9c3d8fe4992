from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "SLA and monitoring"

    def ready(self) -> None:
        from monitoring import handlers
        from monitoring.escalation import handlers as escalation_handlers

        handlers.register()
        escalation_handlers.register()
