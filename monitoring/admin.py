from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from careinbox.admin_scoping import OrgScopedAdmin
from monitoring.models import SlaPolicy


@admin.register(SlaPolicy)
class SlaPolicyAdmin(OrgScopedAdmin):
    list_display = ("organization", "first_response_minutes", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Every organisation has exactly one, made on first use; admins edit it.
        return request.user.is_superuser
