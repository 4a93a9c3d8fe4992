"""Tenancy: every request knows its organisation, and every query is scoped to it.

The easy path is the safe one: ``Model.objects.for_org(request.organization)`` on an
``OrgQuerySet``, ``get_for_org_or_404`` for single objects (another tenant's id is a 404,
never a 403, so ids leak nothing), and ``@role_required`` on views.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

from django.contrib.auth.views import redirect_to_login
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from careinbox.accounts.models import Membership, Organization, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from careinbox.accounts.models import User

_M = TypeVar("_M", bound=models.Model)


class OrgQuerySet(models.QuerySet[_M]):
    """A QuerySet for rows that belong to an organisation."""

    def for_org(self, organization: Organization) -> Self:
        return self.filter(organization=organization)


def get_for_org_or_404(
    queryset: OrgQuerySet[_M], organization: Organization | None, **lookup: Any
) -> _M:
    if organization is None:
        raise Http404("No organisation.")
    return get_object_or_404(queryset.for_org(organization), **lookup)


class OrgRequest(HttpRequest):
    """What a request carries once ``OrganizationMiddleware`` has run (for type checkers)."""

    user: User | AnonymousUser  # type: ignore[assignment]
    organization: Organization | None
    membership: Membership | None


def active_membership(user: Any, session: Any) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    memberships = Membership.objects.select_related("organization").filter(
        user=user, is_active=True
    )
    chosen = session.get("organization_id") if session is not None else None
    if chosen is not None:
        picked = memberships.filter(organization_id=chosen).first()
        if picked is not None:
            return picked
    return memberships.order_by("created_at", "pk").first()


class OrganizationMiddleware:
    """Sets ``request.organization`` and ``request.membership`` from the signed-in user."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        membership = active_membership(request.user, getattr(request, "session", None))
        request.membership = membership  # type: ignore[attr-defined]
        request.organization = membership.organization if membership else None  # type: ignore[attr-defined]
        return self.get_response(request)


class VaryOnHtmxMiddleware:
    """One URL serves a full page and an htmx partial: caches must key on ``HX-Request``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        from django.utils.cache import patch_vary_headers

        patch_vary_headers(response, ("HX-Request",))
        return response


def role_required(
    role: str = Role.AGENT,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Signed in, a member of an organisation, and at least ``role`` there; else login or 404."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                if getattr(request, "htmx", False):
                    # A background refresh after the session ended: reload the whole page
                    # (to the login form) instead of swapping a login page into a partial.
                    response = HttpResponse(status=204)
                    current = urlsplit(request.headers.get("HX-Current-URL", ""))
                    page = current.path + (f"?{current.query}" if current.query else "")
                    response["HX-Redirect"] = redirect_to_login(page or request.path)["Location"]
                    return response
                return redirect_to_login(request.get_full_path())
            membership: Membership | None = getattr(request, "membership", None)
            if membership is None or not membership.has_role(role):
                raise Http404("Not found.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def organization_context(request: HttpRequest) -> dict[str, Any]:
    membership: Membership | None = getattr(request, "membership", None)
    return {
        "organization": getattr(request, "organization", None),
        "membership": membership,
        "is_manager": bool(membership and membership.has_role(Role.MANAGER)),
        "is_org_admin": bool(membership and membership.has_role(Role.ADMIN)),
    }
