"""The base API endpoints (who am I, tokens) and the in-app page where people make tokens."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import authenticate
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from careinbox.accounts.models import Membership
from careinbox.api.auth import HasRole
from careinbox.api.models import ApiToken
from careinbox.tenancy import role_required


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.CharField()
    organization = serializers.CharField()
    organization_id = serializers.IntegerField()
    role = serializers.CharField()


@extend_schema(responses=MeSerializer, summary="The member this request acts as")
@api_view(["GET"])
@permission_classes([HasRole])
def me(request: Request) -> Response:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    return Response(
        MeSerializer(
            {
                "username": membership.user.username,
                "name": str(membership.user),
                "organization": membership.organization.name,
                "organization_id": membership.organization_id,
                "role": membership.role,
            }
        ).data
    )


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=200, style={"input_type": "password"})
    organization_id = serializers.IntegerField(required=False, min_value=1)
    name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="API token"
    )


class TokenThrottle(AnonRateThrottle):
    scope = "token"


@extend_schema(
    request=TokenRequestSerializer,
    responses={
        201: inline_serializer(
            "IssuedToken",
            {
                "token": serializers.CharField(),
                "name": serializers.CharField(),
                "organization_id": serializers.IntegerField(),
                "role": serializers.CharField(),
            },
        )
    },
    summary="Exchange a username and password for a new API token",
    auth=[],
)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([TokenThrottle])
def issue_token(request: Request) -> Response:
    """Signs in like the login form (so django-axes throttles it the same way)."""
    data = TokenRequestSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    user = authenticate(
        request._request,
        username=data.validated_data["username"],
        password=data.validated_data["password"],
    )
    if user is None:
        return Response(
            {"detail": "Wrong username or password.", "code": "authentication_failed"},
            status=status.HTTP_401_UNAUTHORIZED,
        )
    memberships = Membership.objects.filter(user=user, is_active=True).select_related(
        "organization"
    )
    wanted = data.validated_data.get("organization_id")
    if wanted is not None:
        memberships = memberships.filter(organization_id=wanted)
    membership = memberships.order_by("created_at", "pk").first()
    if membership is None:
        return Response(
            {"detail": "You are not a member of that organisation.", "code": "not_a_member"},
            status=status.HTTP_403_FORBIDDEN,
        )
    name = data.validated_data["name"].strip() or "API token"
    _, secret = ApiToken.issue(membership, name)
    return Response(
        {
            "token": secret,
            "name": name,
            "organization_id": membership.organization_id,
            "role": membership.role,
        },
        status=status.HTTP_201_CREATED,
    )


# --- the in-app page ------------------------------------------------------------------------

NAME_MAX = ApiToken._meta.get_field("name").max_length or 100


@require_http_methods(["GET", "POST"])
@role_required()
def tokens_page(request: HttpRequest) -> HttpResponse:
    membership: Membership = request.membership  # type: ignore[attr-defined]
    context: dict[str, Any] = {"new_secret": None}
    if request.method == "POST":
        name = (request.POST.get("name") or "").replace("\x00", "").strip()
        if not name:
            messages.error(request, "Give the token a name, e.g. the system that will use it.")
        elif len(name) > NAME_MAX:
            messages.error(request, f"A token's name is at most {NAME_MAX} characters.")
        else:
            with transaction.atomic():
                token, secret = ApiToken.issue(membership, name)
            context["new_secret"], context["new_token"] = secret, token
    context["tokens"] = ApiToken.objects.filter(membership=membership)
    response = render(request, "api/tokens.html", context)
    response["Cache-Control"] = "no-store"  # the page may show a secret once
    return response


@require_POST
@role_required()
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = ApiToken.objects.filter(membership=request.membership, pk=pk).first()  # type: ignore[attr-defined]
    if token is None:
        from django.http import Http404

        raise Http404("No such token.")
    token.revoke()
    messages.success(request, f"Revoked {token}.")
    return redirect("api:tokens")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 404 of the whole site: JSON under /api/ (the body every API error has), else the page."""
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Exception("Not found"))


def locked_out(request: HttpRequest, credentials: Any, *args: Any, **kwargs: Any) -> HttpResponse:
    """django-axes' lockout answer: JSON for the API's token endpoint, the page elsewhere."""
    from django.conf import settings
    from django.http import JsonResponse

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {
                "detail": f"Too many failed sign-ins: locked for {minutes} minutes.",
                "code": "locked_out",
            },
            status=429,
        )
    else:
        response = render(
            request,
            "registration/locked_out.html",
            {"cooloff_time": f"{minutes} minutes"},
            status=429,
        )
    response["Retry-After"] = str(minutes * 60)
    return response
