"""Django admin for organisation admins: they see and change only their own organisation's rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from careinbox.accounts.models import Role


def _is_org_admin(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.has_role(Role.ADMIN))


class OrgScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows of the signed-in admin's organisation only; new rows are put in it."""

    exclude = ("organization",)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(organization=getattr(request, "organization", None))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or _is_org_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and not getattr(obj, "organization_id", None):
            obj.organization = request.organization  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        related = db_field.related_model
        if not request.user.is_superuser and any(
            f.name == "organization" for f in related._meta.get_fields()
        ):
            kwargs["queryset"] = related._default_manager.filter(
                organization=getattr(request, "organization", None)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
