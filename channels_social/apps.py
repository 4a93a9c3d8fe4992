from __future__ import annotations

from django.apps import AppConfig


class ChannelsSocialConfig(AppConfig):
    name = "channels_social"
    verbose_name = "Social channels"
