from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models, transaction
from django.http import HttpRequest

from careinbox.admin_scoping import OrgScopedAdmin
from monitoring.models import Metric, SlaPolicy
from monitoring.policy_changes import (
    MATCHING_FIELDS,
    TIMING_FIELDS,
    PolicyError,
    sla_policy_delete,
)
from monitoring.services import sla_policy_changed


@admin.register(SlaPolicy)
class SlaPolicyAdmin(OrgScopedAdmin):
    list_display = (
        "name",
        "position",
        "brand",
        "platform",
        "priority",
        "first_response_minutes",
        "next_response_minutes",
        "resolution_minutes",
        "time_zone",
        "updated_at",
    )
    list_display_links = ("name",)
    list_editable = ("position",)
    ordering = ("organization", "position", "pk")
    fieldsets = (
        (None, {"fields": ("organization", "name", "position")}),
        (
            "Applies to (empty: any)",
            {"fields": ("brand", "platform", "social_account", "priority")},
        ),
        (
            "Targets, in business minutes (empty: none)",
            {
                "fields": (
                    "first_response_minutes",
                    "next_response_minutes",
                    "take_offline_minutes",
                    "resolution_minutes",
                    "close_out_minutes",
                    "warning_percent",
                    "apply_to_running",
                )
            },
        ),
        ("Business hours", {"fields": ("time_zone", "calendar")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        excluded = set(self.get_exclude(request, obj) or ())
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in excluded]})
            for name, options in fieldsets
        ]

    def save_model(self, request: HttpRequest, obj: SlaPolicy, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and set(form.changed_data) & set(TIMING_FIELDS):
            added = [
                metric
                for metric in Metric.values
                if form.initial.get(f"{metric}_minutes") is None
                and obj.target_minutes(metric) is not None
            ]
            changed = sla_policy_changed(policy=obj)
            if added and obj.apply_to_running:
                from monitoring.tasks import start_gained_targets

                transaction.on_commit(lambda: start_gained_targets.delay(obj.pk, added))
            if changed:
                self.message_user(
                    request, f"The due times of {changed} running timers were recomputed."
                )
        if not change or set(form.changed_data) & set(MATCHING_FIELDS):
            _rematch_after_commit(obj.organization_id)

    def delete_model(self, request: HttpRequest, obj: SlaPolicy) -> None:
        # As in the settings area: its running timers move to the next matching policy, and
        # the organisation's last catch-all stays.
        try:
            sla_policy_delete(policy=obj, actor=request.user)  # type: ignore[arg-type]
        except PolicyError as error:
            self.message_user(request, str(error), messages.ERROR)

    def _is_last_policy(self, obj: SlaPolicy) -> bool:
        return (
            not SlaPolicy.objects.filter(organization_id=obj.organization_id)
            .exclude(pk=obj.pk)
            .exists()
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An organisation always keeps one policy: its tickets would otherwise get the
        # default one back, silently.
        if obj is not None and self._is_last_policy(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> None:
        # One by one, as in the settings area: running timers move to the next matching
        # policy, and each organisation keeps its last catch-all.
        for policy in queryset.order_by("organization", "position", "pk"):
            try:
                sla_policy_delete(policy=policy, actor=request.user)  # type: ignore[arg-type]
            except PolicyError as error:
                self.message_user(request, str(error), messages.WARNING)


def _rematch_after_commit(organization_id: int) -> None:
    """Open tickets may match another policy now: they follow it (a task, once committed)."""
    from monitoring.tasks import rematch_open_tickets

    transaction.on_commit(lambda: rematch_open_tickets.delay(organization_id))
