"""How an API request gets its user, organisation and role.

``Authorization: Bearer ci_…`` (a token made in the app or with ``manage.py create_api_token``)
acts as that token's member; a signed-in browser session (the docs page) acts as the session's
member. Either way ``request.organization`` and ``request.membership`` are set as for the HTML
views, so the same ``for_org`` scoping applies, and another organisation's object is a 404.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from careinbox.accounts.models import Membership, Role
from careinbox.api.models import ApiToken
from careinbox.tenancy import active_membership

# Writing last_used_at on every request would make each read a write; once a minute is plenty.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def _attach(request: Request, membership: Membership | None) -> None:
    for target in (request, request._request):
        target.membership = membership  # type: ignore[union-attr]
        target.organization = membership.organization if membership else None  # type: ignore[union-attr]


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in {b"bearer", b"token"}:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the header as 'Authorization: Bearer <token>'."
            )
        try:
            secret = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        token = ApiToken.find(secret)
        if token is None:
            raise exceptions.AuthenticationFailed("The token is not valid or was revoked.")
        membership = token.membership
        if not membership.is_active or not membership.user.is_active:
            raise exceptions.AuthenticationFailed("The token's member is deactivated.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        _attach(request, membership)
        return membership.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """The browser's session (the docs page), scoped like the HTML views."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is not None:
            _attach(request, active_membership(result[0], request._request.session))
        return result


class HasRole(permissions.BasePermission):
    """A member of an organisation with at least the view's role for this action.

    Views say ``required_role`` (default agent) and, per action, ``action_roles``."""

    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        membership: Membership | None = getattr(request, "membership", None)
        if membership is None:
            return False
        roles: dict[str, str] = getattr(view, "action_roles", {})
        action = getattr(view, "action", None) or request.method.lower()
        required = roles.get(action, getattr(view, "required_role", Role.AGENT))
        return membership.has_role(required)
