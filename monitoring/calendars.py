"""Business-time calendars: when a care team is open, and how much open time lies between two
instants. SLA timers count on them: a 60-minute target on a 09:00-17:00 weekday calendar, asked
at 16:30 on a Friday, is due at 09:30 on Monday.

Pure Python, no database: a policy stores ``calendar.to_config()`` (JSON) and rebuilds the
calendar with ``BusinessCalendar.from_config``.

What counts as open. An instant is open when its wall-clock time in the calendar's zone lies in
one of the opening intervals of its local date. Hence a 09:00-17:00 day is 8 hours on both
daylight-saving days; wall times inside a skipped hour never happen (01:00-02:00 on the
spring-forward day holds no business time); wall times of a repeated hour happen twice
(01:00-02:00 on the fall-back day holds two hours). Counts are exact to the microsecond.

How it stays fast. Instants are integer microseconds since the epoch. Time is walked one UTC day
at a time; a UTC day's open spans are worked out once, from the zone's offsets during that day
and the hours of the local dates it touches, and cached on the calendar. A due time ten business
days out looks at about fourteen cached days, never at minutes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from types import MappingProxyType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_FULL_NAMES = tuple(name.lower() for name in _WEEKDAY_NAMES)
CLOSED = "closed"

_MICROSECOND = timedelta(microseconds=1)
_MINUTE = 60 * 1_000_000
_DAY = 24 * 60 * _MINUTE
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH_WEEKDAY = date(1970, 1, 1).weekday()
_MIDNIGHT = time(0)
# Offsets are probed this often within a UTC day to find transitions. Two transitions closer
# together than this that cancel each other out would go unseen; tzdata's are months apart.
_OFFSET_PROBE = 6 * 60 * _MINUTE
# A calendar with no opening for this many days in a row (every date a closed date, say)
# cannot answer "when is it next open": say so rather than walk on for ever.
_MAX_CLOSED_DAYS = 3660
# Cached UTC days per calendar; about 55 years, cleared whole when full.
_DAY_CACHE_LIMIT = 20_000

_INTERVAL_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})\s*$")

# Open spans as (start, end) microseconds since the epoch, UTC, end exclusive.
_Spans = tuple[tuple[int, int], ...]


class _UtcDay(NamedTuple):
    """One UTC day's open spans, in order, and their total length."""

    spans: _Spans
    total: int


class CalendarError(ValueError):
    """A calendar that cannot be built as given, or a question it cannot answer."""


@dataclass(frozen=True)
class OpeningInterval:
    """Open from ``start`` until ``end`` (exclusive) on a local date, on whole minutes.

    An ``end`` of 00:00 means midnight at the end of the day (written 24:00), so 00:00-24:00
    is a whole day. An interval never crosses midnight: a night shift is two intervals,
    22:00-24:00 on one weekday and 00:00-06:00 on the next.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment.tzinfo is not None:
                raise CalendarError(
                    f"opening times are wall-clock times without a zone, not {moment}; "
                    "the calendar's time_zone places them"
                )
            if moment.second or moment.microsecond:
                raise CalendarError(f"opening times are on whole minutes, not {moment}")
        if self.end_minute <= self.start_minute:
            raise CalendarError(
                f"opening interval {self} ends before it starts; an interval past midnight is "
                "two intervals, e.g. 22:00-24:00 and 00:00-06:00 on the next day"
            )

    @property
    def start_minute(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minute(self) -> int:
        return 24 * 60 if self.end == _MIDNIGHT else self.end.hour * 60 + self.end.minute

    @classmethod
    def parse(cls, text: str) -> OpeningInterval:
        """``"09:00-17:30"``; ``24:00`` as the end means midnight at the end of the day."""
        match = _INTERVAL_RE.match(text)
        if match is None:
            raise CalendarError(f"{text!r} is not an opening interval like 09:00-17:30")
        start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
        if end_hour == 24 and end_minute == 0:
            end_hour = 0  # 24:00 is written 00:00 as an end
        try:
            start, end = time(start_hour, start_minute), time(end_hour, end_minute)
        except ValueError as error:
            raise CalendarError(f"{text!r} is not an opening interval: {error}") from error
        return cls(start, end)

    def __str__(self) -> str:
        end = "24:00" if self.end == _MIDNIGHT else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end}"


DayHours = tuple[OpeningInterval, ...]


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours per weekday in one time zone, with public holidays and custom dates.

    ``weekly_hours`` holds seven days, Monday first; an empty day is closed. A date's hours are,
    first match wins: its ``special_hours`` (a Sunday opened for a sale, shorter hours on
    Christmas Eve, a public holiday worked after all), closed if in ``closed_dates`` or a public
    holiday of ``holiday_country`` / ``holiday_subdivision`` (the ``holidays`` library's codes,
    e.g. ``"GB"`` / ``"ENG"``, observed days included), else its weekday's hours.

    Build one with ``weekly(...)``, ``always_open()`` or ``from_config(...)``; bad input raises
    ``CalendarError`` naming the problem.
    """

    time_zone: str
    weekly_hours: tuple[DayHours, ...]
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closed_dates: frozenset[date] = frozenset()
    special_hours: Mapping[date, DayHours] = field(default_factory=dict)

    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _weekly_minutes: tuple[tuple[tuple[int, int], ...], ...] = field(
        init=False, repr=False, compare=False
    )
    _special_minutes: dict[int, tuple[tuple[int, int], ...]] = field(
        init=False, repr=False, compare=False
    )
    _closed_days: frozenset[int] = field(init=False, repr=False, compare=False)
    _day_cache: dict[int, _UtcDay] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as error:
            raise CalendarError(f"unknown time zone {self.time_zone!r}") from error
        weekly = tuple(self.weekly_hours)
        if len(weekly) != 7:
            raise CalendarError(f"weekly_hours needs seven days, Monday first, not {len(weekly)}")
        weekly = tuple(
            _checked_day(day, _WEEKDAY_NAMES[number]) for number, day in enumerate(weekly)
        )
        if not any(weekly):
            raise CalendarError(
                "a calendar needs opening hours on at least one weekday (always_open() for 24/7)"
            )
        if self.holiday_subdivision and not self.holiday_country:
            raise CalendarError("a holiday subdivision needs its holiday country")
        if self.holiday_country:
            _check_holiday_calendar(self.holiday_country, self.holiday_subdivision)
        closed = frozenset(self.closed_dates)
        special = {
            day: _checked_day(hours, day.isoformat())
            for day, hours in sorted(
                (_checked_date(day, "special_hours"), hours)
                for day, hours in self.special_hours.items()
            )
        }
        for day in closed:
            _checked_date(day, "closed_dates")
            if day in special:
                raise CalendarError(f"{day} is both a closed date and has special hours")

        set_field = object.__setattr__  # frozen: fields are set once, here
        set_field(self, "weekly_hours", weekly)
        set_field(self, "closed_dates", closed)
        set_field(self, "special_hours", MappingProxyType(special))
        set_field(self, "_zone", zone)
        set_field(self, "_weekly_minutes", tuple(_minutes(day) for day in weekly))
        set_field(
            self,
            "_special_minutes",
            {_day_number(day): _minutes(hours) for day, hours in special.items()},
        )
        set_field(self, "_closed_days", frozenset(_day_number(day) for day in closed))

    def __hash__(self) -> int:
        return hash(
            (
                self.time_zone,
                self.weekly_hours,
                self.holiday_country,
                self.holiday_subdivision,
                self.closed_dates,
                tuple(self.special_hours.items()),
            )
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (Django's cache, say) as its config: the read-only mapping and the caches
        # do not pickle, and need not.
        return (BusinessCalendar.from_config, (self.to_config(),))

    # Building

    @classmethod
    def always_open(cls, time_zone: str = "UTC") -> BusinessCalendar:
        """24/7, no holidays: business time is elapsed time."""
        whole_day = (OpeningInterval(_MIDNIGHT, _MIDNIGHT),)
        return cls(time_zone=time_zone, weekly_hours=(whole_day,) * 7)

    @classmethod
    def weekly(
        cls,
        time_zone: str,
        hours: Mapping[str, str],
        *,
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
        closed_dates: Iterable[date] = (),
        special_hours: Mapping[date, str] | None = None,
    ) -> BusinessCalendar:
        """A calendar from text, e.g. ``{"mon-fri": "09:00-12:30, 13:30-18:00", "sat":
        "10:00-14:00"}``; days not named are closed, and ``"closed"`` closes one explicitly."""
        weekly: list[DayHours | None] = [None] * 7
        for days, text in hours.items():
            day_hours = _parse_day(text)
            for number in _parse_weekdays(days):
                if weekly[number] is not None:
                    raise CalendarError(f"{_WEEKDAY_NAMES[number]} is given twice in the hours")
                weekly[number] = day_hours
        return cls(
            time_zone=time_zone,
            weekly_hours=tuple(day or () for day in weekly),
            holiday_country=holiday_country or None,
            holiday_subdivision=holiday_subdivision or None,
            closed_dates=frozenset(closed_dates),
            special_hours={day: _parse_day(text) for day, text in (special_hours or {}).items()},
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BusinessCalendar:
        """The calendar that ``to_config()`` described (a JSON-able dict)."""
        unknown = set(config) - {
            "time_zone",
            "hours",
            "holiday_country",
            "holiday_subdivision",
            "closed_dates",
            "special_hours",
        }
        if unknown:
            raise CalendarError(f"unknown calendar settings: {', '.join(sorted(unknown))}")
        for name in ("hours", "special_hours"):
            if not isinstance(config.get(name, {}), Mapping):
                raise CalendarError(f"calendar setting {name!r} maps days to hours")
        try:
            return cls.weekly(
                config["time_zone"],
                config["hours"],
                holiday_country=config.get("holiday_country"),
                holiday_subdivision=config.get("holiday_subdivision"),
                closed_dates=[_parse_date(text) for text in config.get("closed_dates", ())],
                special_hours={
                    _parse_date(day): text for day, text in config.get("special_hours", {}).items()
                },
            )
        except KeyError as error:
            raise CalendarError(f"calendar setting {error} is missing") from error

    def to_config(self) -> dict[str, Any]:
        """JSON-able settings that ``from_config`` turns back into an equal calendar."""
        return {
            "time_zone": self.time_zone,
            "hours": {
                name: _format_day(day)
                for name, day in zip(WEEKDAYS, self.weekly_hours, strict=True)
            },
            "holiday_country": self.holiday_country,
            "holiday_subdivision": self.holiday_subdivision,
            "closed_dates": sorted(day.isoformat() for day in self.closed_dates),
            "special_hours": {
                day.isoformat(): _format_day(hours) for day, hours in self.special_hours.items()
            },
        }

    # Asking

    def is_open(self, at: datetime) -> bool:
        instant = _micros(at)
        return any(start <= instant < end for start, end in self._utc_day(instant // _DAY).spans)

    def next_opening(self, at: datetime | None = None) -> datetime:
        """The first open instant at or after ``at`` (now by default): ``at`` itself if open."""
        if at is None:
            at = datetime.now(UTC)
        instant = _micros(at)
        for utc_day in self._days_open_after(instant):
            for start, end in utc_day.spans:
                if end > instant:
                    return _datetime(max(start, instant), at.tzinfo)
        raise AssertionError("_days_open_after never runs dry")  # pragma: no cover

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time in [start, end); zero when ``end`` is not after ``start``."""
        return timedelta(microseconds=self._open_between(_micros(start), _micros(end)))

    def business_seconds_between(self, start: datetime, end: datetime) -> int:
        """Whole seconds of open time in [start, end); 0 when ``end`` is not after ``start``."""
        return self._open_between(_micros(start), _micros(end)) // 1_000_000

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The due time: the first instant by which ``duration`` of open time has elapsed since
        ``start`` (counting from the next opening when ``start`` is outside hours), in
        ``start``'s zone. Always ``business_time_between(start, due) == duration``."""
        if duration < timedelta(0):
            raise ValueError(f"business time to add must not be negative, not {duration}")
        remaining = duration // _MICROSECOND
        if remaining == 0:
            return start
        instant = _micros(start)
        for utc_day in self._days_open_after(instant):
            if utc_day.spans[0][0] >= instant and utc_day.total < remaining:
                remaining -= utc_day.total  # the whole day is used up: skip its spans
                continue
            for span_start, span_end in utc_day.spans:
                if span_end <= instant:
                    continue
                span_start = max(span_start, instant)
                if span_end - span_start >= remaining:
                    return _datetime(span_start + remaining, start.tzinfo)
                remaining -= span_end - span_start
        raise AssertionError("_days_open_after never runs dry")  # pragma: no cover

    # Counting

    def _days_open_after(self, instant: int) -> Iterator[_UtcDay]:
        """The UTC days, from ``instant``'s on, that have open time after ``instant``."""
        day = instant // _DAY
        closed_days = 0
        while True:
            utc_day = self._utc_day(day)
            if utc_day.spans and utc_day.spans[-1][1] > instant:
                closed_days = 0
                yield utc_day
            else:
                closed_days += 1
                if closed_days > _MAX_CLOSED_DAYS:
                    raise CalendarError(
                        f"the {self.time_zone} calendar has no opening for {_MAX_CLOSED_DAYS} days"
                    )
            day += 1

    def _open_between(self, first: int, last: int) -> int:
        if last <= first:
            return 0
        first_day, last_day = first // _DAY, (last - 1) // _DAY
        total = self._open_within(first_day, first, last)
        if last_day > first_day:
            # Whole days in between by their totals; only the two ends look at spans.
            total += sum(self._utc_day(day).total for day in range(first_day + 1, last_day))
            total += self._open_within(last_day, first, last)
        return total

    def _open_within(self, day: int, first: int, last: int) -> int:
        total = 0
        for start, end in self._utc_day(day).spans:
            overlap = min(end, last) - max(start, first)
            if overlap > 0:
                total += overlap
        return total

    def _utc_day(self, day: int) -> _UtcDay:
        utc_day = self._day_cache.get(day)
        if utc_day is None:
            if len(self._day_cache) >= _DAY_CACHE_LIMIT:
                self._day_cache.clear()
            spans = self._compute_utc_day_spans(day)
            utc_day = _UtcDay(spans, sum(end - start for start, end in spans))
            self._day_cache[day] = utc_day
        return utc_day

    def _compute_utc_day_spans(self, day: int) -> _Spans:
        """The open spans of one UTC day, in order, touching spans merged."""
        spans: list[tuple[int, int]] = []
        for segment_start, segment_end, offset in self._offset_segments(day * _DAY):
            # Within a segment of constant offset, wall time is UTC plus the offset, so each
            # local date's intervals map straight back; a skipped hour lies between segments
            # (no instant has it) and a repeated hour lies in both (counted twice).
            wall_start, wall_end = segment_start + offset, segment_end + offset
            for local_day in range(wall_start // _DAY, (wall_end - 1) // _DAY + 1):
                midnight = local_day * _DAY
                for open_minute, close_minute in self._local_hours(local_day):
                    start = max(midnight + open_minute * _MINUTE, wall_start) - offset
                    end = min(midnight + close_minute * _MINUTE, wall_end) - offset
                    if start >= end:
                        continue
                    if spans and spans[-1][1] == start:
                        spans[-1] = (spans[-1][0], end)
                    else:
                        spans.append((start, end))
        return tuple(spans)

    def _offset_segments(self, day_start: int) -> list[tuple[int, int, int]]:
        """(start, end, UTC offset) pieces of constant offset covering one UTC day."""
        day_end = day_start + _DAY
        segments = []
        segment_start, offset = day_start, self._offset(day_start)
        probe = day_start
        while probe < day_end - 1:
            next_probe = min(probe + _OFFSET_PROBE, day_end - 1)
            while self._offset(next_probe) != offset:
                # The offset changed in (probe, next_probe]: find the first microsecond of it.
                before, after = probe, next_probe
                while after - before > 1:
                    middle = (before + after) // 2
                    if self._offset(middle) == offset:
                        before = middle
                    else:
                        after = middle
                segments.append((segment_start, after, offset))
                segment_start, offset, probe = after, self._offset(after), after
            probe = next_probe
        segments.append((segment_start, day_end, offset))
        return segments

    def _offset(self, instant: int) -> int:
        offset = _datetime(instant, self._zone).utcoffset()
        assert offset is not None  # a ZoneInfo always knows its offset
        return offset // _MICROSECOND

    def _local_hours(self, local_day: int) -> tuple[tuple[int, int], ...]:
        """(open, close) minutes of one local date, by epoch day number."""
        special = self._special_minutes.get(local_day)
        if special is not None:
            return special
        if local_day in self._closed_days:
            return ()
        if self.holiday_country:
            the_date = date.fromordinal(local_day + _EPOCH_ORDINAL)
            public = _public_holidays(self.holiday_country, self.holiday_subdivision, the_date.year)
            if the_date in public:
                return ()
        return self._weekly_minutes[(local_day + _EPOCH_WEEKDAY) % 7]


@lru_cache(maxsize=256)
def _check_holiday_calendar(country: str, subdivision: str | None) -> None:
    # Cached: building the library's calendar takes about a millisecond.
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as error:
        raise CalendarError(f"unknown holiday calendar: {error}") from error


@lru_cache(maxsize=1024)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    # Shared by all calendars: policies rebuild theirs often, the holiday rules are the same.
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))


def _micros(at: datetime) -> int:
    if at.utcoffset() is None:
        raise ValueError(f"business time needs aware datetimes, not the naive {at}")
    return (at - _EPOCH) // _MICROSECOND


def _datetime(instant: int, zone: tzinfo | None) -> datetime:
    return (_EPOCH + timedelta(microseconds=instant)).astimezone(zone)


def _day_number(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def _checked_date(day: object, where: str) -> date:
    # A datetime is a date too, but never equals one: it would silently never match.
    if not isinstance(day, date) or isinstance(day, datetime):
        raise CalendarError(f"{where} holds dates, not {day!r}")
    return day


def _checked_day(day: Iterable[OpeningInterval], name: str) -> DayHours:
    if isinstance(day, str | OpeningInterval):
        raise CalendarError(f"{name}'s hours are a sequence of OpeningIntervals, not {day!r}")
    intervals = list(day)
    for interval in intervals:
        if not isinstance(interval, OpeningInterval):
            raise CalendarError(f"{name}'s hours hold OpeningIntervals, not {interval!r}")
    intervals.sort(key=lambda interval: interval.start_minute)
    for earlier, later in pairwise(intervals):
        if earlier.end_minute > later.start_minute:
            raise CalendarError(f"{name}'s opening intervals {earlier} and {later} overlap")
    return tuple(intervals)


def _minutes(day: DayHours) -> tuple[tuple[int, int], ...]:
    return tuple((interval.start_minute, interval.end_minute) for interval in day)


def _parse_day(text: str) -> DayHours:
    if text.strip().lower() in ("", CLOSED):
        return ()
    return tuple(OpeningInterval.parse(part) for part in text.split(","))


def _format_day(day: DayHours) -> str:
    return ", ".join(str(interval) for interval in day) or CLOSED


def _parse_weekdays(text: str) -> list[int]:
    """``"mon"`` or a range ``"mon-fri"`` (``"sat-mon"`` wraps round the week)."""
    names = [name.strip().lower() for name in text.split("-")]
    names = [name[:3] if name in _FULL_NAMES else name for name in names]
    if len(names) > 2 or not all(name in WEEKDAYS for name in names):
        raise CalendarError(f"{text!r} is not a weekday like 'mon' or a range like 'mon-fri'")
    first, last = WEEKDAYS.index(names[0]), WEEKDAYS.index(names[-1])
    return [(first + step) % 7 for step in range((last - first) % 7 + 1)]


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError) as error:
        raise CalendarError(f"{text!r} is not a date like 2026-12-24") from error
