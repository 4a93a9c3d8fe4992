"""Sentiment on the labelled set of customer-service posts: accuracy and the confusion matrix.

The set (``tests/data/sentiment_posts.tsv``) was written for CareInbox. Every third row is held
out: the complaint rules were tuned on the ``dev`` rows only, so the ``holdout`` figure is the
honest one. The floors are what the rules actually reach, less a little (docs/quality.md).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from tickets.sentiment import NEGATIVE, NEUTRAL, POSITIVE, analyse

DATA = Path(__file__).parent / "data" / "sentiment_posts.tsv"
LABELS = (NEGATIVE, NEUTRAL, POSITIVE)


def load() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))


def confusion(
    rows: list[dict[str, str]], predict: object
) -> tuple[float, Counter[tuple[str, str]]]:
    matrix: Counter[tuple[str, str]] = Counter()
    for row in rows:
        matrix[(row["label"], predict(row["text"]))] += 1  # type: ignore[operator]
    right = sum(matrix[(label, label)] for label in LABELS)
    return right / len(rows), matrix


def report(name: str, accuracy: float, matrix: Counter[tuple[str, str]], n: int) -> None:
    print(f"\n{name}: accuracy {accuracy:.3f} on {n} posts")
    print(f"{'true / predicted':>18} " + " ".join(f"{label:>9}" for label in LABELS))
    for true in LABELS:
        print(f"{true:>18} " + " ".join(f"{matrix[(true, got)]:>9}" for got in LABELS))


def test_the_set_is_big_varied_and_labelled() -> None:
    rows = load()
    assert len(rows) >= 300
    counts = Counter(row["label"] for row in rows)
    assert set(counts) == set(LABELS) and min(counts.values()) >= 90, counts
    assert len({row["text"].lower() for row in rows}) == len(rows), "a post is repeated"
    assert {row["platform"] for row in rows} == {"x", "fb"}
    assert Counter(row["split"] for row in rows)["holdout"] >= 100


def test_accuracy_and_confusion_matrix_on_the_labelled_set() -> None:
    rows = load()
    holdout = [row for row in rows if row["split"] == "holdout"]
    dev = [row for row in rows if row["split"] == "dev"]
    figures = {}
    for name, subset in (("holdout", holdout), ("dev", dev), ("all", rows)):
        accuracy, matrix = confusion(subset, lambda text: analyse(text).label)
        report(f"CareInbox sentiment, {name}", accuracy, matrix, len(subset))
        figures[name] = accuracy

    vader = SentimentIntensityAnalyzer()

    def vader_alone(text: str) -> str:
        compound = vader.polarity_scores(text)["compound"]
        return NEGATIVE if compound <= -0.05 else POSITIVE if compound >= 0.05 else NEUTRAL

    baseline, matrix = confusion(holdout, vader_alone)
    report("VADER alone (the usual ±0.05 cut), holdout", baseline, matrix, len(holdout))

    assert figures["holdout"] >= 0.85
    assert figures["all"] >= 0.90
    assert figures["holdout"] > baseline + 0.1  # the complaint rules earn their keep


@pytest.mark.parametrize(
    ("text", "label", "reason"),
    [
        ("@AcmeSupport still waiting for my refund", NEGATIVE, "still waiting"),
        ("Great job @AcmeSupport, lost my package again 🙄", NEGATIVE, "complaint"),
        ("@AcmeSupport the app is down #thissucks", NEGATIVE, "#thissucks"),
        ("Oh great, another delay. Love that for me.", NEGATIVE, "sarcasm"),
        ("@AcmeSupport my order arrived 😡", NEGATIVE, "angry emoji"),
        ("@AcmeSupport no complaints at all, smooth returns", POSITIVE, "is praise"),
        ("@AcmeSupport thanks for fixing the app after the outage", POSITIVE, ""),
        ("@AcmeSupport thanks for the reply, but it is still broken", NEGATIVE, "complaint"),
        (
            "@AcmeSupport hi, could you help me change my address please? thanks",
            NEUTRAL,
            "question",
        ),
        ("@AcmeSupport how do I report a lost card?", NEUTRAL, "question"),
        ("@AcmeSupport", NEUTRAL, "no words"),
    ],
)
def test_complaint_rules(text: str, label: str, reason: str) -> None:
    result = analyse(text)
    assert result.label == label, result
    assert any(reason in r for r in result.reasons), result.reasons
    assert -1.0 <= result.score <= 1.0
