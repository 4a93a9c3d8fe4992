"""X API v2 shapes the emulator answers with: the spec's field enums, Problems, renderers.

The enums are copied from x-api-v2-openapi.json (components.parameters) so a connector that
asks for a field X does not know fails here the way it would fail against X.
"""

from __future__ import annotations

from typing import Any

from channels_social.sandbox.x.store import XDmEvent, XTweet, XUser, iso

PROBLEM_BASE = "https://api.twitter.com/2/problems/"
INVALID_REQUEST = PROBLEM_BASE + "invalid-request"
UNSUPPORTED_AUTH = PROBLEM_BASE + "unsupported-authentication"
RESOURCE_NOT_FOUND = PROBLEM_BASE + "resource-not-found"
CLIENT_FORBIDDEN = PROBLEM_BASE + "client-forbidden"
WINDOW_SECONDS = 15 * 60
TWEET_MAX_WEIGHTED = 280
DM_MAX_CHARS = 10_000
MENTIONS_REACHABLE = 800
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
# X's words when the recipient does not accept DMs from the sender (legacy error 349, which v2
# answers as a 403 Problem).
DM_NOT_ALLOWED_DETAIL = "You cannot send messages to this user."
SEARCH_QUERY_MAX = 512  # recent search on the self-serve tiers (PLATFORMS.md)
SEARCH_RECENT_DAYS = 7

# Per endpoint and principal kind, per 15 minutes (PLATFORMS.md); unlisted pairs get FALLBACK.
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "mentions:user": 300,
    "mentions:app": 450,
    "create_tweet:user": 100,
    "create_dm:user": 200,
    "users_me:user": 75,
    "get_tweet:user": 900,
    "get_tweet:app": 450,
    "search_recent:user": 300,
    "search_recent:app": 450,
    "user_tweets:user": 900,
    "user_tweets:app": 1500,
    "dm_events:user": 300,
    "hide_reply:user": 50,
    "get_user:user": 900,
    "get_user:app": 300,
}
FALLBACK_RATE_LIMIT = 900

TWEET_FIELDS = frozenset(
    [
        "article",
        "attachments",
        "author_id",
        "card_uri",
        "community_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "display_text_range",
        "edit_controls",
        "edit_history_tweet_ids",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "media_metadata",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "scopes",
        "source",
        "suggested_source_links",
        "suggested_source_links_with_counts",
        "text",
        "withheld",
    ]
)
USER_FIELDS = frozenset(
    [
        "affiliation",
        "confirmed_email",
        "connection_status",
        "created_at",
        "description",
        "entities",
        "id",
        "is_identity_verified",
        "location",
        "most_recent_tweet_id",
        "name",
        "parody",
        "pinned_tweet_id",
        "profile_banner_url",
        "profile_image_url",
        "protected",
        "public_metrics",
        "receives_your_dm",
        "subscription",
        "subscription_type",
        "url",
        "username",
        "verified",
        "verified_followers_count",
        "verified_type",
        "withheld",
    ]
)
TWEET_EXPANSIONS = frozenset(
    [
        "article.cover_media",
        "article.media_entities",
        "attachments.media_keys",
        "attachments.media_source_tweet",
        "attachments.poll_ids",
        "author_id",
        "edit_history_tweet_ids",
        "entities.mentions.username",
        "geo.place_id",
        "in_reply_to_user_id",
        "entities.note.mentions.username",
        "referenced_tweets.id",
        "referenced_tweets.id.attachments.media_keys",
        "referenced_tweets.id.author_id",
    ]
)
USER_EXPANSIONS = frozenset({"affiliation.user_id", "most_recent_tweet_id", "pinned_tweet_id"})
DM_EVENT_FIELDS = frozenset(
    [
        "attachments",
        "created_at",
        "dm_conversation_id",
        "entities",
        "event_type",
        "id",
        "participant_ids",
        "referenced_tweets",
        "sender_id",
        "text",
    ]
)
DM_EXPANSIONS = frozenset(
    ["attachments.media_keys", "participant_ids", "referenced_tweets.id", "sender_id"]
)
DM_EVENT_TYPES = frozenset(["MessageCreate", "ParticipantsJoin", "ParticipantsLeave"])
FIELD_ENUMS = {
    "tweet.fields": TWEET_FIELDS,
    "user.fields": USER_FIELDS,
    "dm_event.fields": DM_EVENT_FIELDS,
}
OTHER_FIELDS = ("media.fields", "poll.fields", "place.fields")
QUERY_PARAMS = {
    "mentions": {
        "since_id",
        "until_id",
        "max_results",
        "pagination_token",
        "start_time",
        "end_time",
        "tweet.fields",
        "expansions",
        "user.fields",
        *OTHER_FIELDS,
    },
    "users_me": {"user.fields", "expansions", "tweet.fields"},
    "get_tweet": {"tweet.fields", "expansions", "user.fields", *OTHER_FIELDS},
    "get_user": {"user.fields", "expansions", "tweet.fields"},
    "user_tweets": {
        "since_id",
        "until_id",
        "max_results",
        "pagination_token",
        "exclude",
        "start_time",
        "end_time",
        "tweet.fields",
        "expansions",
        "user.fields",
        *OTHER_FIELDS,
    },
    "search_recent": {
        "query",
        "start_time",
        "end_time",
        "since_id",
        "until_id",
        "max_results",
        "next_token",
        "pagination_token",
        "sort_order",
        "tweet.fields",
        "expansions",
        "user.fields",
        *OTHER_FIELDS,
    },
    "dm_events": {
        "max_results",
        "pagination_token",
        "event_types",
        "dm_event.fields",
        "expansions",
        "media.fields",
        "user.fields",
        "tweet.fields",
    },
}
TWEET_CREATE_KEYS = frozenset(
    [
        "card_uri",
        "community_id",
        "direct_message_deep_link",
        "edit_options",
        "for_super_followers_only",
        "geo",
        "media",
        "nullcast",
        "poll",
        "quote_tweet_id",
        "reply",
        "reply_settings",
        "share_with_followers",
        "text",
    ]
)


class ApiError(Exception):
    """Ends a request with an X Problem response."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail", ""))
        self.status = status
        self.problem = problem


def problem(status: int, title: str, detail: str, type_: str = "about:blank") -> ApiError:
    return ApiError(status, {"title": title, "detail": detail, "type": type_, "status": status})


def invalid(message: str, parameters: dict[str, list[str]] | None = None) -> ApiError:
    """X's 400 shape: a generic detail, the specifics in ``errors``."""
    error: dict[str, Any] = {"message": message}
    if parameters:
        error["parameters"] = parameters
    return ApiError(
        400,
        {
            "errors": [error],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": INVALID_REQUEST,
            "status": 400,
        },
    )


CLIENT_FORBIDDEN_DETAIL = (
    "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens "
    "from a Twitter developer App that is attached to a Project. You can create a project via "
    "the developer portal."
)
# Generic (about:blank) Problems X answers with, by status: title == detail.
GENERIC_TITLES = {
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
INJECTABLE_STATUSES = (400, 401, 403, 404, 429, 500, 502, 503, 504)


def fault_problem(status: int) -> ApiError:
    """The Problem X answers for ``status``; what ``inject_faults(status)`` sends back."""
    if status == 400:
        return invalid("The sandbox injected a 400 fault: this request was refused.")
    if status == 403:
        return ApiError(
            403,
            {
                "client_id": "sandbox",
                "detail": CLIENT_FORBIDDEN_DETAIL,
                "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
                "title": "Client Forbidden",
                "required_enrollment": "Appropriate Level of API Access",
                "reason": "client-not-enrolled",
                "type": CLIENT_FORBIDDEN,
                "status": 403,
            },
        )
    if status in GENERIC_TITLES:
        return problem(status, GENERIC_TITLES[status], GENERIC_TITLES[status])
    raise ValueError(
        f"Cannot inject HTTP {status}; choose one of {', '.join(map(str, INJECTABLE_STATUSES))}."
    )


def render_tweet(
    tweet: XTweet, fields: set[str], metrics: dict[str, int] | None = None
) -> dict[str, Any]:
    """Only the requested fields, as X does; id, text and edit history always."""
    out: dict[str, Any] = {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}
    if "author_id" in fields:
        out["author_id"] = tweet.author_id
    if "created_at" in fields:
        out["created_at"] = iso(tweet.created_at)
    if "conversation_id" in fields:
        out["conversation_id"] = tweet.conversation_id
    if "in_reply_to_user_id" in fields and tweet.in_reply_to_user_id:
        out["in_reply_to_user_id"] = tweet.in_reply_to_user_id
    if "referenced_tweets" in fields and tweet.referenced_tweets():
        out["referenced_tweets"] = tweet.referenced_tweets()
    if "entities" in fields and tweet.mentions:
        out["entities"] = {"mentions": [dict(m) for m in tweet.mentions]}
    if "lang" in fields:
        out["lang"] = "en"
    if "possibly_sensitive" in fields:
        out["possibly_sensitive"] = False
    if "public_metrics" in fields:
        out["public_metrics"] = (
            dict(metrics)
            if metrics
            else {
                "retweet_count": 0,
                "reply_count": 0,
                "like_count": 0,
                "quote_count": 0,
                "impression_count": 0,
                "bookmark_count": 0,
            }
        )
    return out


def render_dm_event(event: XDmEvent, fields: set[str]) -> dict[str, Any]:
    """A ``MessageCreate`` DM event: id, event_type and text always (X's defaults)."""
    out: dict[str, Any] = {
        "id": event.dm_event_id,
        "event_type": "MessageCreate",
        "text": event.text,
    }
    if "created_at" in fields:
        out["created_at"] = iso(event.created_at)
    if "dm_conversation_id" in fields:
        out["dm_conversation_id"] = event.dm_conversation_id
    if "sender_id" in fields:
        out["sender_id"] = event.sender_id
    if "participant_ids" in fields:
        out["participant_ids"] = list(event.participant_ids)
    return out


def render_user(user: XUser, fields: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": user.id, "name": user.name, "username": user.username}
    if "created_at" in fields:
        out["created_at"] = iso(user.created_at)
    if "public_metrics" in fields:
        out["public_metrics"] = {
            "followers_count": user.followers_count,
            "following_count": user.following_count,
            "tweet_count": user.tweet_count,
            "listed_count": user.listed_count,
            "like_count": 0,
        }
    if "verified" in fields:
        out["verified"] = user.verified
    if "receives_your_dm" in fields:
        out["receives_your_dm"] = user.accepts_dms
    if "protected" in fields:
        out["protected"] = False
    if "description" in fields:
        out["description"] = ""
    return out


def not_found_error(resource_type: str, parameter: str, value: str) -> dict[str, Any]:
    """The partial-error object X puts in ``errors`` of a 200 when an id does not exist."""
    return {
        "value": value,
        "detail": f"Could not find {resource_type} with {parameter}: [{value}].",
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": value,
        "type": RESOURCE_NOT_FOUND,
    }


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, remainder = divmod(number, 36)
        out = digits[remainder] + out
        if not number:
            return out
