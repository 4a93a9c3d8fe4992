"""The channels' endpoints: platform webhooks (no session, no CSRF: signed instead), and the
admin's Settings → Brands and channels."""

from __future__ import annotations

from django.urls import path

from channels_social import views
from channels_social.webhooks import facebook_webhook

app_name = "channels_social"
urlpatterns = [
    path("webhooks/facebook/", facebook_webhook, name="facebook_webhook"),
    path("settings/channels/", views.channels_home, name="settings-channels"),
    path("settings/channels/brands/new/", views.brand_edit, name="settings-brand-new"),
    path("settings/channels/brands/<int:pk>/", views.brand_edit, name="settings-brand"),
    path(
        "settings/channels/brands/<int:brand_pk>/connect/<str:platform>/",
        views.channel_new,
        name="settings-channel-new",
    ),
    path(
        "settings/channels/brands/<int:brand_pk>/queries/new/",
        views.query_edit,
        name="settings-query-new",
    ),
    path("settings/channels/queries/<int:pk>/", views.query_edit, name="settings-query"),
    path(
        "settings/channels/queries/<int:pk>/delete/",
        views.query_delete,
        name="settings-query-delete",
    ),
    path("settings/channels/<int:pk>/", views.channel_edit, name="settings-channel"),
    path(
        "settings/channels/<int:pk>/toggle/", views.channel_toggle, name="settings-channel-toggle"
    ),
    path(
        "settings/channels/<int:pk>/recheck/",
        views.channel_recheck_view,
        name="settings-channel-recheck",
    ),
]
