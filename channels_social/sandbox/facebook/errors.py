"""Graph API errors in Graph's shape: ``{"error": {message, type, code, error_subcode, ...}}``.

Codes and messages follow ../shared/PLATFORMS.md (throttling 4, 17, 32, 613, 80001; 190 token;
368 blocked; 506 duplicate) and, where PLATFORMS.md names no code, Meta's Messenger error-code
reference as quoted by client code in the wild: 10 / 2018278 outside the messaging window,
10900 a private reply already sent, 10903 a private reply no longer allowed, 100 / 2018001 no
matching user, 100 / 2018034 an empty message, 100 / 33 an object that does not exist.

Graph answers most errors with HTTP 400 whatever the code; facebook-sdk ignores the status and
raises GraphAPIError from the body, so clients must classify by ``code``, never by status.
"""

from __future__ import annotations

import secrets
from typing import Any

OAUTH = "OAuthException"
METHOD = "GraphMethodException"
DOCS = "https://developers.facebook.com/docs/graph-api"
POLICY = "https://developers.facebook.com/docs/messenger-platform/policy-overview"

THROTTLING_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try "
    "again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}
# Messages for injected errors that PLATFORMS.md lists by code alone.
KNOWN_MESSAGES = {
    **THROTTLING_MESSAGES,
    1: "An unknown error has occurred.",
    2: "An unexpected error has occurred. Please retry your request later.",
    10: "(#10) Application does not have permission for this action",
    100: "(#100) Invalid parameter",
    190: "Invalid OAuth access token data.",
    200: "(#200) Permissions error",
    368: "(#368) The action attempted has been deemed abusive or is otherwise disallowed",
    506: "(#506) Duplicate status message",
    551: "(#551) This person isn't available right now.",
}
TRANSIENT_CODES = frozenset({1, 2, *THROTTLING_MESSAGES})


class GraphError(Exception):
    """Ends a Graph request with ``{"error": {...}}`` and an HTTP status (400 unless said)."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        subcode: int | None = None,
        type_: str = OAUTH,
        status: int = 400,
        user_title: str | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.type = type_
        self.status = status
        self.user_title = user_title
        self.user_message = user_message

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.code in TRANSIENT_CODES:
            error["is_transient"] = True
        if self.user_title:
            error["error_user_title"] = self.user_title
        if self.user_message:
            error["error_user_msg"] = self.user_message
        error["fbtrace_id"] = trace_id()
        return {"error": error}

    @property
    def throttling(self) -> bool:
        return self.code in THROTTLING_MESSAGES


def trace_id() -> str:
    return secrets.token_urlsafe(8)


def invalid_parameter(message: str, subcode: int | None = None) -> GraphError:
    return GraphError(f"(#100) {message}", code=100, subcode=subcode)


def no_token() -> GraphError:
    return GraphError(
        "An access token is required to request this resource.", code=104, type_=OAUTH
    )


def bad_token() -> GraphError:
    return GraphError("Invalid OAuth access token data.", code=190)


# Code 190's subcodes and Graph's words for them (Meta's "access token errors").
TOKEN_SUBCODES = {
    458: "Error validating access token: The user has not authorized application.",
    460: "Error validating access token: The session has been invalidated because the user "
    "changed their password or Facebook has changed the session for security reasons.",
    463: "Error validating access token: Session has expired.",
    467: "Error validating access token: The session is invalid because the user logged out.",
}


def revoked_token(subcode: int) -> GraphError:
    """A page token that was valid once: expired (463) or revoked (458, 460, 467)."""
    return GraphError(TOKEN_SUBCODES[subcode], code=190, subcode=subcode)


def wrong_page_token() -> GraphError:
    """A valid token of another page: Graph wants the owning page's token."""
    return GraphError("(#190) This method must be called with a Page Access Token", code=190)


def no_such_object(object_id: str, method: str) -> GraphError:
    verb = {"GET": "get", "POST": "post", "DELETE": "delete"}.get(method, method.lower())
    return GraphError(
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        f"the Graph API documentation at {DOCS}",
        code=100,
        subcode=33,
        type_=METHOD,
    )


def nonexisting_field(name: str, node_type: str) -> GraphError:
    return invalid_parameter(
        f"Tried accessing nonexisting field ({name}) on node type ({node_type})"
    )


def not_emulated(what: str) -> GraphError:
    return GraphError(
        f"(#100) The Facebook sandbox does not emulate {what}.", code=100, type_=METHOD
    )


def outside_window() -> GraphError:
    return GraphError(
        "(#10) This message is sent outside of allowed window. Learn more about the new policy "
        f"here: {POLICY}",
        code=10,
        subcode=2018278,
    )


def private_reply_already_sent() -> GraphError:
    return GraphError("(#10900) Activity already replied to", code=10900)


def private_reply_not_allowed() -> GraphError:
    # Graph's own wording, apostrophe missing and all.
    return GraphError("(#10903) This user cant reply to this activity", code=10903)


def no_matching_user() -> GraphError:
    return GraphError("(#100) No matching user found", code=100, subcode=2018001)


def empty_message() -> GraphError:
    return GraphError(
        "(#100) Message cannot be empty, must provide valid attachment or text",
        code=100,
        subcode=2018034,
    )


def throttled(code: int) -> GraphError:
    return GraphError(THROTTLING_MESSAGES[code], code=code)


def injected(code: int, subcode: int | None, message: str | None, status: int) -> GraphError:
    """A Graph error a test asked for (``mode="graph_error"``)."""
    text = message or KNOWN_MESSAGES.get(code) or f"(#{code}) Injected by the Facebook sandbox"
    return GraphError(text, code=code, subcode=subcode, status=status)


INJECTABLE_STATUSES = (400, 401, 403, 404, 429, 500, 502, 503, 504)


def fault_error(status: int) -> GraphError:
    """The Graph error a bare HTTP status fault answers with (``mode="status"``)."""
    if status == 400:
        return invalid_parameter("Invalid parameter (injected by the Facebook sandbox)")
    if status == 401:
        return GraphError(KNOWN_MESSAGES[190], code=190, status=401)
    if status == 403:
        return GraphError(KNOWN_MESSAGES[10], code=10, status=403)
    if status == 404:
        return GraphError(
            "(#803) Some of the aliases you requested do not exist", code=803, status=404
        )
    if status == 429:
        return GraphError(THROTTLING_MESSAGES[4], code=4, status=429)
    if status == 500:
        return GraphError(KNOWN_MESSAGES[1], code=1, status=500)
    if status in (502, 503, 504):
        return GraphError(KNOWN_MESSAGES[2], code=2, status=status)
    raise ValueError(
        f"Cannot inject HTTP {status}; choose one of {', '.join(map(str, INJECTABLE_STATUSES))}."
    )
