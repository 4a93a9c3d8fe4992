"""Business-time calendars: weekends, holidays, daylight saving, midnight, pauses, and a
property test against a minute-by-minute count."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.calendars import BusinessCalendar, CalendarError, OpeningInterval

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def london(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=LONDON)


def new_york(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def office(
    time_zone: str = "Europe/London",
    *,
    holiday_country: str | None = None,
    holiday_subdivision: str | None = None,
    closed_dates: Iterable[date] = (),
) -> BusinessCalendar:
    """09:00-17:00, Monday to Friday."""
    return BusinessCalendar.weekly(
        time_zone,
        {"mon-fri": "09:00-17:00"},
        holiday_country=holiday_country,
        holiday_subdivision=holiday_subdivision,
        closed_dates=closed_dates,
    )


def every_day(hours: str, time_zone: str) -> BusinessCalendar:
    return BusinessCalendar.weekly(time_zone, {"mon-sun": hours})


# Weekdays and weekends


def test_a_weekend_holds_no_business_time() -> None:
    calendar = office()

    # Friday 2026-12-04 16:00 to Monday 10:00: Friday's last hour and Monday's first.
    assert calendar.business_seconds_between(london(2026, 12, 4, 16), london(2026, 12, 7, 10)) == (
        2 * 3600
    )
    assert calendar.business_seconds_between(london(2026, 12, 5, 9), london(2026, 12, 6, 17)) == 0


def test_a_due_time_skips_the_weekend() -> None:
    due = office().add_business_time(london(2026, 12, 4, 16, 30), timedelta(hours=1))

    assert due == london(2026, 12, 7, 9, 30)


def test_a_due_time_that_uses_up_the_day_is_the_closing_time() -> None:
    # The first instant by which the hour has elapsed is 17:00, not Monday's opening.
    due = office().add_business_time(london(2026, 12, 4, 16), timedelta(hours=1))

    assert due == london(2026, 12, 4, 17)


def test_opening_and_closing_instants() -> None:
    calendar = office()

    assert calendar.is_open(london(2026, 12, 1, 9))
    assert calendar.is_open(london(2026, 12, 1, 16, 59, 59))
    assert not calendar.is_open(london(2026, 12, 1, 17))
    assert not calendar.is_open(london(2026, 12, 1, 8, 59, 59))
    assert not calendar.is_open(london(2026, 12, 5, 12))


def test_a_lunch_break_is_not_counted() -> None:
    calendar = BusinessCalendar.weekly("Europe/London", {"mon-fri": "09:00-12:30, 13:30-18:00"})

    assert not calendar.is_open(london(2026, 12, 1, 13))
    assert calendar.business_time_between(london(2026, 12, 1, 12), london(2026, 12, 1, 14)) == (
        timedelta(hours=1)
    )
    assert calendar.add_business_time(london(2026, 12, 1, 12), timedelta(hours=1)) == london(
        2026, 12, 1, 14
    )
    assert calendar.business_time_between(london(2026, 12, 1), london(2026, 12, 2)) == timedelta(
        hours=8
    )


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (london(2026, 12, 1, 7), london(2026, 12, 1, 9, 30)),  # before opening
        (london(2026, 12, 1, 20), london(2026, 12, 2, 9, 30)),  # after closing
        (london(2026, 12, 5, 11), london(2026, 12, 7, 9, 30)),  # on a Saturday
        (london(2026, 12, 4, 17), london(2026, 12, 7, 9, 30)),  # at Friday's closing instant
    ],
)
def test_counting_from_outside_hours_starts_at_the_next_opening(
    start: datetime, due: datetime
) -> None:
    assert office().add_business_time(start, timedelta(minutes=30)) == due


def test_ends_outside_hours_count_only_the_open_part() -> None:
    calendar = office()

    assert calendar.business_time_between(london(2026, 12, 1, 6), london(2026, 12, 1, 23)) == (
        timedelta(hours=8)
    )
    assert calendar.business_time_between(london(2026, 12, 1, 6), london(2026, 12, 1, 8)) == (
        timedelta(0)
    )


def test_between_is_zero_unless_end_is_after_start() -> None:
    calendar = office()

    assert calendar.business_seconds_between(london(2026, 12, 1, 12), london(2026, 12, 1, 12)) == 0
    assert calendar.business_seconds_between(london(2026, 12, 1, 12), london(2026, 12, 1, 10)) == 0


def test_business_seconds_are_whole_seconds_rounded_down() -> None:
    calendar = office()
    start = london(2026, 12, 1, 10)

    assert calendar.business_seconds_between(start, start + timedelta(seconds=1.999999)) == 1
    assert calendar.business_time_between(start, start + timedelta(microseconds=7)) == timedelta(
        microseconds=7
    )


def test_the_due_time_is_in_the_start_zone_and_the_same_instant_in_any_other() -> None:
    calendar = office()
    start = london(2026, 12, 4, 16, 30)

    due = calendar.add_business_time(start, timedelta(hours=1))
    due_from_utc = calendar.add_business_time(start.astimezone(UTC), timedelta(hours=1))

    assert due.tzinfo is LONDON
    assert due_from_utc.tzinfo is UTC
    assert due == due_from_utc


def test_a_zero_duration_is_due_at_once_and_a_negative_one_is_refused() -> None:
    start = london(2026, 12, 5, 11)

    assert office().add_business_time(start, timedelta(0)) == start
    with pytest.raises(ValueError, match="must not be negative"):
        office().add_business_time(start, timedelta(seconds=-1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        office().is_open(datetime(2026, 12, 1, 10))


# Holidays


def test_library_holidays_close_the_day() -> None:
    calendar = office(holiday_country="GB", holiday_subdivision="ENG")

    # Thursday 24 December, then Christmas, a weekend and Boxing Day observed on Monday 28th.
    due = calendar.add_business_time(london(2026, 12, 24, 16, 30), timedelta(hours=1))

    assert due == london(2026, 12, 29, 9, 30)
    assert not calendar.is_open(london(2026, 12, 28, 12))
    assert office().is_open(london(2026, 12, 28, 12))


def test_a_subdivision_has_its_own_holidays() -> None:
    st_andrews_day = london(2026, 11, 30, 12)  # a Monday; a bank holiday in Scotland only

    assert not office(holiday_country="GB", holiday_subdivision="SCT").is_open(st_andrews_day)
    assert office(holiday_country="GB", holiday_subdivision="ENG").is_open(st_andrews_day)


def test_us_thanksgiving_in_new_york() -> None:
    calendar = office("America/New_York", holiday_country="US")

    assert calendar.business_seconds_between(new_york(2026, 11, 26), new_york(2026, 11, 27)) == 0
    assert calendar.add_business_time(new_york(2026, 11, 25, 16), timedelta(hours=2)) == (
        new_york(2026, 11, 27, 10)
    )


def test_custom_closed_dates_and_special_hours() -> None:
    calendar = BusinessCalendar.weekly(
        "Europe/London",
        {"mon-fri": "09:00-17:00"},
        holiday_country="GB",
        holiday_subdivision="ENG",
        closed_dates={date(2026, 12, 31)},
        special_hours={
            date(2026, 12, 5): "10:00-14:00",  # a Saturday opened for a sale
            date(2026, 12, 24): "09:00-12:00",  # Christmas Eve, shorter
            date(2026, 12, 26): "10:00-12:00",  # Boxing Day worked after all
        },
    )

    assert not calendar.is_open(london(2026, 12, 31, 12))
    assert calendar.business_time_between(london(2026, 12, 5), london(2026, 12, 6)) == timedelta(
        hours=4
    )
    assert calendar.add_business_time(london(2026, 12, 24, 11), timedelta(hours=2)) == london(
        2026, 12, 26, 11
    )
    assert not calendar.is_open(london(2026, 12, 25, 11))


# Daylight saving


@pytest.mark.parametrize(
    ("time_zone", "short_day", "long_day"),
    [
        ("Europe/London", date(2026, 3, 29), date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
    ],
)
def test_a_nine_to_five_day_is_eight_hours_on_both_dst_days(
    time_zone: str, short_day: date, long_day: date
) -> None:
    zone = ZoneInfo(time_zone)
    calendar = every_day("09:00-17:00", time_zone)
    always = BusinessCalendar.always_open(time_zone)

    for day, hours_in_day in ((short_day, 23), (long_day, 25)):
        midnight = datetime.combine(day, time(0), tzinfo=zone)
        next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)

        assert calendar.business_time_between(midnight, next_midnight) == timedelta(hours=8)
        assert calendar.add_business_time(midnight, timedelta(hours=8)) == datetime.combine(
            day, time(17), tzinfo=zone
        )
        assert always.business_time_between(midnight, next_midnight) == timedelta(
            hours=hours_in_day
        )


def test_a_due_time_across_the_spring_change_keeps_wall_clock_hours() -> None:
    calendar = every_day("09:00-17:00", "Europe/London")

    # Saturday 16:00 + 2 business hours: one on Saturday, one on Sunday (clocks went forward).
    due = calendar.add_business_time(london(2026, 3, 28, 16), timedelta(hours=2))

    assert due == london(2026, 3, 29, 10)
    # 17 hours elapsed, not 18 (arithmetic within one zone is wall-clock: compare in UTC).
    assert due.astimezone(UTC) - london(2026, 3, 28, 16).astimezone(UTC) == timedelta(hours=17)


@pytest.mark.parametrize(
    ("time_zone", "day", "hours", "business_time"),
    [
        ("Europe/London", date(2026, 3, 29), "01:00-02:00", timedelta(0)),
        ("Europe/London", date(2026, 3, 29), "01:30-03:00", timedelta(hours=1)),
        ("Europe/London", date(2026, 3, 29), "00:30-01:30", timedelta(minutes=30)),
        ("America/New_York", date(2026, 3, 8), "02:00-03:00", timedelta(0)),
        ("America/New_York", date(2026, 3, 8), "02:15-02:45, 03:00-04:00", timedelta(hours=1)),
    ],
)
def test_wall_times_in_the_skipped_hour_never_happen(
    time_zone: str, day: date, hours: str, business_time: timedelta
) -> None:
    zone = ZoneInfo(time_zone)
    calendar = BusinessCalendar.weekly(time_zone, {"sun": hours})
    midnight = datetime.combine(day, time(0), tzinfo=zone)

    assert calendar.business_time_between(midnight, midnight + timedelta(days=1)) == business_time


@pytest.mark.parametrize(
    ("time_zone", "day", "hours", "business_time"),
    [
        ("Europe/London", date(2026, 10, 25), "01:00-02:00", timedelta(hours=2)),
        ("Europe/London", date(2026, 10, 25), "01:30-03:00", timedelta(hours=2)),
        ("Europe/London", date(2026, 10, 25), "00:00-01:15", timedelta(hours=1, minutes=30)),
        ("America/New_York", date(2026, 11, 1), "01:00-02:00", timedelta(hours=2)),
        ("America/New_York", date(2026, 11, 1), "00:00-24:00", timedelta(hours=25)),
    ],
)
def test_wall_times_in_the_repeated_hour_happen_twice(
    time_zone: str, day: date, hours: str, business_time: timedelta
) -> None:
    zone = ZoneInfo(time_zone)
    calendar = BusinessCalendar.weekly(time_zone, {"sun": hours})
    midnight = datetime.combine(day, time(0), tzinfo=zone)

    assert calendar.business_time_between(midnight, midnight + timedelta(days=2)) == business_time


def test_a_due_time_in_the_repeated_hour_lands_on_its_second_pass() -> None:
    calendar = BusinessCalendar.weekly("Europe/London", {"sun": "01:00-02:00"})
    first_pass = datetime(2026, 10, 25, 1, tzinfo=LONDON)  # 01:00 BST, 00:00 UTC

    due = calendar.add_business_time(first_pass, timedelta(minutes=90))

    assert due == datetime(2026, 10, 25, 1, 30, fold=1, tzinfo=LONDON)  # 01:30 GMT
    assert due.fold == 1
    assert due.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


# Midnight


def test_a_night_shift_is_two_intervals_either_side_of_midnight() -> None:
    calendar = BusinessCalendar.weekly(
        "America/New_York", {"mon": "22:00-24:00", "tue": "00:00-06:00"}
    )

    assert calendar.is_open(new_york(2026, 11, 30, 23, 59))
    assert calendar.is_open(new_york(2026, 12, 1, 0, 0))
    assert not calendar.is_open(new_york(2026, 12, 1, 6, 0))
    assert calendar.business_time_between(new_york(2026, 11, 30, 21), new_york(2026, 12, 1, 7)) == (
        timedelta(hours=8)
    )
    assert calendar.add_business_time(new_york(2026, 11, 30, 23, 30), timedelta(hours=1)) == (
        new_york(2026, 12, 1, 0, 30)
    )
    assert calendar.add_business_time(new_york(2026, 12, 1, 5), timedelta(hours=2)) == (
        new_york(2026, 12, 7, 23)
    )


def test_a_day_ending_at_midnight_and_the_next_starting_at_midnight() -> None:
    calendar = BusinessCalendar.weekly(
        "Europe/London", {"fri": "18:00-24:00", "sat": "00:00-02:00"}
    )

    assert calendar.next_opening(london(2026, 12, 5, 0)) == london(2026, 12, 5, 0)
    assert not calendar.is_open(london(2026, 12, 5, 2))
    assert calendar.business_time_between(london(2026, 12, 4), london(2026, 12, 6)) == timedelta(
        hours=8
    )


def test_an_interval_past_midnight_is_refused_with_the_way_to_write_it() -> None:
    with pytest.raises(CalendarError, match="22:00-24:00 and 00:00-06:00"):
        BusinessCalendar.weekly("Europe/London", {"mon": "22:00-06:00"})


# 24/7, long spans, pauses


def test_always_open_counts_elapsed_time() -> None:
    calendar = BusinessCalendar.always_open("Europe/London")
    start = london(2026, 10, 24, 12).astimezone(UTC)  # UTC, so adding hours adds elapsed time

    # Over the autumn change: 48 elapsed hours, 47 on the wall clock.
    assert calendar.business_time_between(start, start + timedelta(hours=48)) == timedelta(hours=48)
    assert calendar.add_business_time(start, timedelta(hours=49)) == start + timedelta(hours=49)
    assert calendar.next_opening(start) == start


def test_ten_business_days_out() -> None:
    calendar = office(holiday_country="GB", holiday_subdivision="ENG")
    start = london(2026, 12, 14, 9)  # a Monday

    due = calendar.add_business_time(start, timedelta(hours=80))

    # 14-18 and 21-24 December are nine days; Christmas (Friday) and Boxing Day observed
    # (Monday 28th) are closed; Tuesday 29th is the tenth.
    assert due == london(2026, 12, 29, 17)
    assert calendar.business_time_between(start, due) == timedelta(hours=80)


def test_a_year_of_business_time_round_trips() -> None:
    calendar = office(holiday_country="US", time_zone="America/New_York")
    start = new_york(2026, 1, 1)

    due = calendar.add_business_time(start, timedelta(hours=2000))

    assert calendar.business_time_between(start, due) == timedelta(hours=2000)
    assert calendar.business_time_between(start, new_york(2027, 1, 1)) == timedelta(
        # 2026 has 261 weekdays; 11 federal holidays fall on them (4 July, a Saturday, is
        # observed on Friday 3rd).
        hours=8 * (261 - 11)
    )


def test_pausing_and_resuming_carries_the_remaining_business_time() -> None:
    # How a timer pauses (waiting on the customer) and resumes: the business time used up to
    # the pause is kept; the rest is added from the resume.
    calendar = office()
    started, target = london(2026, 12, 4, 16), timedelta(hours=2)
    paused, resumed = london(2026, 12, 4, 16, 30), london(2026, 12, 8, 10)

    remaining = target - calendar.business_time_between(started, paused)
    due = calendar.add_business_time(resumed, remaining)

    assert remaining == timedelta(minutes=90)
    assert due == london(2026, 12, 8, 11, 30)
    worked = calendar.business_time_between(started, paused) + calendar.business_time_between(
        resumed, due
    )
    assert worked == target


def test_a_pause_over_a_weekend_resumed_outside_hours() -> None:
    calendar = office()
    started = london(2026, 12, 4, 16, 50)  # 10 minutes used on Friday
    paused, resumed = london(2026, 12, 4, 17, 30), london(2026, 12, 7, 7)

    remaining = timedelta(hours=1) - calendar.business_time_between(started, paused)

    assert calendar.add_business_time(resumed, remaining) == london(2026, 12, 7, 9, 50)


def test_a_calendar_closed_for_a_decade_says_so() -> None:
    first = date(2026, 12, 1)
    calendar = office(closed_dates={first + timedelta(days=n) for n in range(3700)})

    with pytest.raises(CalendarError, match="no opening"):
        calendar.add_business_time(london(2026, 12, 1), timedelta(hours=1))


# next_opening


def test_next_opening() -> None:
    calendar = BusinessCalendar.weekly("Europe/London", {"mon-fri": "09:00-12:30, 13:30-18:00"})

    assert calendar.next_opening(london(2026, 12, 1, 10)) == london(2026, 12, 1, 10)
    assert calendar.next_opening(london(2026, 12, 1, 12, 30)) == london(2026, 12, 1, 13, 30)
    assert calendar.next_opening(london(2026, 12, 4, 18)) == london(2026, 12, 7, 9)


def test_next_opening_defaults_to_now(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(datetime(2026, 12, 5, 12, tzinfo=UTC), tick=False)  # a Saturday

    assert office().next_opening() == london(2026, 12, 7, 9)

    time_machine.move_to(datetime(2026, 12, 7, 10, tzinfo=UTC), tick=False)

    assert office().next_opening() == datetime(2026, 12, 7, 10, tzinfo=UTC)


# Building, validation and config


def test_intervals_parse_and_print() -> None:
    assert OpeningInterval.parse("9:00 - 17:30") == OpeningInterval(time(9), time(17, 30))
    assert OpeningInterval.parse("22:00-24:00") == OpeningInterval(time(22), time(0))
    assert str(OpeningInterval(time(0), time(0))) == "00:00-24:00"


def test_weekly_names_ranges_that_wrap_round_the_week() -> None:
    calendar = BusinessCalendar.weekly("UTC", {"fri-mon": "10:00-11:00", "Wednesday": "closed"})

    assert [bool(day) for day in calendar.weekly_hours] == [True, False, False, False] + [True] * 3


def test_config_round_trips_through_json() -> None:
    calendar = BusinessCalendar.weekly(
        "America/New_York",
        {"mon-thu": "09:00-12:30, 13:30-18:00", "fri": "09:00-16:00"},
        holiday_country="US",
        holiday_subdivision="NY",
        closed_dates={date(2026, 12, 24)},
        special_hours={date(2026, 11, 28): "10:00-14:00"},
    )

    config = json.loads(json.dumps(calendar.to_config()))
    rebuilt = BusinessCalendar.from_config(config)

    assert rebuilt == calendar
    assert hash(rebuilt) == hash(calendar)
    assert config["hours"]["sat"] == "closed"
    assert config["special_hours"] == {"2026-11-28": "10:00-14:00"}


def test_a_calendar_pickles_and_copies_with_its_settings() -> None:
    calendar = office(holiday_country="GB", holiday_subdivision="ENG")
    calendar.is_open(london(2026, 12, 1, 10))  # something in its cache

    assert pickle.loads(pickle.dumps(calendar)) == calendar  # noqa: S301 (our own bytes)
    assert copy.deepcopy(calendar) == calendar


def test_the_calendar_is_frozen() -> None:
    calendar = office()

    with pytest.raises(AttributeError):
        calendar.time_zone = "UTC"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: office("Mars/Olympus_Mons"), "unknown time zone 'Mars/Olympus_Mons'"),
        (lambda: office(holiday_country="XX"), "unknown holiday calendar: Country XX"),
        (
            lambda: office(holiday_country="GB", holiday_subdivision="XX"),
            "unknown holiday calendar: .*subdivision XX",
        ),
        (lambda: office(holiday_subdivision="ENG"), "needs its holiday country"),
        (
            lambda: BusinessCalendar.weekly("UTC", {"mon": "09:00-12:30, 12:00-18:00"}),
            "Monday's opening intervals 09:00-12:30 and 12:00-18:00 overlap",
        ),
        (
            lambda: BusinessCalendar.weekly("UTC", {"tue": "17:00-09:00"}),
            "17:00-09:00 ends before it starts",
        ),
        (lambda: BusinessCalendar.weekly("UTC", {"tue": "09:00-09:00"}), "ends before it starts"),
        (lambda: BusinessCalendar.weekly("UTC", {"tue": "9 to 5"}), "not an opening interval"),
        (lambda: BusinessCalendar.weekly("UTC", {"tue": "09:00-25:00"}), "not an opening"),
        (lambda: BusinessCalendar.weekly("UTC", {"mon-fri": "closed"}), "at least one weekday"),
        (lambda: BusinessCalendar.weekly("UTC", {"mon-fri": "9:00-17:00", "fri": ""}), "twice"),
        (lambda: BusinessCalendar.weekly("UTC", {"funday": "9:00-17:00"}), "not a weekday"),
        (lambda: BusinessCalendar("UTC", weekly_hours=((),) * 6), "seven days"),
        (lambda: OpeningInterval(time(9, 0, 30), time(17)), "whole minutes"),
        (lambda: OpeningInterval(time(9, tzinfo=UTC), time(17)), "without a zone"),
        (
            lambda: office(closed_dates={datetime(2026, 12, 24, tzinfo=UTC)}),
            "closed_dates holds dates",
        ),
        (
            lambda: BusinessCalendar.weekly(
                "UTC",
                {"mon": "09:00-17:00"},
                closed_dates={date(2026, 12, 24)},
                special_hours={date(2026, 12, 24): "09:00-12:00"},
            ),
            "both a closed date and has special hours",
        ),
        (lambda: BusinessCalendar.from_config({"time_zone": "UTC"}), "'hours' is missing"),
        (
            lambda: BusinessCalendar.from_config({"time_zone": "UTC", "hours": {}, "tz": 1}),
            "unknown calendar settings: tz",
        ),
        (
            lambda: BusinessCalendar.from_config(
                {"time_zone": "UTC", "hours": {"mon": "9:00-17:00"}, "closed_dates": ["24/12"]}
            ),
            "not a date",
        ),
        (
            lambda: BusinessCalendar.from_config({"time_zone": "UTC", "hours": "9:00-17:00"}),
            "'hours' maps days to hours",
        ),
    ],
)
def test_bad_input_is_refused_with_a_reason(build: Callable[[], object], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        build()


# The property: business time equals a minute-by-minute count over the same calendar

ZONES = [
    "UTC",
    "Europe/London",
    "Europe/Berlin",  # forward on the last Sunday of March at 02:00, back in October at 03:00
    "America/New_York",
    "Australia/Lord_Howe",  # a half-hour daylight-saving shift
    "America/Santiago",  # changes at midnight: 00:00 repeated from 23:00, or skipped
    "Asia/Kolkata",  # +05:30, no daylight saving
]
# Days on or near a change in one of the zones above, in 2026.
DST_DAYS = [
    date(2026, 3, 8),
    date(2026, 3, 29),
    date(2026, 4, 4),
    date(2026, 9, 6),
    date(2026, 10, 4),
    date(2026, 10, 25),
    date(2026, 11, 1),
]
# Minutes near the changes (00:00, 01:00-03:00, 23:00, 24:00), drawn often so intervals begin
# and end inside skipped and repeated hours.
TRICKY_MINUTES = [0, 30, 60, 90, 120, 135, 150, 180, 23 * 60, 23 * 60 + 30, 24 * 60]
MINUTES = st.sampled_from(TRICKY_MINUTES * 40 + list(range(24 * 60 + 1)))  # a third tricky
MINUTE = timedelta(minutes=1)
# Public holiday calendars, national and regional (a region's holidays differ from its
# country's: Epiphany in Bavaria, St Andrew's Day in Scotland, Lincoln's Birthday in New York).
# Holidays of a region and not of its country: a calendar that ignored the region would count
# these days as open. Drawn often, with the day's weekday open, so the property sees them.
REGIONAL_HOLIDAYS = [
    ("DE", "BY", date(2026, 1, 6)),  # Epiphany, a Tuesday
    ("US", "NY", date(2026, 2, 12)),  # Lincoln's Birthday, a Thursday
    ("GB", "SCT", date(2026, 11, 30)),  # St Andrew's Day, a Monday
    ("DE", "BE", date(2026, 3, 8)),  # International Women's Day, a Sunday
]
HOLIDAY_CALENDARS = [
    (None, None),
    (None, None),
    ("GB", None),
    ("GB", "ENG"),
    ("GB", "SCT"),
    ("US", None),
    ("US", "NY"),
    ("DE", None),
    ("DE", "BY"),
    ("DE", "BE"),
    ("CL", None),
]


def minute_time(minute: int) -> time:
    return time(0) if minute == 24 * 60 else time(minute // 60, minute % 60)


@st.composite
def day_hours(draw: st.DrawFn) -> tuple[OpeningInterval, ...]:
    points = sorted(set(draw(st.lists(MINUTES, max_size=6))))
    return tuple(
        OpeningInterval(minute_time(start), minute_time(end))
        for start, end in zip(points[::2], points[1::2], strict=False)
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[BusinessCalendar, datetime, datetime, int]:
    anchor = draw(
        st.one_of(
            st.sampled_from(DST_DAYS),
            st.dates(date(2026, 1, 1), date(2027, 12, 31)),
        )
    )
    weekly = draw(st.lists(day_hours(), min_size=7, max_size=7))
    if not any(weekly):
        weekly[0] = (OpeningInterval(time(9), time(17)),)
    country, subdivision = draw(st.sampled_from(HOLIDAY_CALENDARS))
    if draw(st.integers(0, 3)) == 0:
        country, subdivision, anchor = draw(st.sampled_from(REGIONAL_HOLIDAYS))
        if not weekly[anchor.weekday()]:
            weekly[anchor.weekday()] = (OpeningInterval(time(9), time(17)),)
    nearby_dates = st.dates(anchor - timedelta(days=5), anchor + timedelta(days=20))
    special = dict(draw(st.lists(st.tuples(nearby_dates, day_hours()), max_size=3)))
    closed = set(draw(st.lists(nearby_dates, max_size=4))) - set(special)
    calendar = BusinessCalendar(
        time_zone=draw(st.sampled_from(ZONES)),
        weekly_hours=tuple(weekly),
        holiday_country=country,
        holiday_subdivision=subdivision,
        closed_dates=frozenset(closed),
        special_hours=special,
    )
    midnight = datetime.combine(anchor, time(0), tzinfo=UTC)
    start = midnight + draw(st.integers(-4 * 24 * 60, 4 * 24 * 60)) * MINUTE
    end = start + draw(st.integers(-60, 14 * 24 * 60)) * MINUTE
    return calendar, start, end, draw(st.integers(1, 3000))


def open_minutes(calendar: BusinessCalendar, start: datetime, end: datetime) -> list[datetime]:
    """Every minute in [start, end) whose wall time lies in its local date's hours, worked
    out from the calendar's settings alone."""
    zone = ZoneInfo(calendar.time_zone)
    public = (
        holidays.country_holidays(
            calendar.holiday_country,
            subdiv=calendar.holiday_subdivision,
            years=range(2025, 2029),
        )
        if calendar.holiday_country
        else {}
    )

    def hours(day: date) -> tuple[OpeningInterval, ...]:
        if day in calendar.special_hours:
            return calendar.special_hours[day]
        if day in calendar.closed_dates or day in public:
            return ()
        return calendar.weekly_hours[day.weekday()]

    found = []
    instant = start
    while instant < end:
        local = instant.astimezone(zone)
        minute = local.hour * 60 + local.minute
        if any(i.start_minute <= minute < i.end_minute for i in hours(local.date())):
            found.append(instant)
        instant += MINUTE
    return found


@settings(
    max_examples=150,
    deadline=None,
    database=None,  # keeps .hypothesis/ out of the working tree; failures print a reproducer
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenarios())
def test_business_time_equals_a_minute_by_minute_count(
    scenario: tuple[BusinessCalendar, datetime, datetime, int],
) -> None:
    calendar, start, end, wanted_minutes = scenario

    counted = open_minutes(calendar, start, end)

    assert calendar.business_seconds_between(start, end) == 60 * len(counted)
    if start < end:
        assert calendar.is_open(start) == (counted[:1] == [start])
    if wanted_minutes <= len(counted):
        # Due when the wanted-th open minute has gone by.
        due = calendar.add_business_time(start, wanted_minutes * MINUTE)
        assert due == counted[wanted_minutes - 1] + MINUTE
        assert calendar.next_opening(start) == counted[0]


@settings(max_examples=200, deadline=None, database=None)
@given(scenarios(), st.integers(0, 60_000_000 - 1), st.integers(0, 10**6))
def test_between_a_start_and_its_due_time_is_the_duration(
    scenario: tuple[BusinessCalendar, datetime, datetime, int], off_minute: int, share: int
) -> None:
    calendar, start, _end, _minutes = scenario
    start += timedelta(microseconds=off_minute)
    # Any share of the business time in the next four weeks, to the microsecond (a sparse
    # calendar could otherwise take centuries to reach a fixed duration).
    horizon = calendar.business_time_between(start, start + timedelta(weeks=4))
    duration = timedelta(microseconds=horizon // timedelta(microseconds=1) * share // 10**6)

    due = calendar.add_business_time(start, duration)

    assert calendar.business_time_between(start, due) == duration
    if duration:
        # The first such instant: a microsecond earlier, not all of it has elapsed.
        assert calendar.business_time_between(start, due - timedelta(microseconds=1)) < duration
