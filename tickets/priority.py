"""A first, explainable priority: how far a post can reach and how angry or risky it reads.

Every level comes with the reasons that produced it, shown on the ticket, so an agent can see
why a ticket sits at the top. (The weighted score with sentiment, virality and VIPs comes later.)
"""

from __future__ import annotations

import re

from tickets.models import Priority

LARGE_AUDIENCE = 10_000
MEDIUM_AUDIENCE = 1_000

RISK_WORDS = re.compile(
    r"\b(lawsuit|lawyer|sue|suing|injur\w*|unsafe|dangerous|fire|fraud|scam|police)\b", re.I
)
ANGRY_HASHTAGS = re.compile(r"#(thissucks|boycott\w*|fail|worst\w*|never\w*again)\b", re.I)
NEGATIVE_WORDS = re.compile(
    r"\b(worst|terrible|awful|horrible|disgusting|unacceptable|ridiculous|useless|angry|furious|"
    r"never again|broken|still waiting|still no|no one|nobody|ignored|ghost\w*|rude|lost|missing|"
    r"never arrived|late|overcharged|charged (?:twice|me)|billed|not ok|down|outage|error\w*|"
    r"stopped working|not working|doesn'?t work|thanks for nothing|wrong|damaged|defective|"
    r"faulty|wtf)\b",
    re.I,
)
PRAISE_WORDS = re.compile(
    r"\b(thanks?|thank you|lov(?:e|ed|ing)|great|awesome|amazing|appreciated|super quick|"
    r"best|shout ?out|kudos)\b",
    re.I,
)


def assess(*, text: str, followers: int) -> tuple[int, list[str]]:
    """Return the priority level and the reasons for it, most important first."""
    reasons: list[str] = []
    risky = bool(RISK_WORDS.search(text))
    angry_tag = ANGRY_HASHTAGS.search(text)
    negative = bool(NEGATIVE_WORDS.search(text)) or bool(angry_tag)
    praise = bool(PRAISE_WORDS.search(text))

    if followers >= LARGE_AUDIENCE:
        reasons.append(f"{followers:,} followers can see this")
    elif followers >= MEDIUM_AUDIENCE:
        reasons.append(f"{followers:,} followers")
    if risky:
        reasons.append("mentions legal or safety risk")
    if angry_tag:
        reasons.append(f"uses {angry_tag.group(0)}, which spreads")
    elif negative:
        reasons.append("reads as a complaint")

    if (
        risky
        or (negative and followers >= LARGE_AUDIENCE)
        or (angry_tag and followers >= MEDIUM_AUDIENCE)
    ):
        return Priority.URGENT, reasons
    if negative or followers >= LARGE_AUDIENCE:
        return Priority.HIGH, reasons
    if praise:
        return Priority.LOW, [*reasons, "reads as praise"]
    return Priority.NORMAL, reasons or ["a question or comment"]
