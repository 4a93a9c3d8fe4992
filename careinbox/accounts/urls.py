from __future__ import annotations

from django.urls import path

from careinbox.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.settings_home, name="settings"),
]
