"""Maps a platform to its adapter class; the one place that knows every network."""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels_social.base import ChannelAdapter, ChannelError

if TYPE_CHECKING:
    from channels_social.models import SocialAccount


def adapter_class(platform: str) -> type[ChannelAdapter]:
    from channels_social.x.adapter import XAdapter

    adapters: dict[str, type[ChannelAdapter]] = {XAdapter.platform: XAdapter}
    try:
        return adapters[platform]
    except KeyError:
        raise ChannelError(f"No adapter for platform {platform!r} yet.", permanent=True) from None


def adapter_for(account: SocialAccount) -> ChannelAdapter:
    return adapter_class(account.platform)(account)
