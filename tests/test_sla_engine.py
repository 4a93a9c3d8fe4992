"""The SLA engine on its own: policies matched in order, due and warning times on business
calendars (weekends, holidays, daylight saving both ways, midnight), pauses, policy and
priority changes mid-flight, the set-based sweep, the inbox's risk order and the admin."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Organization
from channels_social.models import Platform
from monitoring.calendars import BusinessCalendar
from monitoring.models import Metric, SlaEventKind, SlaPolicy, SlaTimer, TimerState
from monitoring.policies import org_policies, policy_for
from monitoring.services import (
    sla_fulfil,
    sla_pause,
    sla_policy_changed,
    sla_rematch,
    sla_resume,
    sla_start,
    sla_sweep,
)
from tests.conftest import Persona
from tests.factories import BrandFactory, TicketFactory
from tickets.models import Priority, Ticket

LONDON_OFFICE = BusinessCalendar.weekly(
    "Europe/London",
    {"mon-fri": "09:00-17:00"},
    holiday_country="GB",
    holiday_subdivision="ENG",
    closed_dates=[date(2026, 12, 29)],
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _policy(
    org: Organization, calendar: BusinessCalendar | None = None, **fields: Any
) -> SlaPolicy:
    calendar = calendar or BusinessCalendar.always_open("UTC")
    fields.setdefault("name", "Test")
    return SlaPolicy.objects.create(
        organization=org, calendar=calendar.to_config(), time_zone=calendar.time_zone, **fields
    )


def _ticket(org: Organization, opened_at: datetime, **fields: Any) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=org, opened_at=opened_at, **fields)
    sla_start(ticket=ticket)
    return ticket


def _timer(ticket: Ticket, metric: str = Metric.FIRST_RESPONSE) -> SlaTimer:
    return SlaTimer.objects.filter(ticket=ticket, metric=metric).latest("started_at", "pk")


# Policies ----------------------------------------------------------------------------------


def test_an_organisation_without_policies_gets_the_default_one(org: Organization) -> None:
    [policy] = org_policies(org.pk)
    assert (policy.name, policy.first_response_minutes, policy.resolution_minutes) == (
        "Default",
        60,
        None,
    )
    assert policy.business_calendar == BusinessCalendar.always_open("UTC")
    assert org_policies(org.pk) == [policy]  # made once


def test_the_first_matching_policy_wins_in_position_order(org: Organization) -> None:
    brand = BrandFactory(organization=org)
    catch_all = _policy(org, name="Everyone", position=9, first_response_minutes=60)
    urgent = _policy(org, name="Urgent", position=1, priority=Priority.URGENT)
    vip = _policy(org, name="VIP brand on X", position=2, brand=brand, platform=Platform.X)
    ticket = TicketFactory(social_account__brand=brand, priority=Priority.URGENT)
    other = TicketFactory(social_account__brand__organization=org)
    assert policy_for(ticket) == urgent
    ticket.priority = Priority.NORMAL
    assert policy_for(ticket) == vip
    assert policy_for(other) == catch_all
    urgent.position = 10
    urgent.save()
    ticket.priority = Priority.URGENT
    assert policy_for(ticket) == vip  # order is editable


def test_no_matching_policy_means_no_timers(org: Organization) -> None:
    _policy(org, name="Urgent only", priority=Priority.URGENT, first_response_minutes=15)
    ticket = _ticket(org, timezone.now())
    assert not ticket.sla_timers.exists() and ticket.sla_due_at is None


def test_the_calendar_is_validated_by_the_calendar_itself(org: Organization) -> None:
    policy = _policy(org, first_response_minutes=60)
    policy.time_zone = "Mars/Olympus"
    with pytest.raises(ValidationError, match="time zone"):
        policy.full_clean()
    policy.time_zone = "Europe/London"
    policy.calendar = {"hours": {"mon": "17:00-09:00"}}
    with pytest.raises(ValidationError, match="ends before it starts"):
        policy.full_clean()
    policy.calendar = {"hours": {"mon-fri": "08:00-20:00"}, "holiday_country": "GB"}
    policy.full_clean()
    policy.save()
    policy.refresh_from_db()
    assert policy.calendar == {
        **BusinessCalendar.weekly(
            "Europe/London", {"mon-fri": "08:00-20:00"}, holiday_country="GB"
        ).to_config()
    }


@pytest.mark.parametrize("minutes", [0, 60 * 24 * 15])
def test_response_targets_are_bounded(org: Organization, minutes: int) -> None:
    policy = _policy(org, next_response_minutes=minutes)
    with pytest.raises(ValidationError):
        policy.full_clean()


# Due times on business calendars -------------------------------------------------------


@pytest.mark.parametrize(
    ("opened", "due", "warn", "why"),
    [
        ("2026-11-27 16:30", "2026-11-30 09:30", "2026-11-30 09:15", "Friday evening: Monday"),
        ("2026-11-28 11:00", "2026-11-30 10:00", "2026-11-30 09:45", "a Saturday post"),
        (
            "2026-12-24 16:30",
            "2026-12-30 09:30",
            "2026-12-30 09:15",
            "Christmas, Boxing Day observed on Monday 28, and the custom closed 29th",
        ),
        ("2026-03-27 16:30", "2026-03-30 08:30", "2026-03-30 08:15", "spring forward (BST)"),
        ("2026-10-23 15:30", "2026-10-26 09:30", "2026-10-26 09:15", "fall back (GMT again)"),
    ],
)
def test_first_response_counts_business_time_only(
    org: Organization, opened: str, due: str, warn: str, why: str
) -> None:
    _policy(org, LONDON_OFFICE, first_response_minutes=60)
    ticket = _ticket(org, utc(opened))
    timer = _timer(ticket)
    assert (timer.due_at, timer.warn_at) == (utc(due), utc(warn)), why
    ticket.refresh_from_db()
    assert ticket.sla_due_at == utc(due)


def test_an_around_the_clock_target_is_elapsed_time_across_both_dst_changes(
    org: Organization,
) -> None:
    _policy(org, BusinessCalendar.always_open("Europe/London"), first_response_minutes=120)
    spring = _timer(_ticket(org, utc("2026-03-29 00:30")))  # 00:30 GMT; 01:00 jumps to 02:00
    assert spring.due_at == utc("2026-03-29 02:30")  # 03:30 on the clock, two real hours
    fall = _timer(_ticket(org, utc("2026-10-24 23:30")))  # 00:30 BST; 02:00 falls to 01:00
    assert fall.due_at == utc("2026-10-25 01:30")  # 01:30 GMT, two real hours


def test_a_night_shift_across_midnight(org: Organization) -> None:
    nights = BusinessCalendar.weekly(
        "Europe/London", {"mon-fri": "00:00-06:00, 22:00-24:00"}
    )  # 22:00 to 06:00 on weeknights, split at midnight
    _policy(org, nights, first_response_minutes=90)
    ticket = _ticket(org, utc("2026-11-24 23:15"))  # Tuesday night
    assert _timer(ticket).due_at == utc("2026-11-25 00:45")  # 45 minutes each side of midnight
    friday = _ticket(org, utc("2026-11-27 23:30"))  # Friday 23:30: 30 min, then Monday
    assert _timer(friday).due_at == utc("2026-11-30 01:00")


def test_opening_starts_first_response_resolution_and_close_out(org: Organization) -> None:
    _policy(
        org,
        LONDON_OFFICE,
        first_response_minutes=60,
        next_response_minutes=30,
        take_offline_minutes=120,
        resolution_minutes=8 * 60,
        close_out_minutes=16 * 60,
    )
    ticket = _ticket(org, utc("2026-11-23 09:00"))  # a Monday
    timers = {t.metric: t for t in ticket.sla_timers.all()}
    assert set(timers) == {Metric.FIRST_RESPONSE, Metric.RESOLUTION, Metric.CLOSE_OUT}
    assert timers[Metric.RESOLUTION].due_at == utc("2026-11-23 17:00")
    assert timers[Metric.CLOSE_OUT].due_at == utc("2026-11-24 17:00")
    sla_start(ticket=ticket)  # the opened event delivered again
    assert ticket.sla_timers.count() == 3


# Pauses --------------------------------------------------------------------------------


def test_a_pause_over_a_weekend_moves_the_due_time_by_the_business_time_paused(
    org: Organization,
) -> None:
    _policy(org, LONDON_OFFICE, first_response_minutes=60, resolution_minutes=8 * 60)
    ticket = _ticket(org, utc("2026-11-26 09:00"))  # Thursday
    assert _timer(ticket, Metric.RESOLUTION).due_at == utc("2026-11-26 17:00")
    sla_pause(ticket=ticket, at=utc("2026-11-26 13:00"))  # 4 business hours used
    timer = _timer(ticket, Metric.RESOLUTION)
    assert timer.state == TimerState.PAUSED
    ticket.refresh_from_db()
    assert ticket.sla_due_at == _timer(ticket).due_at  # a paused timer ranks nothing
    assert sla_sweep(now=utc("2026-11-27 12:00")).breached == 1  # the first response only
    assert _timer(ticket, Metric.RESOLUTION).state == TimerState.PAUSED
    # The customer answers on Monday 10:00: paused Thu 13-17, Fri 9-17, Mon 9-10 = 13 hours.
    sla_resume(ticket=ticket, at=utc("2026-11-30 10:00"))
    timer = _timer(ticket, Metric.RESOLUTION)
    assert timer.state == TimerState.RUNNING and timer.paused_for == timedelta(hours=13)
    assert timer.due_at == utc("2026-11-30 14:00")  # the 4 hours left, from 10:00
    assert ticket.events.filter(kind=SlaEventKind.SLA_PAUSED).count() == 1
    resumed = ticket.events.get(kind=SlaEventKind.SLA_RESUMED)
    assert resumed.data["paused_seconds"] == {"resolution": 13 * 3600}
    sla_resume(ticket=ticket, at=utc("2026-11-30 11:00"))  # delivered again: nothing
    assert _timer(ticket, Metric.RESOLUTION).due_at == utc("2026-11-30 14:00")
    [met] = sla_fulfil(ticket=ticket, metrics=[Metric.RESOLUTION], at=utc("2026-11-30 13:00"))
    assert met.state == TimerState.MET and met.business_time == timedelta(hours=7)


# Mid-flight changes --------------------------------------------------------------------


def test_a_target_change_applies_to_running_timers_and_is_recorded(org: Organization) -> None:
    policy = _policy(org, first_response_minutes=60, resolution_minutes=600)
    opened = utc("2026-11-23 10:00")
    tickets = [_ticket(org, opened) for _ in range(3)]
    sla_fulfil(ticket=tickets[2], metrics=[Metric.FIRST_RESPONSE], at=opened)  # ended: kept
    policy.first_response_minutes = 30
    policy.resolution_minutes = None
    policy.save()
    assert sla_policy_changed(policy=policy, now=utc("2026-11-23 10:05")) == 3 + 2
    for ticket in tickets[:2]:
        assert _timer(ticket).due_at == utc("2026-11-23 10:30")
        assert _timer(ticket).target_minutes == 30
        assert _timer(ticket, Metric.RESOLUTION).state == TimerState.STOPPED
        changed = ticket.events.get(kind=SlaEventKind.SLA_DUE_CHANGED)
        assert changed.data["before"]["due_at"] == "2026-11-23T11:00:00+00:00"
        assert changed.data["due_at"] == "2026-11-23T10:30:00+00:00"
        ticket.refresh_from_db()
        assert ticket.sla_due_at == utc("2026-11-23 10:30")
    assert _timer(tickets[2]).due_at == utc("2026-11-23 11:00")  # met: history unchanged
    assert sla_policy_changed(policy=policy, now=utc("2026-11-23 10:06")) == 0  # no change


def test_a_policy_that_says_so_leaves_running_timers_alone(org: Organization) -> None:
    policy = _policy(org, first_response_minutes=60, apply_to_running=False)
    ticket = _ticket(org, utc("2026-11-23 10:00"))
    policy.first_response_minutes = 30
    policy.save()
    assert sla_policy_changed(policy=policy) == 0
    assert _timer(ticket).due_at == utc("2026-11-23 11:00")
    assert _timer(_ticket(org, utc("2026-11-23 10:00"))).due_at == utc("2026-11-23 10:30")


def test_a_priority_change_follows_the_policy_it_matches_now(org: Organization) -> None:
    _policy(org, LONDON_OFFICE, name="Office", position=2, first_response_minutes=60)
    _policy(
        org,
        BusinessCalendar.always_open("Europe/London"),
        name="Urgent 24/7",
        position=1,
        priority=Priority.URGENT,
        first_response_minutes=15,
        resolution_minutes=240,
    )
    ticket = _ticket(org, utc("2026-11-27 16:50"))  # Friday 16:50
    assert _timer(ticket).due_at == utc("2026-11-30 09:50")
    with time_machine.travel(utc("2026-11-27 16:55"), tick=False):
        ticket.change_priority(Priority.URGENT, by=None, reason="Safety issue")
        sla_rematch(ticket=ticket, at=timezone.now(), cause="priority_changed")
    assert _timer(ticket).due_at == utc("2026-11-27 17:05")
    # The urgent policy has a resolution target the office one lacked: it starts from the post.
    assert _timer(ticket, Metric.RESOLUTION).due_at == utc("2026-11-27 20:50")
    change = ticket.events.get(kind=SlaEventKind.SLA_DUE_CHANGED)
    assert change.data["policy"] == "Urgent 24/7" and change.data["cause"] == "priority_changed"
    ticket.refresh_from_db()
    assert ticket.sla_due_at == utc("2026-11-27 17:05")
    assert ticket.sla_risk_at == utc("2026-11-27 16:05")  # Urgent: an hour's head start


# The sweep -----------------------------------------------------------------------------


def test_warnings_and_breaches_fire_once_each(org: Organization) -> None:
    _policy(org, first_response_minutes=60, warning_percent=75)
    ticket = _ticket(org, utc("2026-11-23 10:00"))
    assert sla_sweep(now=utc("2026-11-23 10:44")) == (0, 0)
    assert sla_sweep(now=utc("2026-11-23 10:45")) == (1, 0)
    assert sla_sweep(now=utc("2026-11-23 10:50")) == (0, 0)
    assert sla_sweep(now=utc("2026-11-23 11:00:01")) == (0, 1)
    assert sla_sweep(now=utc("2026-11-23 12:00")) == (0, 0)
    timer = _timer(ticket)
    assert (timer.state, timer.warned_at, timer.breached_at) == (
        TimerState.BREACHED,
        utc("2026-11-23 10:45"),
        utc("2026-11-23 11:00"),
    )
    warning = ticket.events.get(kind=SlaEventKind.SLA_WARNING)
    assert warning.at == utc("2026-11-23 10:45") and warning.data["metric"] == "first_response"
    assert ticket.events.get(kind=SlaEventKind.SLA_BREACHED).at == utc("2026-11-23 11:00")


def test_a_timer_found_past_due_is_breached_without_a_late_warning(org: Organization) -> None:
    _policy(org, first_response_minutes=60)
    ticket = _ticket(org, utc("2026-11-23 10:00"))
    assert sla_sweep(now=utc("2026-11-23 13:00")) == (0, 1)
    assert not ticket.events.filter(kind=SlaEventKind.SLA_WARNING).exists()


def test_the_sweep_is_a_fixed_number_of_queries_however_many_are_due(
    org: Organization, django_assert_num_queries: Any
) -> None:
    _policy(org, first_response_minutes=60, resolution_minutes=90)
    for _ in range(20):
        _ticket(org, utc("2026-11-23 10:00"))
    # 2 claims, 2 updates, 1 insert of events, plus its savepoint pair.
    with django_assert_num_queries(7):
        assert sla_sweep(now=utc("2026-11-23 11:20")) == (20, 20)
    assert SlaTimer.objects.filter(warned_at__isnull=False).count() == 20


# The inbox order -----------------------------------------------------------------------


def test_the_inbox_puts_a_breached_high_above_an_urgent_due_in_56_minutes(
    agent: Persona,
) -> None:
    org = agent.organization
    _policy(org, first_response_minutes=60)
    now = timezone.now()
    urgent = _ticket(org, now - timedelta(minutes=4), priority=Priority.URGENT)  # due in 56
    high = _ticket(org, now - timedelta(minutes=61), priority=Priority.HIGH)  # 1 min over
    low_late = _ticket(org, now - timedelta(hours=5), priority=Priority.LOW)  # 4 h over
    normal = _ticket(org, now - timedelta(minutes=30), priority=Priority.NORMAL)  # due in 30
    answered = _ticket(org, now - timedelta(minutes=10), priority=Priority.URGENT)
    sla_fulfil(ticket=answered, metrics=[Metric.FIRST_RESPONSE], at=now)
    order = list(Ticket.objects.for_org(org).open().inbox_order())
    assert order == [low_late, high, urgent, normal, answered]

    page = agent.client().get(reverse("tickets:inbox")).content.decode()
    assert page.index(f"@{high.customer_username}") < page.index(f"@{urgent.customer_username}")
    assert "High: ranked as if due 30 min sooner" in page
    assert "Urgent: ranked as if due 60 min sooner" in page


# Admin ---------------------------------------------------------------------------------


@pytest.fixture
def staff_admin(org_admin: Persona) -> Persona:
    org_admin.user.is_staff = True
    org_admin.user.save()
    return org_admin


def _form(policy: SlaPolicy, **changes: object) -> dict[str, object]:
    form: dict[str, object] = {
        "name": policy.name,
        "position": policy.position,
        "time_zone": policy.time_zone,
        "warning_percent": policy.warning_percent,
        "calendar": json.dumps(policy.calendar),
        "apply_to_running": "on" if policy.apply_to_running else "",
    }
    for metric in Metric.values:
        value = policy.target_minutes(metric)
        form[f"{metric}_minutes"] = "" if value is None else value
    return {**form, **changes}


def test_admin_target_change_recomputes_running_timers(staff_admin: Persona) -> None:
    policy = SlaPolicy.for_org(staff_admin.organization)
    ticket = _ticket(staff_admin.organization, timezone.now())
    url = reverse("admin:monitoring_slapolicy_change", args=[policy.pk])
    response = staff_admin.client().post(url, _form(policy, first_response_minutes=20))
    assert response.status_code == 302
    assert _timer(ticket).due_at == ticket.opened_at + timedelta(minutes=20)
    assert ticket.events.filter(kind=SlaEventKind.SLA_DUE_CHANGED).count() == 1


def test_admin_refuses_a_bad_calendar(staff_admin: Persona) -> None:
    policy = SlaPolicy.for_org(staff_admin.organization)
    url = reverse("admin:monitoring_slapolicy_change", args=[policy.pk])
    response = staff_admin.client().post(url, _form(policy, time_zone="Europe/Londn"))
    assert response.status_code == 200 and "unknown time zone" in response.content.decode()


def test_admin_cannot_delete_the_last_policy(staff_admin: Persona) -> None:
    first = SlaPolicy.for_org(staff_admin.organization)
    client = staff_admin.client()
    delete = reverse("admin:monitoring_slapolicy_delete", args=[first.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    second = _policy(staff_admin.organization, name="Urgent", priority=Priority.URGENT)
    changelist = reverse("admin:monitoring_slapolicy_changelist")
    client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    # The catch-all stays (the narrowed one is gone), so every ticket keeps an SLA.
    assert list(SlaPolicy.objects.filter(organization=staff_admin.organization)) == [first]
    assert client.post(delete, {"post": "yes"}).status_code == 403


def test_reordering_policies_moves_open_tickets_to_the_one_they_match_now(
    org: Organization,
) -> None:
    from monitoring.services import sla_rematch_open_tickets

    slow = _policy(org, name="Slow", position=1, first_response_minutes=60)
    _policy(org, name="Fast", position=2, first_response_minutes=15)
    opened = utc("2026-11-23 10:00")
    ticket = _ticket(org, opened)
    closed = _ticket(org, opened, status="closed")
    assert _timer(ticket).due_at == opened + timedelta(minutes=60)
    slow.position = 3
    slow.save()
    assert sla_rematch_open_tickets(organization_id=org.pk, now=opened) == 1
    assert _timer(ticket).due_at == opened + timedelta(minutes=15)
    assert _timer(ticket).policy is not None and _timer(ticket).policy.name == "Fast"
    assert ticket.events.get(kind=SlaEventKind.SLA_DUE_CHANGED).data["cause"] == "policy_changed"
    assert _timer(closed).due_at == opened + timedelta(minutes=60)  # closed: left as it was


# Daylight saving and holidays in Berlin ------------------------------------------------

BERLIN_OFFICE = BusinessCalendar.weekly(
    "Europe/Berlin", {"mon-fri": "09:00-17:00"}, holiday_country="DE", holiday_subdivision="BY"
)


@pytest.mark.parametrize(
    ("opened", "due", "why"),
    [
        # Friday 16:30 CET; the clocks go forward on Sunday 29 March: Monday 09:30 is CEST.
        ("2026-03-27 15:30", "2026-03-30 07:30", "spring forward over the weekend"),
        # Friday 16:30 CEST; back on Sunday 25 October: Monday 09:30 is CET.
        ("2026-10-23 14:30", "2026-10-26 08:30", "fall back over the weekend"),
        # Monday 5 January 16:30; Tuesday is Epiphany, a holiday in Bavaria.
        ("2026-01-05 15:30", "2026-01-07 08:30", "a Bavarian holiday"),
        # Thursday 31 December 16:30; New Year's Day, then the weekend.
        ("2026-12-31 15:30", "2027-01-04 08:30", "a holiday then a weekend"),
        # 23:50 on a Monday: counted from Tuesday's opening, across midnight.
        ("2026-11-23 22:50", "2026-11-24 09:00", "after hours, across midnight"),
    ],
)
def test_business_hours_across_dst_and_holidays_in_berlin(
    org: Organization, opened: str, due: str, why: str
) -> None:
    _policy(org, BERLIN_OFFICE, first_response_minutes=60)
    assert _timer(_ticket(org, utc(opened))).due_at == utc(due), why


def test_a_berlin_around_the_clock_target_counts_real_time_across_both_changes(
    org: Organization,
) -> None:
    _policy(org, BusinessCalendar.always_open("Europe/Berlin"), first_response_minutes=180)
    # 00:30 CET on 29 March: 02:00 jumps to 03:00, so 03:30 on the clock is 3 real hours on.
    assert _timer(_ticket(org, utc("2026-03-28 23:30"))).due_at == utc("2026-03-29 02:30")
    # 00:30 CEST on 25 October: 03:00 falls back to 02:00; three real hours, 02:30 CET.
    assert _timer(_ticket(org, utc("2026-10-24 22:30"))).due_at == utc("2026-10-25 01:30")


def test_a_pause_across_the_october_change_counts_business_time_only(org: Organization) -> None:
    _policy(org, BERLIN_OFFICE, first_response_minutes=60, resolution_minutes=8 * 60)
    ticket = _ticket(org, utc("2026-10-23 07:00"))  # Friday 09:00 CEST
    sla_pause(ticket=ticket, at=utc("2026-10-23 11:00"))  # 13:00 CEST: 4 hours used
    # Resumed Monday 10:00 CET: paused Fri 13:00-17:00 and Mon 09:00-10:00, 5 business hours.
    sla_resume(ticket=ticket, at=utc("2026-10-26 09:00"))
    timer = _timer(ticket, Metric.RESOLUTION)
    assert timer.paused_for == timedelta(hours=5)
    assert timer.due_at == utc("2026-10-26 13:00")  # 14:00 CET, the 4 hours left


# Breaches are kept ---------------------------------------------------------------------


def test_a_breach_is_kept_when_the_target_later_grows_past_now(org: Organization) -> None:
    """The definition, as Zendesk keeps it: once a timer breached, no later change of target,
    priority or policy un-breaches it; reports count it breached, and the reply still owed
    meets nothing."""
    policy = _policy(org, first_response_minutes=30)
    opened = utc("2026-11-23 10:00")
    ticket = _ticket(org, opened)
    assert sla_sweep(now=utc("2026-11-23 10:31")).breached == 1
    policy.first_response_minutes = 120
    policy.save()
    assert sla_policy_changed(policy=policy, now=utc("2026-11-23 10:40")) == 0
    timer = _timer(ticket)
    assert (timer.state, timer.due_at, timer.target_minutes) == (
        TimerState.BREACHED,
        opened + timedelta(minutes=30),
        30,
    )
    [fulfilled] = sla_fulfil(
        ticket=ticket, metrics=[Metric.FIRST_RESPONSE], at=utc("2026-11-23 10:50")
    )
    assert fulfilled.state == TimerState.BREACHED and fulfilled.fulfilled_at is not None
    assert not ticket.events.filter(kind=SlaEventKind.SLA_MET).exists()
    from monitoring.dashboard import today_summary

    summary = today_summary(org, now=utc("2026-11-23 11:00"))
    assert (summary.met, summary.breached) == (0, 1)


def test_a_change_after_an_unswept_due_time_breaches_first(org: Organization) -> None:
    """Beat had not swept yet when the admin lengthened the target: the timer was already past
    due, so it is breached at its old due time, not silently moved."""
    policy = _policy(org, first_response_minutes=30, position=2)
    opened = utc("2026-11-23 10:00")
    ticket = _ticket(org, opened)
    policy.first_response_minutes = 120
    policy.save()
    sla_policy_changed(policy=policy, now=utc("2026-11-23 10:45"))
    timer = _timer(ticket)
    assert timer.state == TimerState.BREACHED and timer.breached_at == opened + timedelta(
        minutes=30
    )
    assert ticket.events.get(kind=SlaEventKind.SLA_BREACHED).at == opened + timedelta(minutes=30)
    assert not ticket.events.filter(kind=SlaEventKind.SLA_DUE_CHANGED).exists()
    # A priority change that moves the ticket to a slower policy keeps the breach too.
    _policy(org, name="Low", position=1, priority=Priority.LOW, first_response_minutes=600)
    Ticket.objects.filter(pk=ticket.pk).update(priority=Priority.LOW)
    sla_rematch(ticket=ticket, at=utc("2026-11-23 10:50"), cause="priority_changed")
    assert _timer(ticket).state == TimerState.BREACHED
    assert _timer(ticket).due_at == opened + timedelta(minutes=30)


# Targets gained mid-flight -------------------------------------------------------------


def test_a_gained_target_starts_where_its_clock_would_have(org: Organization) -> None:
    from tests.factories import InboundMessageFactory
    from tickets.models import Direction, EventKind, Message, MessageKind, Step

    policy = _policy(org, first_response_minutes=30)
    opened = utc("2026-11-23 10:00")
    ticket = _ticket(org, opened)
    reply = Message.objects.create(
        organization=org,
        ticket=ticket,
        platform=ticket.platform,
        kind=MessageKind.REPLY,
        direction=Direction.OUTBOUND,
        external_id="r1",
        step=Step.ACKNOWLEDGE,
        text="On it!",
        created_at=opened + timedelta(minutes=10),
    )
    with time_machine.travel(opened + timedelta(minutes=10), tick=False):
        ticket.record(EventKind.REPLY_SENT, message=reply, at=reply.created_at)
    from monitoring.services import sla_reply_delivered

    sla_reply_delivered(ticket=ticket, message=reply, at=reply.created_at)
    waiting = InboundMessageFactory(ticket=ticket, created_at=opened + timedelta(minutes=20))
    InboundMessageFactory(ticket=ticket, created_at=opened + timedelta(minutes=25))
    for name in ("next_response", "take_offline", "resolution"):
        setattr(policy, f"{name}_minutes", 60)
    policy.save()
    added = [Metric.NEXT_RESPONSE, Metric.TAKE_OFFLINE, Metric.RESOLUTION]
    assert sla_policy_changed(policy=policy, now=opened + timedelta(minutes=30), added=added) == 3
    next_response = _timer(ticket, Metric.NEXT_RESPONSE)
    assert next_response.started_at == waiting.created_at and next_response.message == waiting
    assert _timer(ticket, Metric.TAKE_OFFLINE).started_at == reply.created_at  # the ack
    assert _timer(ticket, Metric.RESOLUTION).started_at == opened
    assert len(_timer(ticket).ticket.sla_timers.filter(metric=Metric.FIRST_RESPONSE)) == 1
    started = ticket.events.get(kind=SlaEventKind.SLA_STARTED)
    assert started.data["metrics"] == ["next_response", "resolution", "take_offline"]
    # Applied again (the same change saved twice): nothing more starts.
    assert sla_policy_changed(policy=policy, now=opened + timedelta(minutes=31), added=added) == 0


def test_a_reopen_on_a_saturday_restarts_resolution_from_mondays_opening(
    org: Organization,
) -> None:
    from monitoring.services import sla_restart

    _policy(org, LONDON_OFFICE, first_response_minutes=60, resolution_minutes=4 * 60)
    ticket = _ticket(org, utc("2026-11-27 09:00"))  # Friday
    sla_fulfil(
        ticket=ticket,
        metrics=[Metric.FIRST_RESPONSE, Metric.RESOLUTION],
        at=utc("2026-11-27 11:00"),
    )
    [restarted] = sla_restart(ticket=ticket, at=utc("2026-11-28 10:00"))  # Saturday
    assert restarted.metric == Metric.RESOLUTION
    assert restarted.due_at == utc("2026-11-30 13:00")  # Monday 09:00 + 4 business hours
    assert sla_restart(ticket=ticket, at=utc("2026-11-28 10:00")) == []  # delivered again
    resolutions = SlaTimer.objects.filter(ticket=ticket, metric=Metric.RESOLUTION)
    assert [t.state for t in resolutions.order_by("started_at")] == [
        TimerState.MET,
        TimerState.RUNNING,
    ]
    assert SlaTimer.objects.filter(ticket=ticket, metric=Metric.FIRST_RESPONSE).count() == 1
