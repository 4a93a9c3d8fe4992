"""In-app notifications: what the bell shows a user (escalations, @mentions, channel trouble)."""

from __future__ import annotations

from django.db import models

from careinbox.accounts.models import Organization, User


class Notification(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="notifications"
    )
    recipient = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=40, blank=True)  # e.g. "escalation", "mention", "channel"
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=400, blank=True)  # a path inside the app, never external
    # The same fact notifies a recipient once: e.g. "escalation:<rule>:<ticket>:<level>".
    dedupe_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["recipient", "read_at"], name="notification_unread"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["recipient", "dedupe_key"],
                condition=~models.Q(dedupe_key=""),
                name="notification_once_per_fact",
            )
        ]

    def __str__(self) -> str:
        return self.title
