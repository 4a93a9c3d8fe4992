"""The settings audit trail: who changed what, when, and the values before and after.

Every settings view calls ``record_change`` in the same transaction as the change, so the trail
and the data never disagree. ``snapshot`` turns a model instance into the JSON kept as
"before" and "after" (secrets are never passed in: callers snapshot only the fields they name).
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from careinbox.accounts.models import AuditEntry, Organization, User


def _plain(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | datetime.timedelta):
        return str(value)
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def snapshot(instance: models.Model | None, fields: Iterable[str]) -> dict[str, Any]:
    """The named fields of ``instance`` as JSON-safe values ({} for no instance)."""
    if instance is None:
        return {}
    return {name: _plain(getattr(instance, name)) for name in fields}


def record_change(
    organization: Organization,
    actor: User | Any,
    action: str,
    obj: models.Model | None = None,
    *,
    object_type: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    object_repr: str | None = None,
) -> AuditEntry:
    """Keep one audit entry; only the fields that differ are stored for an update."""
    before = dict(before or {})
    after = dict(after or {})
    if action == "updated":
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        before = {key: value for key, value in before.items() if key in changed}
        after = {key: value for key, value in after.items() if key in changed}
    return AuditEntry.objects.create(
        organization=organization,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        object_type=object_type or (str(obj._meta.verbose_name) if obj is not None else ""),
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=(object_repr if object_repr is not None else str(obj or ""))[:200],
        before=_plain(before),
        after=_plain(after),
    )
