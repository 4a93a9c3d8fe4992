"""What each dashboard figure means, in words, shown beside the figure (as Zendesk defines its
metrics) and listed in ``docs/metrics.md``. The figures are computed in
``monitoring.reports.figures`` from the roll-ups; this module is only the words."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Definition:
    key: str
    title: str
    text: str


_DEFINITIONS = (
    Definition(
        "sla_by_target",
        "SLA compliance per target",
        "Of the SLA timers that started in the period (each counted on the organisation-local "
        "day it started, the ticket's day, never the day its due time passed) and are decided, "
        "the share met. Decided: met (fulfilled by its due time), or breached (fulfilled late, "
        "or past due and still owed, whether or not the sweep has marked it yet). Timers still "
        "running before their due time are counted as pending; a target no longer owed (step "
        "skipped, closed as spam) is not counted.",
    ),
    Definition(
        "sla_by_priority",
        "SLA compliance per priority",
        "The same compliance, split by the ticket's priority now and by target.",
    ),
    Definition(
        "sla_over_time",
        "Compliance over time",
        "First-response compliance and compliance over every target, per organisation-local "
        "day the timers started.",
    ),
    Definition(
        "response_times",
        "First response and resolution times",
        "First response: calendar time from the customer's post to the brand's first public "
        "reply the platform accepted (any reply on a private ticket). Resolution: from the post "
        "to the delivered resolution message. Median (p50) and 90th percentile (p90), "
        "interpolated as PostgreSQL's percentile_cont does, over the tickets opened in the "
        "period that have one. (The CSV gives times in seconds.)",
    ),
    Definition(
        "waiting",
        "Waiting for a first reply",
        "Tickets whose first-response target is still owed now (no first reply yet), "
        "running or breached; past due: those whose due time has passed, breached by the sweep "
        "or not yet. Ignores the date range.",
    ),
    Definition(
        "backlog",
        "Backlog and its age",
        "Open tickets now (not closed out, closed or merged), by time since the customer's "
        "post. Ignores the date range.",
    ),
    Definition(
        "volume_channel",
        "Volume by channel",
        "Tickets opened in the period, per handle (X handle or Facebook page).",
    ),
    Definition("volume_brand", "Volume by brand", "Tickets opened in the period, per brand."),
    Definition(
        "heatmap",
        "Volume by hour of day",
        "Tickets opened in the period, by weekday and hour of the customer's post, in the "
        "organisation's time zone.",
    ),
    Definition(
        "breaches",
        "Breaches",
        "SLA timers that started in the period and breached (late, or past due and still "
        "owed), the most recent due time first.",
    ),
    Definition(
        "agents",
        "Per agent",
        "Handled: tickets opened in the period now assigned to the agent. Compliance: their "
        "decided SLA timers met. Median first response: over those tickets. Open load: open "
        "tickets assigned to them now.",
    ),
    Definition("teams", "Per team", "As per agent, for the ticket's team."),
    Definition(
        "sentiment",
        "Sentiment trend",
        "Tickets opened per day by the sentiment of the customer's messages "
        "(negative, neutral, positive).",
    ),
    Definition(
        "closed_publicly",
        "Closed out publicly",
        "Of the tickets closed in the period (their last close), the share closed with a public "
        "close-out, rather than closed without one, as spam, as a duplicate or by a merge.",
    ),
    Definition(
        "closed_without_close_out",
        "Closed without a public close-out",
        "Tickets closed in the period (their last close) with no public close-out, by the "
        "reason the agent gave: spam, a duplicate, the customer's DMs closed, the post deleted, "
        "the customer never answered, other (with a note), or merged into another ticket.",
    ),
    Definition(
        "promises",
        "Promises kept",
        "Of the promises on tickets opened in the period that were kept or broken, the share "
        "kept (a promise kept late counts as kept, as its event says).",
    ),
    Definition(
        "responsiveness",
        "Public responsiveness",
        "Over the last 7 days per handle: response rate, the share of the tickets opened (not "
        "closed as spam or duplicate) that got a first reply; response time, the average of the "
        "fastest 90% of first responses (as Facebook counts it). Facebook shows the 'Very "
        "responsive to messages' badge at a response rate of at least 90% and a response time "
        "of at most 15 minutes.",
    ),
)

DEFINITIONS: dict[str, Definition] = {d.key: d for d in _DEFINITIONS}


def definition(key: str) -> Definition:
    return DEFINITIONS[key]
