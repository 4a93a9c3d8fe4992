from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A timedelta as people say it: '45 s', '3 min 12 s', '2 h 05 min', '1 d 3 h'."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min {secs} s"
    return f"{sign}{secs} s"


@register.filter
def get_item(mapping: dict[Any, Any] | None, key: Any) -> Any:
    """``mapping[key]`` in a template, or None."""
    return (mapping or {}).get(key)
