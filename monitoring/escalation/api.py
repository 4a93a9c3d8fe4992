"""Escalation rules in the REST API (admins), validated by the settings page's own form.

A rule travels as it is stored (``conditions``: ``[{"kind": ..., ...params}]``; ``levels``:
``[{"after_minutes": n, "actions": {...}}]``). The API checks only the shape (known kinds,
known action names, at most ``MAX_LEVELS``), lays the rule out as the form's fields exactly as
the edit page does, and binds ``EscalationRuleForm``: every rule it accepts, the page would
have accepted, with the same messages; each change is audited as on the page."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from careinbox.accounts.models import Organization
from careinbox.api.common import (
    AdminCrudViewSet,
    Conflict,
    StrictBooleanField,
    StrictCharField,
)
from careinbox.audit import record_change
from monitoring.escalation.conditions import condition_kind, condition_kinds, describe_conditions
from monitoring.escalation.forms import ACTION_FIELDS, MAX_LEVELS, EscalationRuleForm
from monitoring.escalation.views import _audit_snapshot
from monitoring.models import EscalationRule


class EscalationRuleSerializer(serializers.ModelSerializer):
    conditions_described = serializers.SerializerMethodField()

    class Meta:
        model = EscalationRule
        fields = [
            "id",
            "name",
            "enabled",
            "position",
            "conditions",
            "conditions_described",
            "levels",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_conditions_described(self, rule: EscalationRule) -> list[str]:
        return describe_conditions(rule.conditions)


class EscalationRuleWriteSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100)
    enabled = StrictBooleanField(default=True)
    position = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    conditions = serializers.ListField(
        child=serializers.DictField(),
        help_text='Each {"kind": <kind>, ...params}, one per kind; every one must hold.',
    )
    levels = serializers.ListField(
        child=serializers.DictField(),
        max_length=MAX_LEVELS,
        help_text='Each {"after_minutes": n, "actions": {...}}, level 1 first.',
    )


def _shape_errors(
    organization: Organization, conditions: list[dict[str, Any]], levels: list[dict[str, Any]]
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    known = sorted(kind.key for kind in condition_kinds())
    seen: set[str] = set()
    for params in conditions:
        key = params.get("kind")
        kind = condition_kind(str(key)) if isinstance(key, str) else None
        if kind is None:
            errors.setdefault("conditions", []).append(
                f"There is no condition kind {key!r}; the kinds are {', '.join(known)}."
            )
            continue
        if kind.key in seen:
            errors.setdefault("conditions", []).append(f"The {kind.key!r} condition is twice.")
        seen.add(kind.key)
        fields = set(kind.form_fields(organization).keys())
        unknown = set(kind.initial(params)) - fields
        if unknown:
            errors.setdefault("conditions", []).append(
                f"The {kind.key!r} condition has no {', '.join(sorted(unknown))} "
                f"(it takes {', '.join(sorted(fields))})."
            )
    for number, level in enumerate(levels, start=1):
        unknown = set(level) - {"after_minutes", "actions"}
        actions = level.get("actions", {})
        if not isinstance(actions, dict):
            errors.setdefault("levels", []).append(f"Level {number}: actions is an object.")
            continue
        unknown |= {f"actions.{name}" for name in set(actions) - set(ACTION_FIELDS)}
        if unknown:
            errors.setdefault("levels", []).append(
                f"Level {number} has no {', '.join(sorted(unknown))}."
            )
    return errors


def _bound_form(request: Request, rule: EscalationRule | None, partial: bool) -> EscalationRuleForm:
    organization: Organization = request.organization  # type: ignore[attr-defined]
    data = EscalationRuleWriteSerializer(data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    if rule is not None:
        values = {
            "name": rule.name,
            "enabled": rule.enabled,
            "position": rule.position,
            "conditions": rule.conditions,
            "levels": rule.levels,
            **values,
        }
    errors = _shape_errors(organization, values["conditions"], values["levels"])
    if errors:
        raise DjangoValidationError(errors)
    # The rule laid out as the edit page's fields, as the page itself does it.
    draft = EscalationRule(
        organization=organization,
        name=values["name"],
        enabled=values["enabled"],
        position=values["position"],
        conditions=values["conditions"],
        levels=values["levels"],
    )
    fields = EscalationRuleForm(organization=organization, rule=draft).initial
    fields = {name: value for name, value in fields.items() if value is not None}
    form = EscalationRuleForm(fields, organization=organization, rule=rule)
    if not form.is_valid():
        if form.has_error("name", code="duplicate"):
            raise Conflict("Another rule has this name.")
        raise DjangoValidationError(
            {name: list(messages) for name, messages in form.errors.items()}
        )
    return form


class EscalationRuleViewSet(AdminCrudViewSet):
    """Escalation rules (admins), in evaluation order."""

    queryset = EscalationRule.objects.order_by("position", "pk")
    serializer_class = EscalationRuleSerializer

    @extend_schema(
        request=EscalationRuleWriteSerializer,
        responses={201: EscalationRuleSerializer},
        summary="Create a rule (validated as the settings page validates it)",
    )
    def create(self, request: Request) -> Response:
        form = _bound_form(request, None, partial=False)
        with transaction.atomic():
            rule = form.save()
            record_change(
                rule.organization,
                request.user,
                "created",
                rule,
                object_type="escalation rule",
                after=_audit_snapshot(rule),
            )
        return Response(EscalationRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=EscalationRuleWriteSerializer,
        responses=EscalationRuleSerializer,
        summary="Change a rule (send only the fields to change)",
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        rule = self.get_object()
        with transaction.atomic():
            rule = EscalationRule.objects.select_for_update().get(pk=rule.pk)
            before = _audit_snapshot(rule)
            form = _bound_form(request, rule, partial=True)
            rule = form.save()
            record_change(
                rule.organization,
                request.user,
                "updated",
                rule,
                object_type="escalation rule",
                before=before,
                after=_audit_snapshot(rule),
            )
        return Response(EscalationRuleSerializer(rule).data)

    def perform_destroy(self, instance: EscalationRule) -> None:
        with transaction.atomic():
            record_change(
                instance.organization,
                self.request.user,
                "deleted",
                instance,
                object_type="escalation rule",
                before=_audit_snapshot(instance),
            )
            instance.delete()
