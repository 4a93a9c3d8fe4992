"""The monitoring part of the REST API: SLA policies (read by managers), timers per ticket, and
the dashboard's figures."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from careinbox.accounts.models import Role
from careinbox.api.auth import HasRole
from careinbox.api.common import IntegerFilter, OrgScopedMixin, Pagination, StrictFilterSet
from monitoring.dashboard import today_summary
from monitoring.models import SlaPolicy, SlaTimer


class SlaPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = SlaPolicy
        fields = [
            "id",
            "position",
            "name",
            "brand",
            "platform",
            "priority",
            "first_response_minutes",
            "next_response_minutes",
            "take_offline_minutes",
            "resolution_minutes",
            "close_out_minutes",
            "warning_percent",
            "time_zone",
            "calendar",
            "apply_to_running",
            "updated_at",
        ]
        read_only_fields = fields


class SlaPolicyViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    """The organisation's SLA policies in match order (the first that matches a ticket wins)."""

    queryset = SlaPolicy.objects.order_by("position", "pk")
    serializer_class = SlaPolicySerializer
    permission_classes = [HasRole]
    required_role = Role.MANAGER
    pagination_class = Pagination


class SlaTimerSerializer(serializers.ModelSerializer):
    class Meta:
        model = SlaTimer
        fields = [
            "id",
            "ticket",
            "metric",
            "target_minutes",
            "state",
            "started_at",
            "due_at",
            "warn_at",
            "warned_at",
            "paused_at",
            "fulfilled_at",
            "breached_at",
            "business_time",
        ]
        read_only_fields = fields


class SlaTimerViewSet(OrgScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """SLA timers, filterable by ticket and state."""

    queryset = SlaTimer.objects.order_by("due_at", "pk")
    serializer_class = SlaTimerSerializer
    permission_classes = [HasRole]
    pagination_class = Pagination
    filterset_class: type[StrictFilterSet] | None = None  # SlaTimerFilter, set below


class SlaTimerFilter(StrictFilterSet):
    ticket = IntegerFilter(field_name="ticket_id")

    class Meta:
        model = SlaTimer
        fields = ["ticket", "state", "metric"]


SlaTimerViewSet.filterset_class = SlaTimerFilter


@extend_schema(
    responses=inline_serializer(
        "TodayMetrics",
        {
            "day_start": serializers.DateTimeField(),
            "open_tickets": serializers.IntegerField(),
            "open_by_priority": serializers.DictField(child=serializers.IntegerField()),
            "unanswered": serializers.IntegerField(),
            "overdue_now": serializers.IntegerField(),
            "met": serializers.IntegerField(),
            "breached": serializers.IntegerField(),
            "compliance_percent": serializers.FloatField(allow_null=True),
            "median_first_response_seconds": serializers.FloatField(allow_null=True),
            "first_responses": serializers.IntegerField(),
        },
    ),
    summary="Today's figures of the manager dashboard (definitions on the dashboard page)",
)
@api_view(["GET"])
@permission_classes([HasRole])
def metrics_today(request: Request) -> Response:
    if not request.membership.has_role(Role.MANAGER):  # type: ignore[attr-defined]
        from rest_framework.exceptions import PermissionDenied

        raise PermissionDenied("Metrics are for managers and admins.")
    summary = asdict(today_summary(request.organization))  # type: ignore[attr-defined]
    median = summary.pop("median_first_response")
    summary["median_first_response_seconds"] = median.total_seconds() if median else None
    return Response(summary)
