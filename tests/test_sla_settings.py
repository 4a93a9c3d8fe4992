"""The "SLA policies" settings section: admins only, every change audited and applied to the
running timers as the policy says, and no change that leaves tickets without an SLA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse

from careinbox.accounts.models import AuditEntry, Role
from careinbox.celery import app as celery_app
from monitoring.calendars import BusinessCalendar
from monitoring.models import Metric, SlaEventKind, SlaPolicy, SlaTimer, TimerState
from monitoring.policies import org_policies, policy_for
from monitoring.services import sla_start
from tests.conftest import Persona
from tests.factories import MembershipFactory, OrganizationFactory, TicketFactory, UserFactory
from tickets.models import Priority, Ticket

pytestmark = pytest.mark.django_db

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
LIST = reverse("monitoring:settings-policies")
CREATE = reverse("monitoring:settings-policy-create")


@pytest.fixture
def at_monday(time_machine: Any) -> None:
    time_machine.move_to(MONDAY, tick=False)


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Tasks queued after commit run in-process (the real task code, no broker)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def _edit(policy: SlaPolicy) -> str:
    return reverse("monitoring:settings-policy-edit", args=[policy.pk])


def _delete(policy: SlaPolicy) -> str:
    return reverse("monitoring:settings-policy-delete", args=[policy.pk])


def _move(policy: SlaPolicy, direction: str) -> str:
    return reverse("monitoring:settings-policy-move", args=[policy.pk, direction])


def _form(**changes: Any) -> dict[str, Any]:
    """A complete form as the page posts it: a Berlin office, Bavarian holidays."""
    form: dict[str, Any] = {
        "name": "Office",
        "brand": "",
        "platform": "",
        "social_account": "",
        "priority": "",
        "first_response_minutes": "60",
        "next_response_minutes": "",
        "take_offline_minutes": "",
        "resolution_minutes": "",
        "close_out_minutes": "",
        "warning_percent": "75",
        "apply_to_running": "yes",
        "calendar_kind": "hours",
        "time_zone": "Europe/Berlin",
        "hours_mon": "09:00-17:00",
        "hours_tue": "09:00-17:00",
        "hours_wed": "09:00-17:00",
        "hours_thu": "09:00-17:00",
        "hours_fri": "09:00-13:00, 14:00-17:00",
        "hours_sat": "",
        "hours_sun": "",
        "holiday_country": "DE",
        "holiday_subdivision": "by",
        "closed_dates": "2026-12-24\n2026-12-31",
        "special_hours": "2026-12-23 09:00-12:00",
    }
    return {**form, **changes}


def _policy_form(policy: SlaPolicy, **changes: Any) -> dict[str, Any]:
    """The edit form of ``policy`` as the page fills it in, with ``changes``."""
    page = _form(
        name=policy.name,
        priority=policy.priority or "",
        brand=policy.brand_id or "",
        time_zone=policy.time_zone,
        calendar_kind="always",
        holiday_country="",
        holiday_subdivision="",
        closed_dates="",
        special_hours="",
        apply_to_running="yes" if policy.apply_to_running else "no",
        warning_percent=policy.warning_percent,
    )
    for metric in Metric.values:
        value = policy.target_minutes(metric)
        page[f"{metric}_minutes"] = "" if value is None else str(value)
    return {**page, **changes}


def _names(org_id: int) -> list[str]:
    return [policy.name for policy in org_policies(org_id)]


def _timer(ticket: Ticket, metric: str = Metric.FIRST_RESPONSE) -> SlaTimer:
    return SlaTimer.objects.filter(ticket=ticket, metric=metric).latest("started_at", "pk")


def _ticket(org_admin: Persona, **fields: Any) -> Ticket:
    ticket = TicketFactory(social_account__brand__organization=org_admin.organization, **fields)
    sla_start(ticket=ticket)
    return ticket


def test_the_section_is_for_admins_of_the_organisation_only(
    org_admin: Persona, manager: Persona, agent: Persona, client: Any
) -> None:
    policy = org_policies(org_admin.organization.pk)[0]
    page = org_admin.client().get(LIST)
    assert page.status_code == 200 and "Default" in page.content.decode()
    assert 'href="/monitoring/settings/policies/"' in page.content.decode()  # in the side nav
    for persona in (manager, agent):
        assert persona.client().get(LIST).status_code == 404
        assert persona.client().post(_delete(policy)).status_code == 404
    assert client.get(LIST).status_code == 302  # to the login page
    # An admin of another organisation: Acme's policy ids are a 404, never a 403.
    other = OrganizationFactory(name="Globex", slug="globex")
    globex_admin = UserFactory(username="gina")
    MembershipFactory(user=globex_admin, organization=other, role=Role.ADMIN)
    intruder = Persona(globex_admin, other, Role.ADMIN).client()
    assert intruder.get(_edit(policy)).status_code == 404
    assert intruder.post(_delete(policy)).status_code == 404
    assert intruder.post(_move(policy, "down")).status_code == 404
    assert SlaPolicy.objects.filter(pk=policy.pk).exists()


def test_an_admin_adds_a_business_hours_policy_with_holidays(org_admin: Persona) -> None:
    org_admin.organization.time_zone = "Europe/Lisbon"
    org_admin.organization.save()
    client = org_admin.client()
    # The new policy's zone is the organisation's until the admin picks another.
    assert '<option value="Europe/Lisbon" selected>' in client.get(CREATE).content.decode()
    response = client.post(CREATE, _form(priority=str(Priority.HIGH), name="High, office"))
    assert response.status_code == 302
    policy = SlaPolicy.objects.get(name="High, office")
    policy.refresh_from_db()
    calendar = policy.business_calendar
    assert calendar == BusinessCalendar.weekly(
        "Europe/Berlin",
        {"mon-thu": "09:00-17:00", "fri": "09:00-13:00, 14:00-17:00"},
        holiday_country="DE",
        holiday_subdivision="BY",
        closed_dates=[date(2026, 12, 24), date(2026, 12, 31)],
        special_hours={date(2026, 12, 23): "09:00-12:00"},
    )
    # Epiphany (6 January) is a public holiday in Bavaria.
    assert not calendar.is_open(datetime(2027, 1, 6, 10, 0, tzinfo=UTC))
    # Narrowed, so it goes above the catch-all, which stays last.
    assert _names(org_admin.organization.pk) == ["High, office", "Default"]
    entry = AuditEntry.objects.get(organization=org_admin.organization, action="created")
    assert entry.actor == org_admin.user and entry.object_type == "SLA policy"
    assert entry.after["priority"] == Priority.HIGH
    assert entry.after["calendar"]["holiday_subdivision"] == "BY"
    assert "High, office" in client.get(LIST).content.decode()


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"hours_tue": "9-17"}, "hours_tue", "is not an opening interval like 09:00-17:30"),
        ({"hours_wed": "17:00-09:00"}, "hours_wed", "ends before it starts"),
        (
            {"hours_thu": "09:00-13:00, 12:00-17:00"},
            "hours_thu",
            "Thursday&#x27;s opening intervals 09:00-13:00 and 12:00-17:00 overlap",
        ),
        ({"holiday_subdivision": "XX"}, "holiday_subdivision", "DE has no region"),
        ({"holiday_country": ""}, "holiday_subdivision", "Choose the country"),
        ({"closed_dates": "2026-13-01"}, "closed_dates", "is not a date like 2026-12-24"),
        ({"special_hours": "Christmas 09:00-12:00"}, "special_hours", "write a date like"),
        ({"special_hours": "2026-12-23 9-12"}, None, "is not an opening interval"),
        ({"closed_dates": "2026-12-23"}, "closed_dates", "both a closed date and has special"),
        ({"time_zone": "Europe/Londn"}, "time_zone", "not one of the available choices"),
        ({"first_response_minutes": ""}, None, "at least one target"),
        ({"first_response_minutes": "0"}, "first_response_minutes", "greater than or equal to 1"),
        ({"warning_percent": "100"}, "warning_percent", "less than or equal to 99"),
        (
            {f"hours_{day}": "" for day in ("mon", "tue", "wed", "thu", "fri")},
            None,
            "opening hours on at least one weekday",
        ),
    ],
)
def test_bad_input_is_refused_with_its_reason_and_nothing_is_saved(
    org_admin: Persona, changes: dict[str, str], field: str | None, reason: str
) -> None:
    response = org_admin.client().post(CREATE, _form(**changes))
    assert response.status_code == 422
    page = response.content.decode()
    assert reason in page
    if field is not None:
        assert f'id="id_{field}_error"' in page  # shown at the field it concerns
    assert 'value="Office"' in page  # what was typed comes back
    assert not SlaPolicy.objects.filter(name="Office").exists()
    assert not AuditEntry.objects.exists()


def test_a_handle_narrows_a_policy_and_must_be_one_of_its_brand(
    org_admin: Persona, at_monday: None
) -> None:
    ticket = _ticket(org_admin)
    other = _ticket(org_admin)
    handle = ticket.social_account
    client = org_admin.client()
    refused = client.post(
        CREATE, _form(name="Wrong brand", brand=other.brand_id, social_account=handle.pk)
    )
    assert refused.status_code == 422 and "is not a handle of" in refused.content.decode()
    response = client.post(
        CREATE, _form(name="Handle", social_account=handle.pk, calendar_kind="always")
    )
    assert response.status_code == 302
    policies = org_policies(org_admin.organization.pk)
    assert policy_for(ticket, policies).name == "Handle"  # type: ignore[union-attr]
    assert policy_for(other, policies).name == "Default"  # type: ignore[union-attr]


def test_moving_a_policy_reorders_the_list_and_rematches_open_tickets(
    org_admin: Persona, at_monday: None, eager_celery: None, django_capture_on_commit_callbacks: Any
) -> None:
    org = org_admin.organization
    default = org_policies(org.pk)[0]
    fast = SlaPolicy.objects.create(
        organization=org, name="Fast", position=5, first_response_minutes=15
    )
    ticket = _ticket(org_admin)
    assert _timer(ticket).due_at == MONDAY + timedelta(minutes=60)  # the default comes first
    client = org_admin.client()
    with django_capture_on_commit_callbacks(execute=True):
        partial = client.post(_move(fast, "up"), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    body = partial.content.decode()
    assert body.lstrip().startswith('<ol class="policy-list"')  # the list alone, for htmx
    assert body.index("Fast") < body.index("Default")
    assert _names(org.pk) == ["Fast", "Default"]
    # The open ticket follows the policy it matches first now, recorded on its timeline.
    assert _timer(ticket).due_at == MONDAY + timedelta(minutes=15)
    assert ticket.events.get(kind=SlaEventKind.SLA_DUE_CHANGED).data["cause"] == "policy_changed"
    moved = AuditEntry.objects.get(action="moved")
    assert moved.before == {"order": ["Default", "Fast"]}
    assert moved.after == {"order": ["Fast", "Default"]}
    # Without htmx: a redirect back to the list. At the top already: nothing changes.
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(_move(fast, "up")).status_code == 302
        assert client.post(_move(default, "sideways")).status_code == 404
    assert _names(org.pk) == ["Fast", "Default"]
    assert AuditEntry.objects.filter(action="moved").count() == 1


def test_a_target_change_recomputes_running_timers_audited_and_recorded(
    org_admin: Persona, at_monday: None
) -> None:
    policy = org_policies(org_admin.organization.pk)[0]
    ticket = _ticket(org_admin)
    response = org_admin.client().post(
        _edit(policy), _policy_form(policy, first_response_minutes="20")
    )
    assert response.status_code == 302
    assert _timer(ticket).due_at == MONDAY + timedelta(minutes=20)
    change = ticket.events.get(kind=SlaEventKind.SLA_DUE_CHANGED)
    assert change.data["before"]["target_minutes"] == 60 and change.data["target_minutes"] == 20
    entry = AuditEntry.objects.get(action="updated")
    assert entry.before == {"first_response_minutes": 60}  # only what changed
    assert entry.after == {"first_response_minutes": 20}
    ticket.refresh_from_db()
    assert ticket.sla_due_at == MONDAY + timedelta(minutes=20)


def test_a_policy_can_say_a_change_applies_to_new_timers_only(
    org_admin: Persona, at_monday: None
) -> None:
    policy = org_policies(org_admin.organization.pk)[0]
    ticket = _ticket(org_admin)
    form = _policy_form(policy, first_response_minutes="20", apply_to_running="no")
    assert org_admin.client().post(_edit(policy), form).status_code == 302
    assert _timer(ticket).due_at == MONDAY + timedelta(minutes=60)  # left as it was
    assert not ticket.events.filter(kind=SlaEventKind.SLA_DUE_CHANGED).exists()
    assert _timer(_ticket(org_admin)).due_at == MONDAY + timedelta(minutes=20)


def test_a_target_added_to_a_policy_starts_on_its_running_tickets(
    org_admin: Persona,
    time_machine: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    time_machine.move_to(MONDAY, tick=False)
    policy = org_policies(org_admin.organization.pk)[0]
    ticket = _ticket(org_admin)
    time_machine.move_to(MONDAY + timedelta(minutes=30), tick=False)
    form = _policy_form(policy, resolution_minutes="240")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert org_admin.client().post(_edit(policy), form).status_code == 302
    gained = [c for c in callbacks if "_start_gained" in getattr(c, "__qualname__", "")]
    assert len(gained) == 1  # one task for the organisation's open tickets
    resolution = _timer(ticket, Metric.RESOLUTION)
    # From the customer's post, as if the target had been there all along.
    assert resolution.started_at == MONDAY
    assert resolution.due_at == MONDAY + timedelta(hours=4)
    started = ticket.events.get(kind=SlaEventKind.SLA_STARTED)
    assert started.data == {
        "metrics": ["resolution"],
        "policy": "Default",
        "cause": "policy_changed",
    }


def test_the_last_catch_all_can_be_neither_deleted_nor_narrowed(
    org_admin: Persona, at_monday: None
) -> None:
    client = org_admin.client()
    default = org_policies(org_admin.organization.pk)[0]
    confirm = client.get(_delete(default)).content.decode()
    assert (
        "so it can't be deleted" in confirm and "<button" not in confirm.split("settings-body")[1]
    )
    response = client.post(_delete(default), follow=True)
    assert "only catch-all policy" in response.content.decode()
    assert SlaPolicy.objects.filter(pk=default.pk).exists()
    narrowed = client.post(_edit(default), _policy_form(default, priority=str(Priority.URGENT)))
    assert narrowed.status_code == 422
    assert "only catch-all policy" in narrowed.content.decode()
    default.refresh_from_db()
    assert default.priority is None and default.is_catch_all
    assert not AuditEntry.objects.exists()
    # With a second catch-all, either may go.
    client.post(CREATE, _form(name="Second catch-all", calendar_kind="always"))
    assert client.post(_delete(default)).status_code == 302
    assert _names(org_admin.organization.pk) == ["Second catch-all"]


def test_deleting_a_policy_in_use_moves_its_running_timers_to_the_next_match(
    org_admin: Persona, time_machine: Any
) -> None:
    time_machine.move_to(MONDAY, tick=False)
    org = org_admin.organization
    SlaPolicy.objects.filter(organization=org).update(position=9)  # the default, last
    urgent = SlaPolicy.objects.create(
        organization=org,
        name="Urgent",
        position=1,
        priority=Priority.URGENT,
        first_response_minutes=10,
        resolution_minutes=120,
    )
    ticket = _ticket(org_admin, priority=Priority.URGENT)
    elsewhere = _ticket(org_admin)  # on the default: untouched
    assert _timer(ticket).policy == urgent
    time_machine.move_to(MONDAY + timedelta(minutes=5), tick=False)
    client = org_admin.client()
    assert "1 ticket has timers running" in client.get(_delete(urgent)).content.decode()
    response = client.post(_delete(urgent), follow=True)
    assert "The running timers of 1 tickets moved" in response.content.decode()
    first = _timer(ticket)
    assert first.policy is not None and first.policy.name == "Default"
    assert first.state == TimerState.RUNNING
    assert first.due_at == MONDAY + timedelta(minutes=60)  # recomputed on the default
    assert _timer(ticket, Metric.RESOLUTION).state == TimerState.STOPPED  # it has none
    moved = ticket.events.get(kind=SlaEventKind.SLA_MOVED)
    assert moved.data == {
        "cause": "policy_deleted",
        "policy": "Default",
        "before_policy": "Urgent",
    }
    assert moved.actor == org_admin.user
    assert ticket.events.filter(kind=SlaEventKind.SLA_DUE_CHANGED).count() == 1
    assert not elsewhere.events.filter(kind__startswith="sla_").exists()
    entry = AuditEntry.objects.get(action="deleted")
    assert entry.before["name"] == "Urgent" and entry.after == {}
    assert not SlaTimer.objects.filter(policy__isnull=True).exists()
    ticket.refresh_from_db()
    assert ticket.sla_due_at == MONDAY + timedelta(minutes=60)


def test_the_demo_has_a_business_hours_policy_with_a_holiday_and_keeps_an_admins_edit() -> None:
    from careinbox.demo import seed_demo

    org, _account = seed_demo(sandbox_url="http://127.0.0.1:9")
    urgent, office = org_policies(org.pk)
    assert urgent.priority == Priority.URGENT and office.is_catch_all
    calendar = office.business_calendar
    assert calendar.holiday_country == "GB" and calendar.holiday_subdivision == "ENG"
    boxing_day = datetime(2026, 12, 28, 10, 0, tzinfo=UTC)  # the substitute bank holiday
    assert not calendar.is_open(boxing_day)
    assert calendar.is_open(datetime(2026, 12, 29, 10, 0, tzinfo=UTC))
    office.first_response_minutes = 45
    office.save()
    seed_demo(sandbox_url="http://127.0.0.1:9")  # the next `make run`
    assert [policy.pk for policy in org_policies(org.pk)] == [urgent.pk, office.pk]
    office.refresh_from_db()
    assert office.first_response_minutes == 45


def test_the_list_is_a_fixed_number_of_queries(
    org_admin: Persona, django_assert_num_queries: Any
) -> None:
    ticket = _ticket(org_admin)
    for position, priority in enumerate((Priority.URGENT, Priority.HIGH, Priority.LOW), start=1):
        SlaPolicy.objects.create(
            organization=org_admin.organization,
            name=f"Policy {position}",
            position=position,
            priority=priority,
            brand=ticket.brand,
            social_account=ticket.social_account,
            first_response_minutes=30,
        )
    client = org_admin.client()
    # Session, user, membership; the policies (twice: the ensured catch-all, the list with its
    # brands and handles); the running-timer counts.
    with django_assert_num_queries(6):
        page = client.get(LIST)
    assert page.status_code == 200 and page.content.decode().count('class="policy card') == 4
