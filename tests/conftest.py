"""Personas (Alice the agent, Mark the manager, Ada the admin, Olga the outsider) and shared
fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.test import Client

from careinbox.accounts.models import Organization, Role, User
from channels_social.models import SocialAccount
from tests.facebook_sandbox_fixtures import *  # noqa: F403
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    SocialAccountFactory,
    UserFactory,
)
from tests.fast_flush import flush_by_delete
from tests.sandbox_fixtures import *  # noqa: F403
from tests.webhook_receiver import receiver  # noqa: F401
from tests.worker_fixtures import celery_worker_process  # noqa: F401


@dataclass
class Persona:
    user: User
    organization: Organization
    role: str

    def client(self) -> Client:
        client = Client()
        client.force_login(self.user)
        return client


def _persona(organization: Organization, role: str, username: str) -> Persona:
    user = UserFactory(username=username)
    MembershipFactory(user=user, organization=organization, role=role)
    return Persona(user=user, organization=organization, role=role)


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete() -> Iterator[None]:
    """After each transactional test, PostgreSQL's tables emptied by DELETE (fast_flush.py)."""
    yield from flush_by_delete()


@pytest.fixture
def org(db: None) -> Organization:
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def other_org(db: None) -> Organization:
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def agent(org: Organization) -> Persona:
    return _persona(org, Role.AGENT, "alice")


@pytest.fixture
def manager(org: Organization) -> Persona:
    return _persona(org, Role.MANAGER, "mark")


@pytest.fixture
def org_admin(org: Organization) -> Persona:
    return _persona(org, Role.ADMIN, "ada")


@pytest.fixture
def outsider(other_org: Organization) -> Persona:
    """An agent of another organisation: must never see or touch Acme's data."""
    return _persona(other_org, Role.AGENT, "olga")


@pytest.fixture
def make_account(org: Organization) -> Callable[..., SocialAccount]:
    def make(**kwargs: object) -> SocialAccount:
        kwargs.setdefault("brand__organization", org)
        return SocialAccountFactory(**kwargs)

    return make


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """An empty local-memory cache (the inbox's cached counts and rows of an earlier test,
    whose organisation and user ids SQLite reuses, are not this test's)."""
    from django.core.cache import cache

    if "locmem" in type(cache).__module__:
        cache.clear()
    yield
