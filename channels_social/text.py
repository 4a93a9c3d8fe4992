"""Text from platforms and from agents, made safe to store and to send.

Two things a platform really sends break storage: a lone UTF-16 surrogate (X has sent ``\\ud800``
at the end of truncated text; Python decodes it from JSON, but it cannot be encoded as UTF-8, so
psycopg2, SQLite and every template raise ``UnicodeEncodeError``) and NUL (PostgreSQL refuses it
in text and in jsonb). Adapters clean every string they hand on, and the step service cleans
what an agent typed, so one odd character never stalls a poll or fails a reply.
"""

from __future__ import annotations

import json
from typing import Any

REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """``value`` with lone surrogates replaced by U+FFFD and NUL removed; all else kept.

    A correctly paired surrogate (two code points that JSON's ``\\ud83d\\ude00`` can leave)
    becomes the one character it stands for.
    """
    if value.isascii():
        return value.replace("\x00", "") if "\x00" in value else value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "")


def clean_payload(value: Any) -> Any:
    """A JSON-like value with every string in it (keys too) cleaned, for a JSON column."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_payload(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_payload(item) for item in value]
    return value


def lossless_json(value: Any) -> str:
    """``value`` as ASCII-only JSON text: every database stores it, and nothing is lost.

    Lone surrogates and NUL survive as ``\\ud800`` and ``\\u0000`` escapes, so a post set aside
    can be looked at, and retried, exactly as the platform sent it.
    """
    return json.dumps(value, ensure_ascii=True, default=str, sort_keys=True)
