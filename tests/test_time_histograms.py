"""The dashboard's percentiles from the per-day time histograms (``TimeDayStat``,
``monitoring.reports.histograms``): the buckets hold every time once, the SQL bucket equals the
Python one, and the exact percentiles found through the histograms equal ``percentile_cont``
over the facts (``FactReport``) on random data, under filters, with ties, times below 16 s and
times of days, after writes that move tickets between rows; a histogram that disagrees with
the facts is never shown (the figure reads the facts). Runs on PostgreSQL and SQLite."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from careinbox.accounts.models import Organization, Team, User
from channels_social.models import SocialAccount
from monitoring.models import TimeDayStat
from monitoring.reports import histograms, rollups
from monitoring.reports.figures import FactReport, Report
from monitoring.reports.filters import parse_filter
from tests.factories import SocialAccountFactory, UserFactory
from tests.test_reports import all_targets_policy, open_ticket, reply
from tickets.models import Step, Ticket

SAMPLE = [*range(0, 70000), 2**20 - 1, 2**20, 2**20 + 1, 10**7, 2**31 - 1]


def percentile_cont(values: list[int], fraction: float) -> float:
    """The textbook definition, as PostgreSQL's ``percentile_cont`` computes it."""
    ordered = sorted(values)
    pos = fraction * (len(ordered) - 1)
    low = int(pos)
    high = low + (pos > low)
    return float(ordered[low]) + (float(ordered[high]) - float(ordered[low])) * (pos - low)


def test_every_time_falls_in_one_bucket_in_order() -> None:
    previous = -1
    for seconds in SAMPLE:
        bucket = histograms.bucket_of(seconds)
        low, high = histograms.bounds(bucket)
        assert low <= seconds < high, (seconds, bucket, low, high)
        assert bucket >= previous  # buckets follow the times' order
        previous = bucket
        if seconds < 16:
            assert (low, high) == (seconds, seconds + 1)
        else:  # 8 buckets per doubling: each at most 1/8 of the time wide
            assert (high - low) * 8 <= seconds
    assert histograms.bucket_of(2**31 - 1) < 2**15  # fits the column


@pytest.mark.django_db
def test_the_sql_bucket_is_the_python_bucket() -> None:
    sample = [*range(0, 600), *random.Random(3).sample(SAMPLE, 2000), 2**31 - 1]
    with connection.cursor() as cursor:
        for start in range(0, len(sample), 500):
            chunk = sample[start : start + 500]
            values = " UNION ALL ".join(["SELECT %s AS v"] * len(chunk))
            cursor.execute(
                f"SELECT v, {histograms.bucket_sql('v')} FROM ({values}) AS t",  # noqa: S608
                chunk,
            )
            for seconds, bucket in cursor.fetchall():
                assert bucket == histograms.bucket_of(seconds), seconds


def test_exact_percentiles_equal_percentile_cont_on_random_data() -> None:
    rng = random.Random(1202)
    for trial in range(400):
        groups: dict[Any, list[int]] = {}
        for group in range(rng.randint(1, 4)):
            n = rng.choice([1, 2, 3, 5, 17, 100, rng.randint(1, 3000)])
            scale = rng.choice([10, 40, 5000, 10**6])
            pool = [rng.randint(0, scale) for _ in range(rng.randint(1, 30))]
            groups[group] = [
                rng.choice(pool) if rng.random() < 0.4 else rng.randint(0, scale) for _ in range(n)
            ]
        hists = {g: _histogram(values) for g, values in groups.items()}  # what TimeDayStat sums to
        fractions = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
        reads: list[histograms.Ranges] = []

        def read(
            ranges: histograms.Ranges,
            reads: list[histograms.Ranges] = reads,
            groups: dict[Any, list[int]] = groups,
        ) -> histograms.Values:
            reads.append(ranges)
            got: histograms.Values = {}
            for g, spans in ranges.items():
                counts = got.setdefault(g, {})
                for v in groups[g]:
                    if any(low <= v < high for low, high in spans):
                        counts[v] = counts.get(v, 0) + 1
            return got

        got = histograms.exact_percentiles(hists, lambda _g, f=fractions: f, read)
        assert len(reads) <= 1, trial  # one read for every group and fraction
        for g, values in groups.items():
            assert got[g] == [percentile_cont(values, f) for f in fractions], (trial, g)
        # Only the buckets holding the ranks were read, not every value.
        if reads:
            read_values = sum(len(read(reads[0]).get(g, {})) for g in groups)
            assert read_values <= sum(len(set(v)) for v in groups.values())


def test_a_histogram_that_disagrees_with_the_facts_is_refused() -> None:
    values = list(range(100, 200))
    hist = _histogram(values)
    hist[histograms.bucket_of(150)] += 1  # one more than the facts hold

    def read(ranges: histograms.Ranges) -> histograms.Values:
        return {0: {v: 1 for v in values}}

    with pytest.raises(histograms.Mismatch):
        histograms.exact_percentiles({0: hist}, lambda _g: [0.5, 0.9, 1.0], read)


def _histogram(values: list[int]) -> histograms.Histogram:
    hist: histograms.Histogram = {}
    for v in values:
        b = histograms.bucket_of(v)
        hist[b] = hist.get(b, 0) + 1
    return hist


# Through the dashboard ---------------------------------------------------------------------------


def _build(org: Organization, rng: random.Random, n: int) -> list[Ticket]:
    all_targets_policy(org)
    accounts = [
        SocialAccountFactory(brand__organization=org, username="hist-a"),
        SocialAccountFactory(brand__organization=org, username="hist-b"),
    ]
    teams: list[Team | None] = [
        None,
        Team.objects.create(organization=org, name="Hist care"),
        Team.objects.create(organization=org, name="Hist social"),
    ]
    agents: list[User | None] = [None, *(UserFactory() for _ in range(4))]
    now = timezone.now().replace(microsecond=0)
    tied = [rng.randint(16, 4000) for _ in range(5)]
    tickets = []
    with rollups.deferred():
        for _ in range(n):
            opened = now - timedelta(minutes=rng.randint(60 * 24 * 2, 60 * 24 * 40))
            ticket = open_ticket(
                rng.choice(accounts), opened, agent=rng.choice(agents), team=rng.choice(teams)
            )
            tickets.append(ticket)
            roll = rng.random()
            if roll < 0.85:
                seconds = (
                    rng.randint(0, 15)
                    if roll < 0.15
                    else rng.choice(tied)
                    if roll < 0.4
                    else int(rng.lognormvariate(7, 1.6))
                )
                reply(ticket, opened + timedelta(seconds=seconds))
                if rng.random() < 0.5:
                    later = seconds + int(rng.lognormvariate(9, 1.2))
                    reply(ticket, opened + timedelta(seconds=later), step=Step.RESOLVE)
    return tickets


def _queries(org: Organization) -> list[dict[str, str]]:
    team = Team.objects.filter(organization=org).order_by("pk").first()
    handle = SocialAccount.objects.filter(organization=org).order_by("pk").first()
    assert handle is not None and team is not None
    return [
        {},
        {"period": "30d"},
        {"period": "30d", "team": str(team.pk)},
        {"period": "30d", "channel": str(handle.pk)},
        {
            "period": "custom",
            "from": (timezone.now().date() - timedelta(days=300)).isoformat(),
            "to": timezone.now().date().isoformat(),
        },
    ]


def _assert_same_percentiles(org: Organization) -> None:
    for query in _queries(org):
        filt = parse_filter(query, org)
        assert not filt.errors, filt.errors
        report, facts = Report(filt), FactReport(filt)
        assert report._times() is not None  # from the histograms, not the facts' fallback
        assert report._response_percentiles() == facts._response_percentiles(), query
        for field_name in ("agent_id", "team_id"):
            assert report._medians(field_name) == facts._medians(field_name), (query, field_name)
        for key in ("response_times", "agents", "teams"):
            assert report.table(key).rows == facts.table(key).rows, (query, key)


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_percentiles_from_histograms_equal_the_facts(org: Organization) -> None:
    rng = random.Random(20261202)
    tickets = _build(org, rng, 160)
    _assert_same_percentiles(org)
    # The histograms kept incrementally equal the ones rebuilt set-based.
    fields = [f.attname for f in TimeDayStat._meta.concrete_fields if f.attname != "id"]

    def kept() -> list[tuple[Any, ...]]:
        rows = TimeDayStat.objects.order_by(*fields).values_list(*fields)
        return [row for row in rows if row[-1]]

    before = kept()
    assert before and sum(r[-1] for r in before) > 160  # first responses and resolutions
    with connection.cursor() as cursor:
        histograms.rebuild_time_days(cursor)
    assert kept() == before

    # Writes that move tickets between rows: reassigned, moved team, answered later.
    agents = list(User.objects.filter(pk__in={t.assigned_to_id for t in tickets} - {None}))
    team = Team.objects.filter(organization=org).order_by("pk").first()
    for n, stale in enumerate(tickets[:60]):
        ticket = Ticket.objects.get(pk=stale.pk)
        if n % 2:
            ticket.assign(rng.choice([None, *agents]), by=None)
        else:
            Ticket.objects.filter(pk=ticket.pk).update(team=team)
            rollups.refresh_ticket_rollup(ticket.pk)
    _assert_same_percentiles(org)
    after = kept()
    with connection.cursor() as cursor:
        histograms.rebuild_time_days(cursor)
    assert kept() == after


@pytest.mark.django_db(transaction=True)
def test_a_stale_histogram_is_never_shown(org: Organization) -> None:
    rng = random.Random(7)
    _build(org, rng, 40)
    filt = parse_filter({"period": "30d"}, org)
    right = FactReport(filt).table("response_times").rows
    assert Report(filt).table("response_times").rows == right
    # The row of the bucket that holds the median, off by one (as if a write had committed
    # between the two reads).
    report = Report(filt)
    whole = report._time_histograms()[("first_response", "all", None)]
    n = sum(whole.values())
    bucket = next(b for b in sorted(whole) if sum(whole[c] for c in whole if c <= b) > (n - 1) // 2)
    assert histograms.bounds(bucket)[1] - histograms.bounds(bucket)[0] > 1  # a bucket read
    row = (
        TimeDayStat.objects.filter(organization=org, metric="first_response", bucket=bucket)
        .order_by("-tickets")
        .first()
    )
    assert row is not None
    TimeDayStat.objects.filter(pk=row.pk).update(tickets=row.tickets + 1)
    report = Report(filt)
    assert report._times() is None  # the histogram disagrees: not used
    assert report.table("response_times").rows == right
    assert report.table("agents").rows == FactReport(filt).table("agents").rows
