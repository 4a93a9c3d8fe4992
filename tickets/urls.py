from __future__ import annotations

from django.urls import path

from tickets import views

app_name = "tickets"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("inbox/bulk/", views.inbox_bulk, name="bulk"),
    path("inbox/views/", views.saved_view_create, name="saved_view_create"),
    path("inbox/views/<int:pk>/delete/", views.saved_view_delete, name="saved_view_delete"),
    path("tickets/<int:pk>/", views.ticket_detail, name="detail"),
    path("tickets/<int:pk>/assign-to-me/", views.assign_to_me, name="assign_me"),
    path("tickets/<int:pk>/steps/<slug:step>/", views.ticket_step, name="step"),
    path(
        "tickets/<int:pk>/messages/<int:message_id>/settle/",
        views.settle_uncertain,
        name="settle",
    ),
]
