from __future__ import annotations

from django.urls import path

from monitoring.escalation import views

app_name = "escalation"

urlpatterns = [
    path("", views.rule_list, name="rules"),
    path("new/", views.rule_create, name="create"),
    path("dry-run/", views.dry_run, name="dry-run"),
    path("<int:pk>/", views.rule_edit, name="edit"),
    path("<int:pk>/delete/", views.rule_delete, name="delete"),
]
