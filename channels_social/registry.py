"""Maps a platform to its adapter class; the one place that knows every network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels_social.base import ChannelAdapter, ChannelError, CredentialField

if TYPE_CHECKING:
    from channels_social.models import SocialAccount


def _adapters() -> dict[str, type[ChannelAdapter]]:
    from channels_social.facebook.adapter import FacebookAdapter
    from channels_social.x.adapter import XAdapter

    return {XAdapter.platform: XAdapter, FacebookAdapter.platform: FacebookAdapter}


def platforms_with_adapters() -> list[tuple[str, str]]:
    """The (value, label) choices of the platforms CareInbox can talk to."""
    from channels_social.models import Platform

    return [(value, label) for value, label in Platform.choices if value in _adapters()]


def adapter_class(platform: str) -> type[ChannelAdapter]:
    try:
        return _adapters()[platform]
    except KeyError:
        raise ChannelError(f"No adapter for platform {platform!r} yet.", permanent=True) from None


def adapter_for(account: SocialAccount) -> ChannelAdapter:
    return adapter_class(account.platform)(account)


def all_credential_fields() -> list[CredentialField]:
    """Every adapter's credential fields, each name once (for the account form)."""
    seen: dict[str, CredentialField] = {}
    for adapter in _adapters().values():
        for field in adapter.credential_fields:
            seen.setdefault(field.name, field)
    return list(seen.values())
