"""Users and roles through the web views: the list, inviting (new and existing accounts), the
invitation link, role changes, deactivation and the guards around them, each change audited."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts import services
from careinbox.accounts.models import AuditEntry, Membership, Role, Team, User
from tests.conftest import Persona
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver(/invitation/[^/\s]+/[^/\s]+/)")


def _membership(persona: Persona) -> Membership:
    return Membership.objects.get(user=persona.user, organization=persona.organization)


def _only_entry(org, **lookup: object) -> AuditEntry:  # type: ignore[no-untyped-def]
    [entry] = AuditEntry.objects.filter(organization=org, **lookup)
    return entry


def _invite(client: Client, capture, **data: str):  # type: ignore[no-untyped-def]
    # The e-mail leaves after the commit: run the on-commit callbacks the test transaction holds.
    with capture(execute=True):
        return client.post(reverse("accounts:member-invite"), data)


def _link_in(message: mail.EmailMessage) -> str:
    match = LINK.search(str(message.body))
    assert match, message.body
    return match.group(1)


def test_members_list_shows_role_team_availability_and_last_login(
    org, org_admin: Persona, agent: Persona, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    alice = _membership(agent)
    Membership.objects.filter(pk=alice.pk).update(is_away=True, capacity=7)
    Team.objects.create(organization=org, name="Billing").members.add(alice)
    User.objects.filter(pk=agent.user.pk).update(last_login=timezone.now())
    for number in range(5):  # more rows must not mean more queries
        MembershipFactory(organization=org, user=UserFactory(username=f"extra{number}"))
    client = org_admin.client()
    # session, user, membership (middleware), the members, their teams (one prefetch)
    with django_assert_num_queries(5):
        page = client.get(reverse("accounts:members")).content.decode()
    row = re.search(rf'<tr id="member-{alice.pk}".*?</tr>', page, re.S)
    assert row
    text = row.group(0)
    assert "Billing" in text and 'value="7"' in text and "checked" in text
    assert '<option value="agent" selected>' in text and "<time" in text


def test_inviting_a_new_person_creates_the_account_mails_a_link_that_sets_a_password(
    org, org_admin: Persona, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    response = _invite(
        org_admin.client(),
        django_capture_on_commit_callbacks,
        name="Nina Newcomer",
        email="nina@example.com",
        role=Role.AGENT,
    )
    assert response.status_code == 302
    nina = User.objects.get(email="nina@example.com")
    assert nina.username == "nina@example.com" and nina.get_full_name() == "Nina Newcomer"
    assert not nina.has_usable_password()
    membership = Membership.objects.get(user=nina, organization=org)
    assert membership.role == Role.AGENT and membership.is_active

    [message] = mail.outbox
    assert message.to == ["nina@example.com"]
    assert "Acme" in message.subject
    entry = _only_entry(org, action="invited")
    assert entry.actor == org_admin.user and entry.object_id == str(membership.pk)
    assert entry.after == {
        "email": "nina@example.com",
        "name": "Nina Newcomer",
        "role": "agent",
        "account": "new",
    }

    link = _link_in(message)
    browser = Client()
    form = browser.get(link)
    assert form.status_code == 200 and "nina@example.com" in form.content.decode()
    # All digits: refused by the numeric validator (and nothing changes).
    refused = browser.post(link, {"new_password1": "83920174", "new_password2": "83920174"})
    assert refused.status_code == 422
    assert "entirely numeric" in refused.content.decode()
    nina.refresh_from_db()
    assert not nina.has_usable_password()
    # Too close to the e-mail, too short, too common: each named.
    for weak, reason in [
        ("nina@example.com", "too similar"),
        ("x7#", "too short"),
        ("password123", "too common"),
    ]:
        answer = browser.post(link, {"new_password1": weak, "new_password2": weak})
        assert reason in answer.content.decode(), weak

    accepted = browser.post(
        link, {"new_password1": "violet-harbour-42", "new_password2": "violet-harbour-42"}
    )
    assert accepted.status_code == 302 and accepted["Location"] == reverse("tickets:inbox")
    assert browser.get(reverse("tickets:inbox")).status_code == 200  # signed in, in Acme
    nina.refresh_from_db()
    assert nina.check_password("violet-harbour-42")
    # The link was for one use.
    again = Client().get(link)
    assert again.status_code == 410 and "used already" in again.content.decode()
    signed_in = Client().post(
        "/login/", {"username": "nina@example.com", "password": "violet-harbour-42"}
    )
    assert signed_in.status_code == 302


def test_inviting_an_existing_account_adds_a_membership_and_no_password_link(
    org, other_org, org_admin: Persona, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    olga = UserFactory(username="olga", email="Olga@Example.com")
    MembershipFactory(user=olga, organization=other_org)
    response = _invite(
        org_admin.client(),
        django_capture_on_commit_callbacks,
        name="Olga",
        email="olga@example.com",
        role=Role.MANAGER,
    )
    assert response.status_code == 302
    assert User.objects.filter(email__iexact="olga@example.com").count() == 1
    assert Membership.objects.get(user=olga, organization=org).role == Role.MANAGER
    [message] = mail.outbox
    assert "/invitation/" not in message.body and "sign in as olga" in message.body
    olga.refresh_from_db()
    assert olga.check_password("pw")  # untouched
    assert _only_entry(org, action="invited").after["account"] == "existing"


def test_inviting_a_member_again_is_refused_clearly_and_resend_replaces_the_link(
    org, org_admin: Persona, agent: Persona, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    client = org_admin.client()
    data = {"name": "Nina", "email": "nina@example.com", "role": Role.AGENT}
    _invite(client, django_capture_on_commit_callbacks, **data)
    first_link = _link_in(mail.outbox[0])

    again = _invite(client, django_capture_on_commit_callbacks, **data)
    assert again.status_code == 422
    assert "has not accepted yet" in again.content.decode() and "Resend invitation" in (
        again.content.decode()
    )
    agent.user.email = "alice@example.com"
    agent.user.save()
    member = _invite(
        client,
        django_capture_on_commit_callbacks,
        name="A",
        email="alice@example.com",
        role="agent",
    )
    assert member.status_code == 422 and "is a member already" in member.content.decode()
    Membership.objects.filter(user=agent.user).update(is_active=False)
    gone = _invite(
        client,
        django_capture_on_commit_callbacks,
        name="A",
        email="alice@example.com",
        role="agent",
    )
    assert gone.status_code == 422 and "reactivate them in the list" in gone.text
    assert len(mail.outbox) == 1

    nina = Membership.objects.get(user__email="nina@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        resent = client.post(
            reverse("accounts:member-resend", kwargs={"pk": nina.pk}), HTTP_HX_REQUEST="true"
        )
    assert resent.status_code == 200
    assert "Earlier links no longer work" in resent.content.decode()
    assert resent.content.decode().lstrip().startswith(f'<tr id="member-{nina.pk}"')
    second_link = _link_in(mail.outbox[1])
    assert second_link != first_link
    stale = Client().get(first_link)
    assert stale.status_code == 410 and "newer invitation replaced it" in stale.content.decode()
    assert Client().get(second_link).status_code == 200
    assert _only_entry(org, action="invitation resent").actor == org_admin.user


def test_an_expired_link_says_so_and_sets_nothing(
    org_admin: Persona, django_capture_on_commit_callbacks, settings
) -> None:  # type: ignore[no-untyped-def]
    _invite(
        org_admin.client(), django_capture_on_commit_callbacks, name="N", email="n@example.com",
        role="agent",
    )  # fmt: skip
    link = _link_in(mail.outbox[0])
    later = timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)
    with time_machine.travel(later):
        page = Client().post(link, {"new_password1": "violet-harbour-42", "new_password2": "x"})
    assert page.status_code == 410 and "has expired" in page.content.decode()
    assert not User.objects.get(email="n@example.com").has_usable_password()
    # A made-up or mangled link: the same clear page, nothing else.
    for bogus in ["/invitation/zzz/abc/", "/invitation/MQ/abc-def/", link[:-3] + "xx/"]:
        assert Client().get(bogus).status_code == 410, bogus


@pytest.mark.django_db(transaction=True)
def test_a_failing_mail_server_keeps_the_member_and_says_to_resend(
    org, org_admin: Persona, settings
) -> None:  # type: ignore[no-untyped-def]
    # A real SMTP backend pointed at a closed local port: the connection is refused. (No test
    # transaction here, so the mail is attempted at the commit, before the page is rendered.)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    client = org_admin.client()
    response = client.post(
        reverse("accounts:member-invite"),
        {"name": "N", "email": "n@example.com", "role": "agent"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "could not be sent" in response.text and "Resend invitation" in response.text
    assert re.search(r'<p class="error" role="alert">[^<]*could not be sent', response.text)
    nina = Membership.objects.get(user__email="n@example.com")  # kept
    resent = client.post(
        reverse("accounts:member-resend", kwargs={"pk": nina.pk}), HTTP_HX_REQUEST="true"
    )
    assert resent.status_code == 422 and "could not be sent" in resent.text
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert client.post(reverse("accounts:member-resend", kwargs={"pk": nina.pk})).status_code == 302
    assert len(mail.outbox) == 1 and _link_in(mail.outbox[0])


def test_invite_form_errors_come_back_with_the_input(org_admin: Persona) -> None:
    response = org_admin.client().post(
        reverse("accounts:member-invite"),
        {"name": "Nina", "email": "not-an-address", "role": "agent"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert 'id="members-panel"' in body and "Enter a valid email address." in body
    assert 'value="Nina"' in body
    assert not User.objects.filter(username="not-an-address").exists()


def test_changing_a_role_is_audited(org, org_admin: Persona, agent: Persona) -> None:
    alice = _membership(agent)
    response = org_admin.client().post(
        reverse("accounts:member-role", kwargs={"pk": alice.pk}),
        {"role": Role.MANAGER},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "is now manager" in response.content.decode()
    alice.refresh_from_db()
    assert alice.role == Role.MANAGER
    entry = _only_entry(org, action="updated", object_type="member")
    assert (entry.before, entry.after) == ({"role": "agent"}, {"role": "manager"})
    assert entry.actor == org_admin.user and entry.object_id == str(alice.pk)


def test_the_last_active_admin_stays_admin_and_active(org, org_admin: Persona) -> None:
    ada = _membership(org_admin)
    client = org_admin.client()

    def post(name: str, pk: int, **data: str):  # type: ignore[no-untyped-def]
        url = reverse(f"accounts:{name}", kwargs={"pk": pk})
        return client.post(url, data, HTTP_HX_REQUEST="true")

    # Ada alone: she can neither step down nor switch herself off.
    for name, data in [("member-active", {"active": "0"}), ("member-role", {"role": "agent"})]:
        refused = post(name, ada.pk, **data)
        assert refused.status_code == 422
        assert "is the last active admin" in refused.content.decode()
    # With Bob as a second admin, still never herself...
    bob = MembershipFactory(user=UserFactory(username="bob"), organization=org, role=Role.ADMIN)
    yourself = post("member-active", ada.pk, active="0")
    assert yourself.status_code == 422 and "cannot deactivate yourself" in yourself.text
    assert "cannot change your own role" in post("member-role", ada.pk, role="agent").text
    # ...but she may demote Bob, after which she is the last admin again.
    assert post("member-role", bob.pk, role="manager").status_code == 200
    assert "is the last active admin" in post("member-role", ada.pk, role="agent").text
    # Without JavaScript the refusal comes back as a message on the list.
    plain = client.post(reverse("accounts:member-active", kwargs={"pk": ada.pk}), {"active": "0"})
    assert plain.status_code == 302
    assert "is the last active admin" in client.get(reverse("accounts:members")).text
    ada.refresh_from_db()
    bob.refresh_from_db()
    assert (ada.role, ada.is_active, bob.role) == (Role.ADMIN, True, Role.MANAGER)
    [entry] = AuditEntry.objects.filter(organization=org)  # only the change that happened
    assert (entry.object_id, entry.before, entry.after) == (
        str(bob.pk),
        {"role": "admin"},
        {"role": "manager"},
    )


def test_deactivated_member_cannot_reach_the_org_and_reactivation_restores_it(
    org, org_admin: Persona, agent: Persona
) -> None:
    alice = _membership(agent)
    alice_client = agent.client()
    assert alice_client.get(reverse("tickets:inbox")).status_code == 200
    response = org_admin.client().post(
        reverse("accounts:member-active", kwargs={"pk": alice.pk}),
        {"active": "0"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "Reactivate" in response.content.decode()
    assert alice_client.get(reverse("tickets:inbox")).status_code == 404
    entry = _only_entry(org, action="deactivated")
    assert (entry.before, entry.after) == ({"is_active": True}, {"is_active": False})

    org_admin.client().post(
        reverse("accounts:member-active", kwargs={"pk": alice.pk}), {"active": "1"}
    )
    assert alice_client.get(reverse("tickets:inbox")).status_code == 200
    assert _only_entry(org, action="reactivated").after == {"is_active": True}


def test_away_and_capacity_are_saved_checked_and_audited(
    org, org_admin: Persona, agent: Persona
) -> None:
    alice = _membership(agent)
    url = reverse("accounts:member-availability", kwargs={"pk": alice.pk})
    client = org_admin.client()
    bad = client.post(url, {"capacity": "-3"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 422 and "greater than or equal to 0" in bad.content.decode()
    ok = client.post(url, {"capacity": "5", "is_away": "on"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200
    alice.refresh_from_db()
    assert (alice.is_away, alice.capacity) == (True, 5)
    entry = _only_entry(org, action="updated")
    assert entry.before == {"is_away": False, "capacity": 20}
    assert entry.after == {"is_away": True, "capacity": 5}
    client.post(url, {"capacity": "5", "is_away": "on"})  # no change: no entry
    assert AuditEntry.objects.filter(organization=org).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_admins_switching_each_other_off_at_once_leave_one_admin(
    org, org_admin: Persona, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite runs one writer at a time anyway)")
    ada = _membership(org_admin)
    bob = MembershipFactory(user=UserFactory(username="bob"), organization=org, role=Role.ADMIN)
    # Hold Ada's change open after its check and write, before its commit.
    inside, release = threading.Event(), threading.Event()
    original = services.record_change

    def held_record_change(*args: object, **kwargs: object) -> AuditEntry:
        if threading.current_thread().name == "ada":
            inside.set()
            release.wait(10)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services, "record_change", held_record_change)
    outcomes: dict[str, str] = {}

    def switch_off(name: str, actor: User, target: Membership) -> None:
        try:
            services.member_set_active(membership=target, actor=actor, active=False)
            outcomes[name] = "done"
        except services.SettingsError as error:
            outcomes[name] = str(error)
        finally:
            connection.close()

    first = threading.Thread(target=switch_off, args=("ada", org_admin.user, bob), name="ada")
    second = threading.Thread(target=switch_off, args=("bob", bob.user, ada), name="bob")
    first.start()
    assert inside.wait(10)
    second.start()
    second.join(1)  # without the organisation lock Bob's change would finish here, unchecked
    release.set()
    first.join(10)
    second.join(10)
    assert outcomes["ada"] == "done"
    assert "is the last active admin" in outcomes["bob"]
    active = Membership.objects.filter(organization=org, role=Role.ADMIN, is_active=True)
    assert list(active) == [ada]
