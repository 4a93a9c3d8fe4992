from __future__ import annotations

from django.contrib import admin

from careinbox.admin_scoping import OrgScopedAdmin
from monitoring.models import SlaPolicy


@admin.register(SlaPolicy)
class SlaPolicyAdmin(OrgScopedAdmin):
    list_display = ("organization", "first_response_minutes", "updated_at")
