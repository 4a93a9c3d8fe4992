"""Django admin for organisation admins: they see and change only their own organisation's rows.

Superusers (the operators of CareInbox) see every organisation and choose it on the form.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest

from careinbox.accounts.models import Role


def is_org_admin(request: HttpRequest) -> bool:
    membership = getattr(request, "membership", None)
    return bool(membership and membership.has_role(Role.ADMIN))


class OrgScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Rows of the signed-in admin's organisation only; new rows are put in it.

    ``organization_from`` names a related field whose organisation a row takes (a social
    account belongs to its brand's organisation), so the two can never disagree.
    """

    organization_from: str | None = None

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(organization=getattr(request, "organization", None))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and request.user.is_superuser and self.organization_from is None:
            # A row's organisation is fixed once made: its related rows would stay behind.
            return ("organization", *fields)
        return fields

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.is_superuser and self.organization_from is None:
            return ()
        return ("organization",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or is_org_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        base = super().get_form(request, obj, change=change, **kwargs)
        own_organization = getattr(request, "organization", None)
        organization_from = self.organization_from

        class ScopedForm(base):  # type: ignore[valid-type,misc]
            def _post_clean(self) -> None:
                super()._post_clean()
                instance = self.instance
                if organization_from:
                    related = getattr(instance, f"{organization_from}_id", None)
                    if related:
                        target = getattr(instance, organization_from).organization
                        if instance.pk and instance.organization_id != target.pk:
                            # Its tickets and history would stay behind in the old tenant.
                            self.add_error(
                                organization_from,
                                "This would move it to another organisation, which is not "
                                "supported; create a new one there instead.",
                            )
                            return
                        instance.organization = target
                elif not instance.organization_id and own_organization is not None:
                    instance.organization = own_organization
                # Unique constraints that include the organisation are skipped by the form
                # (the field is not on it); check them here so a duplicate is a form error.
                if instance.organization_id and not self.errors:
                    try:
                        instance.validate_constraints()
                    except ValidationError as exc:
                        self._update_errors(exc)

        return ScopedForm

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        related = db_field.related_model
        if not request.user.is_superuser and any(
            f.name == "organization" for f in related._meta.get_fields()
        ):
            kwargs["queryset"] = related._default_manager.filter(
                organization=getattr(request, "organization", None)
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
