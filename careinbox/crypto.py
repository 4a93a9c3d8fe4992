"""Encryption of channel credentials at rest (Fernet, keys from ``CREDENTIALS_KEYS``)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "CREDENTIALS_KEYS holds a value that is not a 32-byte url-safe base64 Fernet key."
        ) from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.CREDENTIALS_KEYS))


def encrypt_json(value: dict[str, Any]) -> str:
    return fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    try:
        return json.loads(fernet().decrypt(token.encode()))  # type: ignore[no-any-return]
    except InvalidToken:
        raise ImproperlyConfigured(
            "Stored credentials cannot be decrypted with CREDENTIALS_KEYS (was a key removed?)."
        ) from None


class EncryptedJSONField(models.TextField):  # type: ignore[type-arg]
    """A dict stored as a Fernet token. The plain value never reaches the database or a log."""

    description = "Encrypted JSON object"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> dict[str, Any]:
        return decrypt_json(value) if value else {}

    def to_python(self, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        return decrypt_json(value) if value else {}

    def get_prep_value(self, value: Any) -> str:
        if not value:
            return ""
        if not isinstance(value, dict):
            raise TypeError("EncryptedJSONField holds a dict.")
        return encrypt_json(value)
