from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "careinbox.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        from careinbox.api import schema  # noqa: F401 (registers the schema extensions)
