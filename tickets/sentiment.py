"""How a customer's post reads: negative, neutral or positive, with a score and the reasons.

VADER (the ``vaderSentiment`` package: a lexicon and rules tuned on social media text, shipped in
its wheel, nothing downloaded at run time) gives the general tone, negation and intensifiers
included. It was not written for customer care, where the words that matter are different:
"still waiting" has no sentiment word in it, "Great job, lost my package again 🙄" is praise
only to a lexicon, "thanks in advance, where is my order?" is a question, not a compliment, and
"no complaints" is praise. The complaint rules below correct for that, each adding a reason, so
the label shown on a ticket says why.

Figures on the labelled set (``tests/data/sentiment_posts.tsv``) are in ``docs/quality.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

NEGATIVE = "negative"
NEUTRAL = "neutral"
POSITIVE = "positive"


@dataclass(frozen=True)
class SentimentResult:
    label: str  # NEGATIVE, NEUTRAL or POSITIVE
    score: float  # -1 (angriest) .. 1 (happiest)
    reasons: tuple[str, ...] = ()


def _words(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w#])(?:" + "|".join(phrases) + r")(?!\w)", re.I)


# Words and phrases of complaint that carry no sentiment in a general lexicon.
COMPLAINT = _words(
    r"still (?:waiting|no\b|not|nothing|haven'?t|hasn'?t)",
    r"(?:never|not|hasn'?t|didn'?t|hasnt|didnt) (?:arrived|come|came|turned up|turn up|"
    r"showed up|delivered|received|called|answered|replied|told us|go through|went through)",
    r"no (?:one|reply|replies|response|answers?|updates?|word|record|refund)",
    r"nobody",
    r"zero (?:replies|response|help)",
    r"ghosted",
    r"(?:charged|billed) (?:me )?(?:twice|double|for (?:it|this|nothing))",
    r"overcharged",
    r"(?:stopped|not|isn'?t|doesn'?t|won'?t|didn'?t) (?:work|working|open|apply|submit|load|"
    r"print|turn on|hold a charge)",
    r"(?:broken|broke|faulty|damaged|smashed|cracked|soaked|ruined|leak(?:ed|ing|s)?|"
    r"fell apart|crash(?:es|ed)?)",
    r"(?:vanished|wiped|locked)",
    r"on hold",
    r"hangs? up",
    r"rings? out",
    r"waste of",
    r"(?:wrong|old) (?:size|item|address|order|one)",
    r"again",
    r"(?:day|week) \d+",
    r"(?:for|taken|been) \d+ (?:days|weeks|months)",
    r"won'?t (?:take|let|give|refund|accept|answer)",
    r"\d+ (?:days|weeks|hours|phone calls|dms) (?:and|of|later|now|without)",
    r"it'?s been \d+",
    r"error \d*",
    r"(?:want|need) (?:my money|it) back",
    r"(?:refund|claim|callback|replacement)\b.{0,30}(?:weeks|days|nothing|yet|still)",
    r"done with",
    r"switching (?:providers?|to)",
    r"(?:i )?(?:can'?t|cannot|couldn'?t) (?:log ?in|pay|get through|buy|even)",
    r"(?:very |so |really )?(?:disappointed|disgusted|fed up|sick of)",
    r"(?:rude|useless|joke|shambles|nightmare|disgrace\w*|shocking|unbelievable)",
    r"not (?:good enough|acceptable|ok|okay|impressed|happy)",
    r"why (?:is|am|are|does|do|did|was|has|have)",
    r"seriously\?",
    r"hello\?\?",
    r"anyone there",
    r"for nothing",
    r"unusable",
    r"heartbroken",
)
# Words of a problem that a plain question also uses ("how do I report a lost card?"): they
# count as a complaint only outside a question.
PROBLEM = _words(r"missing", r"lost", r"cancell?ed", r"delay(?:ed)?", r"late", r"outage", r"down")
# Hashtags people use to make a complaint spread.
ANGRY_HASHTAG = re.compile(r"#(?:thissucks|fail|neveragain|boycott\w*|worst\w*|shame\w*)\b", re.I)
# Sarcasm: praise that means the opposite. A marker alone is enough.
SARCASM = _words(
    r"thanks for nothing",
    r"yeah,? right",
    r"(?<!thank you )(?<!thanks )so much for",
    r"love (?:how|that for me)",
    r"oh (?:good|great|wonderful|fantastic|brilliant)",
    r"just (?:fantastic|great|wonderful|brilliant)",
    r"cool cool cool",
    r"of course it is",
    r"wow,? just wow",
    r"as (?:always|usual)\s*\.\.\.",
    r"brilliant\.$",
    r"lol",
    r"/s",
)
NEGATIVE_EMOJI = re.compile(
    "[\U0001f621\U0001f92c\U0001f624\U0001f44e\U0001f494\U0001f620\U0001f612\U0001f644\U0001f643]"
)
# Phrases a lexicon reads as negative that are praise in customer care.
PRAISE_IDIOM = _words(
    r"can'?t complain",
    r"no (?:complaints|problems?|fuss|issues)(?: at all)?",
    r"not bad(?: at all)?",
    r"zero downtime",
    r"painless",
)
GRATITUDE = _words(
    r"thanks?",
    r"thank you",
    r"cheers",
    r"kudos",
    r"props",
    r"appreciate[sd]?",
    r"much appreciated",
    r"shout ?out",
    r"grateful",
)
# A plain request: a question, with no complaint in it, is neutral however politely it is put.
QUESTION = re.compile(
    r"\?|^(?:@\w+\s+)*(?:hi|hello|hey|good (?:morning|afternoon))?[,!\s]*(?:can|could|do|does|is|"
    r"are|how|what|when|where|which|will|would)\b",
    re.I,
)
CONTRAST = _words(r"but", r"however", r"though", r"still")

MENTION_OR_URL = re.compile(r"@\w+|https?://\S+")


@lru_cache(maxsize=1)
def _analyser() -> SentimentIntensityAnalyzer:
    # Loading the lexicon takes ~0.1 s: once per process.
    return SentimentIntensityAnalyzer()


def analyse(text: str) -> SentimentResult:
    """The sentiment of one customer post, with the reasons for it."""
    clean = " ".join(MENTION_OR_URL.sub(" ", text).split())
    if not clean:
        return SentimentResult(NEUTRAL, 0.0, ("no words to read",))
    compound = float(_analyser().polarity_scores(clean)["compound"])
    reasons: list[str] = []

    praise_idiom = PRAISE_IDIOM.search(clean)
    # The praise idioms contain words of complaint ("no problems"): read the rest without them.
    rest = PRAISE_IDIOM.sub(" ", clean)
    complaints = [m.group(0).lower() for m in COMPLAINT.finditer(rest)]
    problems = [m.group(0).lower() for m in PROBLEM.finditer(rest)]
    hashtag = ANGRY_HASHTAG.search(clean)
    sarcasm = SARCASM.search(clean)
    angry_emoji = NEGATIVE_EMOJI.search(clean)
    grateful = GRATITUDE.search(clean)
    question = QUESTION.search(clean)
    contrast = CONTRAST.search(clean)
    if not question:
        complaints += problems

    score = compound * 0.6
    if praise_idiom:
        score += 0.5
        reasons.append(f'"{praise_idiom.group(0)}" is praise')
    if complaints:
        # Thanks that name the problem ("thanks for fixing it after the outage") is praise,
        # unless the post turns ("thanks, but it is still broken").
        if grateful and not contrast and not sarcasm:
            score += 0.2
        else:
            score -= min(0.45 * len(complaints), 0.9)
            reasons.append("complaint: " + ", ".join(dict.fromkeys(complaints)))
    if hashtag:
        score -= 0.7
        reasons.append(f"uses {hashtag.group(0)}")
    if sarcasm:
        score -= 0.6 + max(compound, 0.0)
        reasons.append(f'sarcasm ("{sarcasm.group(0)}")')
    if angry_emoji:
        score -= 0.4
        reasons.append(f"angry emoji {angry_emoji.group(0)}")
    calm = not (complaints or hashtag or sarcasm or angry_emoji)
    if question and calm and not praise_idiom:
        # A question's politeness ("please", "thanks in advance") is not praise, and the
        # subject it asks about ("accidental damage") is no complaint.
        score *= 0.25 if compound > 0 else 0.5
        reasons.append("a question")
    elif grateful and calm and not question:
        score += 0.25
        reasons.append(f'thanks ("{grateful.group(0)}")')
    score = max(-1.0, min(1.0, score))
    if score <= -0.2:
        label = NEGATIVE
    elif score >= 0.25:
        label = POSITIVE
    else:
        label = NEUTRAL
    if not reasons:
        reasons.append(f"general tone {compound:+.2f}")
    return SentimentResult(label, round(score, 3), tuple(reasons))
