from __future__ import annotations

from django.urls import path

from monitoring import settings_views, views

app_name = "monitoring"

urlpatterns = [
    path("home/", views.landing, name="landing"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/export.csv", views.report_csv, name="report-csv"),
    path("dashboard/tickets/", views.report_tickets, name="report-tickets"),
    path("health/", views.health, name="health"),
    path("settings/policies/", settings_views.policies, name="settings-policies"),
    path("settings/policies/new/", settings_views.policy_create, name="settings-policy-create"),
    path("settings/policies/<int:pk>/", settings_views.policy_edit, name="settings-policy-edit"),
    path(
        "settings/policies/<int:pk>/move/<str:direction>/",
        settings_views.policy_move,
        name="settings-policy-move",
    ),
    path(
        "settings/policies/<int:pk>/delete/",
        settings_views.policy_delete,
        name="settings-policy-delete",
    ),
]
