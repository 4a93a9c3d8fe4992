"""Notification text made safe for e-mail, where customers' words can end up (an escalation's
title names the customer's handle, which on Facebook is their own display name).

A subject is one header line: every line break and control character becomes a space, so no
text can start a header of its own (Django would refuse the whole message: the e-mail lost).
A body is plain text (no HTML alternative is ever sent, so nothing in it is markup): line
breaks are kept as ``\\n``, other control characters go. In both, the bidirectional controls
(embeddings, overrides, isolates) are removed: a page shows customer text inside
``dir="auto"`` and our sentences isolate it, but a plain-text e-mail has neither, and a
right-to-left override in a name would turn the rest of the line around."""

from __future__ import annotations

import re
import unicodedata

# LRE, RLE, PDF, LRO, RLO and LRI, RLI, FSI, PDI.
BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
SUBJECT_MAX = 200
_SPACES = re.compile(r"\s+")


def _is_control(char: str) -> bool:
    # Cc: C0 and C1 controls (CR, LF, NEL, ...); Zl, Zp: the Unicode line and paragraph
    # separators, which some mail clients break lines on.
    return unicodedata.category(char) in ("Cc", "Zl", "Zp")


def mail_subject(text: str) -> str:
    """``text`` as one safe subject line, at most ``SUBJECT_MAX`` characters."""
    text = "".join(" " if _is_control(char) else char for char in text.translate(BIDI_CONTROLS))
    return _SPACES.sub(" ", text).strip()[:SUBJECT_MAX].strip()


def mail_body(text: str) -> str:
    """``text`` as a plain-text body: ``\\n`` line breaks, no other control characters."""
    text = text.translate(BIDI_CONTROLS).replace("\r\n", "\n")
    lines = re.split(r"[\r\x0b\x0c\x85\u2028\u2029]", text)
    text = "\n".join(lines)
    return "".join(char for char in text if char in "\n\t" or not _is_control(char)).strip()
