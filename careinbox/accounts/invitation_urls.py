"""The invitation link's page: outside /settings/, for people who cannot sign in yet."""

from __future__ import annotations

from django.urls import path

from careinbox.accounts import views

app_name = "invitations"

urlpatterns = [
    path("<uidb64>/<token>/", views.invitation_accept, name="accept"),
]
