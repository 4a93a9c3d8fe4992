"""The channels' public endpoints: platform webhooks (no session, no CSRF: signed instead)."""

from __future__ import annotations

from django.urls import path

from channels_social.webhooks import facebook_webhook

app_name = "channels_social"
urlpatterns = [
    path("webhooks/facebook/", facebook_webhook, name="facebook_webhook"),
]
