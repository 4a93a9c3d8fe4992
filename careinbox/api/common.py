"""What every endpoint shares: pagination, scoping to the caller's organisation, error bodies."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, pagination, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class OrgScopedMixin:
    """``queryset`` narrowed to the caller's organisation: other tenants' rows do not exist."""

    request: Any
    queryset: Any

    def get_queryset(self) -> Any:
        organization = getattr(self.request, "organization", None)
        if organization is None:
            return self.queryset.none()
        return self.queryset.filter(organization=organization)


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
