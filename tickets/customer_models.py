"""Customers: the people an organisation's tickets are about, across platforms.

A ``CustomerIdentity`` is one account on one platform (an X user, a Facebook profile), made by
ingest the first time that account writes to the organisation. Each belongs to one
``Customer``; an agent links the identities of the same person (their X and their Facebook)
into one customer, and can unlink them again. Contact details an agent took down offline and
notes about the person live on the customer. Every change an agent makes is a
``CustomerEvent``: the customer's own history, shown on the profile.

The models live here, beside ``tickets.models`` (which imports them), to keep that module
readable; they are the tickets app's models all the same.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from careinbox.accounts.models import Organization
from careinbox.tenancy import OrgQuerySet
from channels_social.models import Platform


class CustomerQuerySet(OrgQuerySet["Customer"]):
    pass


class Customer(models.Model):
    """One person, as far as the organisation knows: one or more platform identities, the
    contact details taken down offline, and notes. Tickets point here (``Ticket.customer``)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="customers"
    )
    display_name = models.CharField(max_length=200, blank=True)
    # Taken down offline (in a DM, on the phone) by an agent; each change is a CustomerEvent.
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    order_number = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Set when the person's data was erased on request (tickets.services.privacy): what
    # identified them is gone, their tickets and messages still count.
    erased_at = models.DateTimeField(null=True, blank=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        if self.erased_at is not None:
            return f"Erased customer {self.pk}"
        return self.display_name or f"Customer {self.pk}"


CONTACT_FIELDS = ("email", "phone", "order_number")


class CustomerIdentityQuerySet(OrgQuerySet["CustomerIdentity"]):
    pass


class CustomerIdentity(models.Model):
    """One platform account of a customer, as the platform last showed it (kept up to date by
    ingest: handle, name, followers, verified)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    platform = models.CharField(max_length=16, choices=Platform.choices)
    external_id = models.CharField(max_length=64)
    username = models.CharField(max_length=100, blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    followers = models.PositiveIntegerField(default=0)
    verified = models.BooleanField(default=False)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    objects = CustomerIdentityQuerySet.as_manager()

    class Meta:
        ordering = ["platform", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "platform", "external_id"],
                name="customer_identity_once_per_platform_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} @{self.username or self.external_id}"


class CustomerEventKind(models.TextChoices):
    CONTACT_UPDATED = "contact_updated", "Contact details changed"
    NOTE_ADDED = "note_added", "Note added"
    IDENTITY_LINKED = "identity_linked", "Identity linked"
    IDENTITY_UNLINKED = "identity_unlinked", "Identity unlinked"
    ERASED = "erased", "Personal data erased on request"


class CustomerEvent(models.Model):
    """One change an agent made to a customer: who, what, when, the values before and after.
    Append-only, written only by ``tickets.services.customers``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=CustomerEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"


class CustomerNote(models.Model):
    """What an agent wants colleagues to know about the person ("prefers e-mail", "VIP since
    2019"). Kept, never edited."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.text[:40]


# Threading defaults: a near-identical post by the same customer within two days joins their
# open ticket; a looser match is offered for merge; a message within a week of the close-out
# reopens the ticket.
DEFAULT_DUPLICATE_WINDOW_HOURS = 48
DEFAULT_JOIN_SIMILARITY = 90
DEFAULT_OFFER_SIMILARITY = 60
DEFAULT_REOPEN_WINDOW_DAYS = 7


class ThreadingSettings(models.Model):
    """How an organisation's incoming posts find their ticket (one row per organisation; the
    defaults above when it has none)."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="threading_settings"
    )
    duplicate_window_hours = models.PositiveIntegerField(
        default=DEFAULT_DUPLICATE_WINDOW_HOURS,
        help_text="A new post by a customer within this many hours of their open ticket's "
        "latest message is compared with it (0: never).",
    )
    join_similarity = models.PositiveSmallIntegerField(
        default=DEFAULT_JOIN_SIMILARITY,
        help_text="Percent similarity (0-100) at which the post joins the open ticket.",
    )
    offer_similarity = models.PositiveSmallIntegerField(
        default=DEFAULT_OFFER_SIMILARITY,
        help_text="Percent similarity at which the new ticket is offered for merge instead.",
    )
    reopen_window_days = models.PositiveIntegerField(
        default=DEFAULT_REOPEN_WINDOW_DAYS,
        help_text="A customer message within this many days of the close-out reopens the "
        "ticket (0: never; a new ticket opens instead).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "threading settings"
        verbose_name_plural = "threading settings"

    def __str__(self) -> str:
        return f"Threading of {self.organization}"

    @classmethod
    def for_org_id(cls, organization_id: int) -> ThreadingSettings:
        """The organisation's settings, or the defaults (unsaved) when it has none."""
        found = cls.objects.filter(organization_id=organization_id).first()
        return found or cls(organization_id=organization_id)
