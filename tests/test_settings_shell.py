"""The settings shell, the audit trail and in-app notifications (the base the sections build on)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from careinbox.accounts.models import AuditEntry, Membership
from careinbox.audit import record_change, snapshot
from careinbox.notifications.models import Notification
from careinbox.notifications.services import notify, notify_admins, unread_count

pytestmark = pytest.mark.django_db


def test_settings_home_is_for_admins_only(org_admin, manager, agent, client) -> None:
    assert org_admin.client().get(reverse("accounts:settings")).status_code == 200
    assert manager.client().get(reverse("accounts:settings")).status_code == 404
    assert agent.client().get(reverse("accounts:settings")).status_code == 404
    assert client.get(reverse("accounts:settings")).status_code == 302


def test_inbox_nav_links_admins_to_the_in_app_settings(org_admin) -> None:
    page = org_admin.client().get(reverse("tickets:inbox")).content.decode()
    assert 'href="/settings/"' in page
    assert 'href="/admin/"' not in page  # the Django admin is for operators (superusers)


def test_an_update_keeps_only_the_fields_that_changed(org, org_admin) -> None:
    before = snapshot(org, ["name", "time_zone"])
    org.time_zone = "Europe/Berlin"
    org.save()
    entry = record_change(
        org,
        org_admin.user,
        "updated",
        org,
        before=before,
        after=snapshot(org, ["name", "time_zone"]),
    )
    entry.refresh_from_db()
    assert entry.before == {"time_zone": "UTC"}
    assert entry.after == {"time_zone": "Europe/Berlin"}
    assert entry.actor == org_admin.user and entry.object_type == "organization"
    assert AuditEntry.objects.filter(organization=org).count() == 1


def test_a_deactivated_member_no_longer_reaches_the_organisation(agent) -> None:
    client = agent.client()
    assert client.get(reverse("tickets:inbox")).status_code == 200
    Membership.objects.filter(user=agent.user).update(is_active=False)
    assert client.get(reverse("tickets:inbox")).status_code == 404


def test_notify_once_per_fact_and_counts_unread(org, org_admin, agent) -> None:
    first = notify(org, [agent.user], "Ticket #1 breached", dedupe_key="breach:1")
    again = notify(org, [agent.user], "Ticket #1 breached", dedupe_key="breach:1")
    assert len(first) == 1 and again == []
    assert unread_count(agent.user) == 1
    notify_admins(org, "Channel @acme disconnected", kind="channel")
    assert list(
        Notification.objects.filter(recipient=org_admin.user).values_list("kind", flat=True)
    ) == ["channel"]
    assert unread_count(agent.user) == 1
