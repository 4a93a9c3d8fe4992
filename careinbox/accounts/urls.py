from __future__ import annotations

from django.urls import path

from careinbox.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.settings_home, name="settings"),
    path("members/", views.members, name="members"),
    path("members/invite/", views.member_invite, name="member-invite"),
    path("members/<int:pk>/role/", views.member_role, name="member-role"),
    path("members/<int:pk>/active/", views.member_active, name="member-active"),
    path("members/<int:pk>/availability/", views.member_availability, name="member-availability"),
    path("members/<int:pk>/resend/", views.member_resend, name="member-resend"),
    path("teams/", views.teams, name="teams"),
    path("teams/<int:pk>/", views.team, name="team"),
    path("teams/<int:pk>/delete/", views.team_delete, name="team-delete"),
    path("teams/<int:pk>/members/", views.team_member_add, name="team-member-add"),
    path(
        "teams/<int:pk>/members/<int:member_pk>/remove/",
        views.team_member_remove,
        name="team-member-remove",
    ),
    path("organisation/", views.organization, name="organization"),
    path("audit/", views.audit, name="audit"),
]
