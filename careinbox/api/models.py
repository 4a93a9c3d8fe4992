"""Per-user API tokens: each acts as one member of one organisation, with that member's role."""

from __future__ import annotations

import hashlib
import secrets

from django.db import models
from django.utils import timezone

from careinbox.accounts.models import Membership

PREFIX = "ci_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """Only a SHA-256 digest of the secret is stored; the secret is shown once, at creation."""

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters, shown in lists so a person can tell tokens apart.
    key_prefix = models.CharField(max_length=16, db_index=True)
    key_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @classmethod
    def issue(cls, membership: Membership, name: str) -> tuple[ApiToken, str]:
        """A new token and its secret (the only time the secret exists outside the client)."""
        secret = PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            membership=membership,
            name=name.strip()[:100] or "API token",
            key_prefix=secret[:10],
            key_digest=_digest(secret),
        )
        return token, secret

    @classmethod
    def find(cls, secret: str) -> ApiToken | None:
        if not secret.startswith(PREFIX):
            return None
        return (
            cls.objects.active()
            .select_related("membership__user", "membership__organization")
            .filter(key_digest=_digest(secret))
            .first()
        )

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
