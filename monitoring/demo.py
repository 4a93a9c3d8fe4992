"""The demo organisation's SLA policies (``seed_demo`` calls ``seed_demo_sla``)."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from careinbox.accounts.models import Organization
from monitoring.calendars import BusinessCalendar
from monitoring.models import SlaPolicy
from tickets.models import Priority

# The demo's care team works Monday to Friday, 08:00-20:00 in London, closed on England's public
# holidays and on its own company day; Urgent tickets are answered around the clock.
DEMO_OFFICE_HOURS = BusinessCalendar.weekly(
    "Europe/London",
    {"mon-fri": "08:00-20:00"},
    holiday_country="GB",
    holiday_subdivision="ENG",
    closed_dates=[date(2026, 12, 31), date(2027, 12, 31)],
)
DEMO_AROUND_THE_CLOCK = BusinessCalendar.always_open("Europe/London")
DEMO_POLICIES = (
    (
        "Urgent, around the clock",
        Priority.URGENT,
        DEMO_AROUND_THE_CLOCK,
        {"first": 15, "next": 30, "offline": 60, "resolution": 8 * 60, "close": 24 * 60},
    ),
    (
        "Office hours (Mon-Fri 08:00-20:00, London)",
        None,
        DEMO_OFFICE_HOURS,
        {"first": 60, "next": 120, "offline": 240, "resolution": 3 * 720, "close": 5 * 720},
    ),
)


@transaction.atomic
def seed_demo_sla(org: Organization) -> list[SlaPolicy]:
    """Two policies, so the demo shows both calendars: Urgent 24/7 first, then office hours
    (a catch-all, with England's holidays) for everything else.

    Only into an organisation that has no policies of its own yet (the automatic "Default"
    that no timer uses does not count, and goes): what an admin edited in the settings area
    survives the next ``make run``. Returns the policies created."""
    policies = SlaPolicy.objects.filter(organization=org)
    policies.filter(name="Default", timers__isnull=True).delete()
    if policies.exists():
        return []
    created = []
    for position, (name, priority, calendar, minutes) in enumerate(DEMO_POLICIES, start=1):
        created.append(
            SlaPolicy.objects.create(
                organization=org,
                name=name,
                position=position,
                priority=priority,
                time_zone=calendar.time_zone,
                calendar=calendar.to_config(),
                first_response_minutes=minutes["first"],
                next_response_minutes=minutes["next"],
                take_offline_minutes=minutes["offline"],
                resolution_minutes=minutes["resolution"],
                close_out_minutes=minutes["close"],
            )
        )
    return created
