"""The first priority: reach and tone, each level with the reasons that produced it."""

from __future__ import annotations

import pytest

from tickets.models import Priority
from tickets.priority import assess


@pytest.mark.parametrize(
    ("text", "followers", "level", "reason"),
    [
        ("Your app is down again #thissucks", 85_000, Priority.URGENT, "uses #thissucks"),
        ("My charger caught fire!", 50, Priority.URGENT, "legal or safety"),
        ("Charged me twice and nobody answers", 40_000, Priority.URGENT, "40,000 followers"),
        ("My order never arrived", 300, Priority.HIGH, "reads as a complaint"),
        ("Received the wrong running shoes. How do I swap them?", 199, Priority.HIGH, "complaint"),
        ("What time do you open on Sunday?", 25_000, Priority.HIGH, "25,000 followers"),
        ("Does the blender come with a UK plug?", 120, Priority.NORMAL, "a question or comment"),
        ("Loving the new blender, best purchase this year.", 900, Priority.LOW, "praise"),
        ("The refund was super quick. Appreciated.", 2_668, Priority.LOW, "praise"),
        ("Thanks for nothing so far...", 335_100, Priority.URGENT, "complaint"),
    ],
)
def test_assess(text: str, followers: int, level: int, reason: str) -> None:
    got_level, reasons = assess(text=text, followers=followers)
    assert got_level == level
    assert any(reason in r for r in reasons), reasons
