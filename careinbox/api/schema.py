"""How drf-spectacular describes our authentication in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "careinbox.api.auth.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer ci_…`.",
        }


class SessionScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "careinbox.api.auth.SessionAuthentication"
    name = "cookieAuth"
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: a sentence for people, a code for programs, field errors "
    "on a 400.",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": True},
    },
    "required": ["detail"],
}

ERRORS = {
    "400": "Invalid input: see `fields`.",
    "401": "No valid token (or session).",
    "403": "Your role does not allow this.",
    "404": "No such object in your organisation (another organisation's is a 404 too), "
    "or no such page.",
    "405": "Method not allowed.",
    "406": "Not acceptable: ask for application/json.",
    "409": "The action conflicts with the ticket's state (e.g. a care step out of order).",
    "415": "Unsupported media type: send JSON.",
    "429": "Too many requests: wait and retry (see Retry-After).",
}


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every operation documents the errors it can answer,
    with one shared body schema, so clients (and schemathesis) know every status code."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in ERRORS.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": body}
                )
    return result
