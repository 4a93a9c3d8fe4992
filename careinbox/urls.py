from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("settings/escalation/", include("monitoring.escalation.urls")),
    path("settings/", include("careinbox.accounts.urls")),
    path("notifications/", include("careinbox.notifications.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("", include("channels_social.urls")),
    path("", include("tickets.urls")),
]
