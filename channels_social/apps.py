from __future__ import annotations

from django.apps import AppConfig


class ChannelsSocialConfig(AppConfig):
    name = "channels_social"
    verbose_name = "Social channels"

    def ready(self) -> None:
        from careinbox.settings_area import SettingsSection, register_section

        register_section(
            SettingsSection(
                "channels",
                "Brands and channels",
                "channels_social:settings-channels",
                32,
                description="Connect X handles and Facebook pages, listening queries, and each "
                "channel's health and rate budget.",
            )
        )
