"""The webhooks part of the REST API (admins): endpoints, their deliveries and attempts.

Endpoints are validated by the same form as the settings page (``WebhookEndpointForm``) and
changed by the same services, so the audit trail and the SSRF guard are the same code."""

from __future__ import annotations

from typing import Any

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from careinbox.accounts.models import Role
from careinbox.api.auth import HasRole
from careinbox.api.common import (
    AdminCrudViewSet,
    Conflict,
    IntegerFilter,
    OrgScopedMixin,
    Pagination,
    StrictBooleanField,
    StrictCharField,
    StrictFilterSet,
    StrictRegexField,
)
from monitoring.webhooks.forms import WebhookEndpointForm
from monitoring.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEventType,
)
from monitoring.webhooks.services import (
    RedeliverError,
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_ping,
    endpoint_rotate_secret,
    endpoint_update,
)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(
        source="masked_secret",
        read_only=True,
        help_text="Masked; the whole secret is returned once, on creation and on rotation.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "name",
            "url",
            "events",
            "enabled",
            "secret",
            "secret_rotated_at",
            "failing_since",
            "failure_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# What the schema can say of an address (the form checks the rest, e.g. where the host
# resolves): http(s), localhost, a host name with a dot or an IPv4 address, a port, a path.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
URL_PATTERN = (
    r"^https?://(localhost|[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,3}\.[a-z]{2,10}"
    rf"|{_OCTET}(\.{_OCTET}){{3}})"
    r"(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]{0,100})?$"
)


class WebhookEndpointWriteSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100)
    url = StrictRegexField(
        URL_PATTERN,
        max_length=500,
        help_text="An http(s) address whose host resolves to public addresses only (in "
        "production; a private one is a 400 with the reason).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEventType.choices), min_length=1
    )
    enabled = StrictBooleanField(default=True)


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    signing_secret = serializers.CharField(read_only=True, help_text="Shown this once.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "signing_secret"]
        read_only_fields = fields


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "started_at",
            "duration_ms",
            "status_code",
            "succeeded",
            "error",
            "response_excerpt",
            "will_retry_at",
        ]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event_id",
            "event_type",
            "state",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "last_status_code",
            "last_error",
            "created_at",
            "body",
            "attempt_log",
        ]
        read_only_fields = fields


def _validated(request: Request, endpoint: WebhookEndpoint | None, partial: bool) -> dict[str, Any]:
    data = WebhookEndpointWriteSerializer(data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    if endpoint is not None:
        values = {
            "name": endpoint.name,
            "url": endpoint.url,
            "events": endpoint.events,
            "enabled": endpoint.enabled,
            **values,
        }
    form = WebhookEndpointForm(
        {**values, "enabled": "on" if values.get("enabled", True) else ""},
        organization=request.organization,  # type: ignore[attr-defined]
        endpoint=endpoint,
    )
    if not form.is_valid():
        if form.has_error("name", code="duplicate"):
            raise Conflict("Another endpoint has this name.")
        raise DjangoValidationError({name: list(errors) for name, errors in form.errors.items()})
    return form.cleaned_data


class WebhookEndpointViewSet(AdminCrudViewSet):
    """Outbound webhook endpoints of your organisation (admins)."""

    queryset = WebhookEndpoint.objects.order_by("name", "pk")
    serializer_class = WebhookEndpointSerializer

    @extend_schema(
        request=WebhookEndpointWriteSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
        summary="Create an endpoint; the signing secret is in this answer only",
    )
    def create(self, request: Request) -> Response:
        values = _validated(request, None, partial=False)
        endpoint, secret = endpoint_create(
            organization=request.organization,  # type: ignore[attr-defined]
            by=request.user,  # type: ignore[arg-type]
            **values,
        )
        endpoint.signing_secret = secret  # type: ignore[attr-defined]
        return Response(
            WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        request=WebhookEndpointWriteSerializer,
        responses=WebhookEndpointSerializer,
        summary="Change an endpoint (send only the fields to change)",
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        values = _validated(request, endpoint, partial=True)
        endpoint = endpoint_update(endpoint=endpoint, by=request.user, changes=values)  # type: ignore[arg-type]
        return Response(WebhookEndpointSerializer(endpoint).data)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        endpoint_delete(endpoint=instance, by=self.request.user)  # type: ignore[arg-type]

    @extend_schema(
        request=None,
        responses=WebhookEndpointCreatedSerializer,
        summary="Make a new signing secret (returned this once); the old one stops at once",
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret", filter_backends=[])
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        secret = endpoint_rotate_secret(endpoint=endpoint, by=request.user)  # type: ignore[arg-type]
        endpoint.refresh_from_db()
        endpoint.signing_secret = secret  # type: ignore[attr-defined]
        return Response(WebhookEndpointCreatedSerializer(endpoint).data)

    @extend_schema(
        request=None,
        responses={202: WebhookDeliverySerializer},
        summary="Queue a signed test ping to the endpoint",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def ping(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        delivery = endpoint_ping(endpoint=endpoint, by=request.user)  # type: ignore[arg-type]
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryFilter(StrictFilterSet):
    endpoint = IntegerFilter(field_name="endpoint_id")
    state = django_filters.ChoiceFilter(choices=DeliveryState.choices)
    event_type = django_filters.CharFilter()
    event_id = django_filters.CharFilter()

    class Meta:
        model = WebhookDelivery
        fields = ["endpoint", "state", "event_type", "event_id"]


class WebhookDeliveryViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    """The delivery log (admins): each event sent to an endpoint, with every attempt."""

    queryset = (
        WebhookDelivery.objects.select_related("endpoint")
        .prefetch_related("attempt_log")
        .order_by("-created_at", "-pk")
    )
    serializer_class = WebhookDeliverySerializer
    permission_classes = [HasRole]
    required_role = Role.ADMIN
    pagination_class = Pagination
    filterset_class = WebhookDeliveryFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]

    @extend_schema(
        request=None,
        responses={202: WebhookDeliverySerializer},
        summary="Send a finished delivery again, with the same event id and body "
        "(a 409 while it is still on its way)",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def redeliver(self, request: Request, pk: str | None = None) -> Response:
        delivery = self.get_object()
        try:
            delivery = delivery_redeliver(delivery=delivery, by=request.user)  # type: ignore[arg-type]
        except RedeliverError as error:
            return Response(
                {"detail": str(error), "code": "delivery_in_flight"},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
