"""The demo organisation that ``make run`` seeds: one brand whose X handle points at the sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.db import transaction

from careinbox.accounts.models import Membership, Organization, Role, User
from channels_social.models import Brand, ListeningQuery, Platform, SocialAccount
from monitoring.calendars import BusinessCalendar
from monitoring.escalation.demo import seed_demo_escalation
from monitoring.models import SlaPolicy
from tickets.models import Priority

DEMO_ORG_SLUG = "acme"
DEMO_BRAND_X_ID = "1600000000000000001"
DEMO_BRAND_HANDLE = "AcmeSupport"
# The demo brand's Facebook page in the Graph emulator (`make run` starts it with this page).
DEMO_FACEBOOK_PAGE_ID = "1610000000000001"
DEMO_FACEBOOK_PAGE_NAME = "Acme"
DEMO_FACEBOOK_PAGE_TOKEN = "EAAsandbox-acme-demo-page-token"  # noqa: S105 - sandbox only


@dataclass(frozen=True)
class DemoLogin:
    role: str
    username: str
    password: str


DEMO_LOGINS = (
    DemoLogin(Role.AGENT, "agent", "agent-demo-pass"),
    DemoLogin(Role.MANAGER, "manager", "manager-demo-pass"),
    DemoLogin(Role.ADMIN, "admin", "admin-demo-pass"),
)


@transaction.atomic
def seed_demo(*, sandbox_url: str | None = None) -> tuple[Organization, SocialAccount]:
    """Create (or bring back to shape) the demo organisation. Safe to run again."""
    sandbox_url = sandbox_url or settings.X_SANDBOX_URL
    org, _ = Organization.objects.get_or_create(slug=DEMO_ORG_SLUG, defaults={"name": "Acme"})
    seed_demo_sla(org)
    seed_demo_escalation(org)
    for login in DEMO_LOGINS:
        user, _ = User.objects.get_or_create(
            username=login.username,
            defaults={"first_name": login.role.capitalize(), "last_name": "Demo"},
        )
        # Only when it differs: every new hash has a new salt, and the session of everyone
        # signed in as this user is tied to the hash, so resetting it at each `make run`
        # signed everybody out.
        if not user.check_password(login.password):
            user.set_password(login.password)
        # Organisation admins use Django admin (scoped to their organisation) for settings.
        user.is_staff = login.role == Role.ADMIN
        user.save()
        Membership.objects.update_or_create(
            user=user, organization=org, defaults={"role": login.role}
        )
    brand, _ = Brand.objects.get_or_create(organization=org, name="Acme")
    account, created = SocialAccount.objects.get_or_create(
        organization=org,
        platform=Platform.X,
        external_id=DEMO_BRAND_X_ID,
        defaults={"brand": brand, "username": DEMO_BRAND_HANDLE, "api_base_url": sandbox_url},
    )
    if created or not account.credentials:
        # Sandbox credentials, OAuth 1.0a shaped: the emulator reads the user id before '-'.
        account.set_credentials(
            consumer_key="sandbox-consumer-key",
            consumer_secret="sandbox-consumer-secret",  # noqa: S106 - sandbox only
            access_token=f"{DEMO_BRAND_X_ID}-sandbox-access-token",
            access_token_secret="sandbox-access-token-secret",  # noqa: S106 - sandbox only
        )
        account.save()
    elif account.api_base_url and account.api_base_url != sandbox_url:
        # Still on a sandbox, whose port may have changed; an account an admin switched to
        # the real API (empty base URL) keeps its settings.
        account.api_base_url = sandbox_url
        account.save(update_fields=["api_base_url"])
    # Listening: posts that name no handle of the brand's but say #thissucks (the demo
    # generator posts a few) open tickets too, marked as found by listening.
    ListeningQuery.objects.get_or_create(organization=org, brand=brand, query="#thissucks")
    seed_demo_facebook(org, brand)
    return org, account


def seed_demo_facebook(org: Organization, brand: Brand) -> SocialAccount:
    """The demo brand's Facebook page, polled in the emulator (its webhooks come too)."""
    sandbox_url = settings.FACEBOOK_SANDBOX_URL
    page, created = SocialAccount.objects.get_or_create(
        organization=org,
        platform=Platform.FACEBOOK,
        external_id=DEMO_FACEBOOK_PAGE_ID,
        defaults={"brand": brand, "username": DEMO_FACEBOOK_PAGE_NAME, "api_base_url": sandbox_url},
    )
    if created or not page.credentials:
        page.set_credentials(page_access_token=DEMO_FACEBOOK_PAGE_TOKEN)
        page.save()
    elif page.api_base_url and page.api_base_url != sandbox_url:
        page.api_base_url = sandbox_url
        page.save(update_fields=["api_base_url"])
    return page


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


def seed_demo_sla(org: Organization) -> None:
    """Two policies, so the demo shows both calendars: Urgent 24/7 first, then office hours
    for everything else. An admin's other policies are kept, tried after these."""
    demo = [
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
    ]
    names = [name for name, *_ in demo]
    for position, (name, priority, calendar, minutes) in enumerate(demo):
        SlaPolicy.objects.update_or_create(
            organization=org,
            name=name,
            defaults={
                "position": position,
                "priority": priority,
                "time_zone": calendar.time_zone,
                "calendar": calendar.to_config(),
                "first_response_minutes": minutes["first"],
                "next_response_minutes": minutes["next"],
                "take_offline_minutes": minutes["offline"],
                "resolution_minutes": minutes["resolution"],
                "close_out_minutes": minutes["close"],
            },
        )
    # The default policy made before the demo had its own is of no use once these exist.
    SlaPolicy.objects.filter(organization=org, name="Default", timers__isnull=True).delete()
    others = SlaPolicy.objects.filter(organization=org).exclude(name__in=names)
    for offset, policy in enumerate(others.order_by("position", "pk"), start=len(demo)):
        if policy.position != offset:
            policy.position = offset
            policy.save(update_fields=["position"])
