from __future__ import annotations

from django.urls import path

from tickets import views

app_name = "tickets"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("tickets/<int:pk>/", views.ticket_detail, name="detail"),
    path("tickets/<int:pk>/steps/<slug:step>/", views.ticket_step, name="step"),
    path(
        "tickets/<int:pk>/messages/<int:message_id>/settle/",
        views.settle_uncertain,
        name="settle",
    ),
]
