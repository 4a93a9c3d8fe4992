"""The demo organisation that ``make run`` seeds: one brand whose X handle points at the sandbox."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from careinbox.accounts.models import Membership, Organization, Role, User
from channels_social.models import Brand, ListeningQuery, Platform, SocialAccount
from monitoring.demo import seed_demo_sla
from monitoring.escalation.demo import seed_demo_escalation

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
