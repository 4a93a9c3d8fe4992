"""Brands and the social accounts (X handles, later Facebook pages) they are reached on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from careinbox.accounts.models import Organization
from careinbox.crypto import EncryptedJSONField
from careinbox.tenancy import OrgQuerySet


class Platform(models.TextChoices):
    X = "x", "X (Twitter)"
    FACEBOOK = "facebook", "Facebook"


class Brand(models.Model):
    """A brand an organisation cares for; it owns one or more social accounts."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="brands")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="brand_name_per_org")
        ]

    def __str__(self) -> str:
        return self.name


class SocialAccountQuerySet(OrgQuerySet["SocialAccount"]):
    def pollable(self) -> SocialAccountQuerySet:
        return self.filter(enabled=True)


class SocialAccount(models.Model):
    """A brand's handle on one platform, with its encrypted credentials and its poll cursor.

    ``api_base_url`` empty means the real platform API; set, every call goes to that address
    instead (the project's sandbox emulators).
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="social_accounts"
    )
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="social_accounts")
    platform = models.CharField(max_length=16, choices=Platform.choices, default=Platform.X)
    external_id = models.CharField(
        max_length=64, help_text="The platform's id of this account (X user id, Facebook page id)."
    )
    username = models.CharField(max_length=100, help_text="The handle, without '@'.")
    api_base_url = models.URLField(
        blank=True, help_text="Leave empty for the real API; set to reach a sandbox emulator."
    )
    credentials = EncryptedJSONField(blank=True, default=dict, editable=False)
    enabled = models.BooleanField(default=True)
    connected_at = models.DateTimeField(
        default=timezone.now,
        help_text="Mentions posted before this are not imported on the first poll, so "
        "connecting a busy handle does not fill the inbox with old, already-breached tickets.",
    )

    # Polling state. The cursor advances only in the transaction that stores the batch.
    mentions_since_id = models.CharField(max_length=64, blank=True)
    poll_lease_until = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_poll_error = models.TextField(blank=True)
    rate_limit_remaining = models.IntegerField(null=True, blank=True)
    rate_limit_reset_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    objects = SocialAccountQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "platform", "external_id"], name="account_once_per_org"
            )
        ]

    def __str__(self) -> str:
        return f"@{self.username} ({self.get_platform_display()})"

    def __repr__(self) -> str:  # never show credentials
        return f"<SocialAccount {self.pk} {self.platform}:@{self.username}>"

    @sensitive_variables("values")
    def set_credentials(self, **values: Any) -> None:
        self.credentials = {key: value for key, value in values.items() if value}

    def claim_poll(self, *, lease_seconds: int) -> datetime | None:
        """Atomically take the right to poll this account for a while; None if another holds it.

        Returns the lease's end, which ``release_poll`` needs: a poll that outlived its lease
        must not release the lease a later poll has taken since.
        """
        now = timezone.now()
        lease_until = now + timedelta(seconds=lease_seconds)
        claimed = (
            SocialAccount.objects.filter(pk=self.pk, enabled=True)
            .filter(models.Q(poll_lease_until__isnull=True) | models.Q(poll_lease_until__lt=now))
            .update(poll_lease_until=lease_until)
        )
        return lease_until if claimed == 1 else None

    def release_poll(self, lease_until: datetime) -> None:
        SocialAccount.objects.filter(pk=self.pk, poll_lease_until=lease_until).update(
            poll_lease_until=None
        )
