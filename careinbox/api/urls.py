"""The in-app pages of the API (tokens); the endpoints themselves are routed in careinbox.urls."""

from __future__ import annotations

from django.urls import path

from careinbox.api import views

app_name = "api"

urlpatterns = [
    path("", views.tokens_page, name="tokens"),
    path("<int:pk>/revoke/", views.revoke_token, name="revoke"),
]
