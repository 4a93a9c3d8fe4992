"""The reply guard: what is wrong with a reply before it is sent, each flag saying why.

Flags and what they do (``ticket_take_step`` enforces them):

- ``delete_request`` (blocks; a manager may override, recorded): asking the customer to delete
  or take down their post. It reads as a cover-up, and people screenshot it.
- ``too_long`` (blocks): over the platform's limit for the kind of message (X's weighted count).
- ``defensive`` (warns): blaming the customer, quoting terms at them, "calm down".
- ``no_apology`` (warns): the first public answer to a complaint says no sorry.
- ``boilerplate`` (warns): stock phrases with nothing specific in them, or a placeholder left
  unfilled ("{name}", "[customer name]").

A warning is shown and the agent sends anyway with one more click; that is recorded too.
Precision and recall per flag on ``tests/data/reply_guard_replies.tsv`` are in docs/quality.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twitter_text import parse_tweet

from channels_social.base import OutboundKind
from channels_social.models import Platform
from channels_social.registry import adapter_class

BLOCK = "block"
WARN = "warn"

DELETE_REQUEST = "delete_request"
TOO_LONG = "too_long"
DEFENSIVE = "defensive"
NO_APOLOGY = "no_apology"
BOILERPLATE = "boilerplate"
FLAG_CODES = (DELETE_REQUEST, TOO_LONG, DEFENSIVE, NO_APOLOGY, BOILERPLATE)


@dataclass(frozen=True)
class Flag:
    code: str
    severity: str  # BLOCK or WARN
    why: str
    manager_may_override: bool = False

    @property
    def label(self) -> str:
        """The flag's name as shown: "No apology", "Delete request"."""
        return self.code.replace("_", " ").capitalize()

    @property
    def blocks(self) -> bool:
        return self.severity == BLOCK

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "why": self.why}


def _words(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(phrases) + r")(?!\w)", re.I)


_POST = r"(?:post|tweet|comment|review|reply|message|photo|video|thread)s?"
DELETE = _words(
    rf"(?:delete|remove|take down|hide|erase)\s+(?:(?:your|the|this|that|these|those|"
    rf"original|public|first|old|above)\s+){{1,3}}{_POST}",
    rf"{_POST}\s+(?:down|deleted|removed)",
    r"(?:taking|take|took|get|getting)\s+(?:it|this|that|them|this post|the post)\s+down",
    rf"(?:delete|remove|deleting|removing)\s+(?:it|this|that)\b(?=.{{0,40}}(?:{_POST}|public|dm))",
    rf"(?:deleting|removing)\s+(?:your|the|this)\s+(?:(?:original|public)\s+)?{_POST}",
)
DEFENSIVE_WORDS = _words(
    r"you should(?:n'?t)? have",
    r"you'?d have",
    r"you must have",
    r"you failed to",
    r"you didn'?t (?:read|check|follow)",
    r"if you(?:'d| had) (?:read|checked|bothered|given|followed|looked)",
    r"(?:read|check) (?:the|our) (?:terms|faq|product description|description)\w*(?: properly)?",
    r"read (?:it|them) properly",
    r"as (?:stated|clearly stated|explained|mentioned|we (?:already )?(?:told|said|explained))",
    r"(?:our|the) terms (?:and conditions )?(?:clearly )?(?:say|state)",
    r"per our policy",
    r"followed (?:our )?policy",
    r"(?:not|isn'?t|wasn'?t) our (?:fault|problem|responsibility)",
    r"we are not responsible",
    r"we'?re not responsible",
    r"your (?:fault|responsibility|own fault|mistake)",
    r"user error",
    r"calm down",
    r"that'?s (?:simply )?not true",
    r"nothing we can do",
    r"we'?ve answered this",
    r"many times already",
    r"told you",
    r"before complaining",
    r"if you had bothered",
    r"defamatory",
    r"take it further",
    r"strictly speaking",
    r"we'?re sorry you feel that way",
    r"sorry (?:if|that) you feel",
    r"would have been quicker if you",
    r"the right .{0,20}first time",
)
APOLOGY = _words(
    r"sorry",
    r"apolog\w*",
    r"regret\w*",
    r"not (?:the experience|good enough|on|acceptable|okay|ok|what we)",
    r"unacceptable",
    r"(?:a )?terrible experience",
    r"that shouldn'?t have happened",
    r"oh no",
)
HOLLOW = _words(
    r"(?:for )?any inconvenience(?: (?:this|that) may have)?(?: caused)?",
    r"(?:your|all) (?:feedback|call|query|enquiry|message) (?:is|are) important to us",
    r"thank you for your (?:feedback|enquiry|message|kind words)",
    r"thank you for (?:contacting|choosing) us",
    r"thanks for getting in touch",
    r"we value your (?:custom|business|feedback)",
    r"valued customers?",
    r"we strive to",
    r"we take (?:all|your) (?:feedback|concerns|complaints) seriously",
    r"(?:will|shall) (?:respond|be in touch) in due course",
    r"a member of (?:our|the) team will be in touch",
    r"we appreciate your patience",
    r"thank you for your patience",
    r"dear customer",
    r"(?:this|the|your) (?:matter|case|issue) (?:is now closed|has been resolved|is now resolved)",
    r"this case is now closed",
    r"we look forward to serving you",
)
PLACEHOLDER = re.compile(r"\{\w+\}|\[[A-Za-z][\w ]{1,30}\]|\bX{3,}\b|<[a-z_ ]{2,20}>")
# Something specific: a number, a time, an action for the customer, a name or a detail.
SPECIFIC = _words(
    r"\d+",
    r"dm",
    r"tracking",
    r"order",
    r"refund\w*",
    r"replacement",
    r"engineer",
    r"call",
    r"today",
    r"tomorrow",
    r"tonight",
    r"link",
)


def measure(text: str, *, platform: str, kind: str) -> tuple[int, int | None, str]:
    """How long a reply is by the platform's count: (length, limit or None, what is counted)."""
    from channels_social.facebook.adapter import COMMENT_LIMIT, MESSENGER_LIMIT
    from channels_social.x.adapter import DM_LIMIT, LEADING_MENTIONS, PUBLIC_REPLY_LIMIT

    if platform == Platform.X and kind == OutboundKind.PUBLIC_REPLY:
        body = LEADING_MENTIONS.sub("", text, count=1)
        return parse_tweet(body).weightedLength, PUBLIC_REPLY_LIMIT, "weighted characters"
    limits: dict[tuple[str, str], int] = {
        (Platform.X, OutboundKind.PRIVATE_MESSAGE): DM_LIMIT,
        (Platform.FACEBOOK, OutboundKind.PUBLIC_REPLY): COMMENT_LIMIT,
        (Platform.FACEBOOK, OutboundKind.PRIVATE_MESSAGE): MESSENGER_LIMIT,
        (Platform.FACEBOOK, OutboundKind.PRIVATE_REPLY): MESSENGER_LIMIT,
    }
    return len(text), limits.get((platform, kind)), "characters"


def check_reply(
    text: str, *, platform: str, kind: str, ticket_negative: bool, step: str
) -> list[Flag]:
    """Every flag the reply raises, blocking ones first."""
    flags: list[Flag] = []
    text = text.strip()
    found = DELETE.search(text)
    if found:
        flags.append(
            Flag(
                DELETE_REQUEST,
                BLOCK,
                f'Asks the customer to delete their post ("{found.group(0)}"). Never ask: it '
                "reads as a cover-up. Answer it, and take the details to a private message.",
                manager_may_override=True,
            )
        )
    length, limit, unit = measure(text, platform=platform, kind=kind)
    if limit is not None and length > limit:
        # The adapter's own sentence when it has one (it says what is and is not counted).
        try:
            problem = adapter_class(platform).text_problem(OutboundKind(kind), text)
        except Exception:
            problem = None
        why = problem or f"This reply is {length:,} {unit}; the limit is {limit:,}."
        flags.append(Flag(TOO_LONG, BLOCK, why))
    defensive = DEFENSIVE_WORDS.search(text)
    if defensive:
        flags.append(
            Flag(
                DEFENSIVE,
                WARN,
                f'Sounds defensive or blames the customer ("{defensive.group(0)}"). Say what '
                "you will do, not what they did wrong.",
            )
        )
    public = kind == OutboundKind.PUBLIC_REPLY
    if ticket_negative and public and step == "acknowledge" and not APOLOGY.search(text):
        flags.append(
            Flag(
                NO_APOLOGY,
                WARN,
                "The customer is unhappy and this first public answer says no sorry. "
                "Acknowledge how they feel before anything else.",
            )
        )
    placeholder = PLACEHOLDER.search(text)
    hollow = HOLLOW.search(text)
    if placeholder:
        flags.append(
            Flag(
                BOILERPLATE,
                WARN,
                f"A placeholder is left unfilled ({placeholder.group(0)}): the customer would "
                "see it as written.",
            )
        )
    elif hollow and not SPECIFIC.search(HOLLOW.sub(" ", text)):
        flags.append(
            Flag(
                BOILERPLATE,
                WARN,
                f'Stock phrases with nothing specific ("{hollow.group(0)}"): say what happens '
                "next, for this customer.",
            )
        )
    flags.sort(key=lambda f: (not f.blocks, FLAG_CODES.index(f.code)))
    return flags
