"""What every endpoint shares: pagination, scoping to the caller's organisation, error bodies."""

from __future__ import annotations

import datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, mixins, pagination, serializers, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from careinbox.accounts.models import Role
from careinbox.api.auth import HasRole


class Pagination(pagination.PageNumberPagination):
    """``?page=`` from 1 and ``?page_size=`` from 1 to 200; anything else is a clear 400 (DRF
    would quietly use the default size)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError(
                {"page_size": [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return size

    def get_page_number(self, request: Any, paginator: Any) -> int:
        # DRF reads an empty ``?page=`` as page 1; the schema says a whole number from 1.
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise exceptions.ValidationError({"page": ["A whole number from 1."]})
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false`` and nothing else: DRF's field also takes ``0``, ``"yes"``
    and ``"on"``, which the schema (a boolean) does not allow (found by schemathesis)."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError  # fail() raises


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: DRF's field turns ``0`` into ``"0"``, which the schema
    (a string) does not allow (found by schemathesis)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictEmailField(serializers.EmailField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class Conflict(exceptions.APIException):
    """409: the request is well formed but clashes with what exists (a name already taken)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with an existing object."
    default_code = "conflict"


class OrgScopedMixin:
    """``queryset`` narrowed to the caller's organisation: other tenants' rows do not exist."""

    request: Any
    queryset: Any

    def get_queryset(self) -> Any:
        organization = getattr(self.request, "organization", None)
        if organization is None:
            return self.queryset.none()
        return self.queryset.filter(organization=organization)


class AdminCrudViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """What an organisation's admins edit through the API (escalation rules, outbound
    webhook endpoints): scoped to the caller's organisation, admins only, paged, JSON bodies,
    list / retrieve / destroy from DRF. A subclass gives ``queryset`` and ``serializer_class``,
    writes its own ``create`` and ``partial_update`` (bound to the settings page's form, so
    the page and the API accept the same things) and its ``perform_destroy`` (audited). No
    PUT: a change sends only the fields it changes."""

    permission_classes = [HasRole]
    required_role = Role.ADMIN
    pagination_class = Pagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    parser_classes = [JSONParser]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's error bodies, and the same shape for Django's ValidationError and 404.

    Every error answers ``{"detail": "...", "code": "..."}`` (plus field errors for a 400)."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException) and isinstance(response.data, dict):
        codes = exc.get_codes()
        if "detail" in response.data and isinstance(codes, str):
            response.data["code"] = codes
        elif response.status_code == status.HTTP_400_BAD_REQUEST and "detail" not in response.data:
            response.data = {
                "detail": "The request has invalid fields.",
                "code": "invalid",
                "fields": response.data,
            }
    return response


# The widest integer a database column here holds (PostgreSQL bigint, SQLite INTEGER).
INT64 = 2**63 - 1


@extend_schema_field(OpenApiTypes.INT)
class IntegerFilter(django_filters.NumberFilter):
    """A whole number (``?ticket=12``, ``?min_followers=1000``); an id that is not yours
    matches nothing, and neither does one no column can hold (found by schemathesis: SQLite
    raised OverflowError on ``?team=8333909249405213575607968787781910528``)."""

    field_class = forms.IntegerField

    def filter(self, qs: Any, value: Any) -> Any:
        if value is not None and abs(value) > INT64:
            if self.lookup_expr == "gte" and value < 0:
                return qs  # every stored value is at least this
            return qs.none()
        return super().filter(qs, value)


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 instant, compared in UTC: PostgreSQL refuses UTC offsets beyond ±15:59 that
    ISO allows (``+18:26``), and an instant at the edge of the calendar has no UTC time at all;
    both are a clear 400 rather than a database error."""

    def filter(self, qs: Any, value: Any) -> Any:
        if value is not None:
            try:
                value = value.astimezone(datetime.UTC)
            except (OverflowError, ValueError):
                raise DjangoValidationError(
                    {self.field_name: ["That instant is outside the calendar we keep."]}
                ) from None
        return super().filter(qs, value)


BOOLEAN_WORDS = {"true", "false", "True", "False", "1", "0"}


class StrictFilterSet(django_filters.FilterSet):
    """django-filter ignores a parameter sent empty (``?opened_before=``); for a number, date or
    choice that is a mistake worth saying, so it is a 400 like any other invalid value."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, flt in self.filters.items():
            if isinstance(flt, django_filters.CharFilter) and not isinstance(
                flt, django_filters.ChoiceFilter
            ):
                continue
            values = (
                self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data.get(name)]
            )
            if name in self.data and any(value == "" for value in values):
                self.form.add_error(name, "Leave the parameter out, or give it a value.")
                valid = False
            elif (
                isinstance(flt, django_filters.BooleanFilter)
                and name in self.data
                and any(value not in BOOLEAN_WORDS for value in values)
            ):
                self.form.add_error(name, "Say true or false.")
                valid = False
        return valid
