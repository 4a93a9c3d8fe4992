from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from careinbox.accounts.models import AuditEntry, Membership, Organization, Team, User


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    extra = 0


@admin.register(User)
class CareUserAdmin(UserAdmin):  # type: ignore[type-arg]
    inlines = [MembershipInline]

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_superuser


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    prepopulated_fields = {"slug": ("name",)}

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_superuser


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "organization")

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_superuser


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "organization", "actor", "action", "object_type", "object_repr")
    readonly_fields = [field.name for field in AuditEntry._meta.fields]

    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
