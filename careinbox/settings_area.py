"""The in-app settings area: one shell, with sections that each app contributes.

An app registers its sections in ``AppConfig.ready()``::

    register_section(SettingsSection("sla", "SLA policies", "monitoring:settings-policies", 40,
                                     description="Response targets, calendars and holidays."))

and renders its pages with ``templates/settings/base.html`` (the side navigation comes from
``settings_sections`` in the context, filled here by ``settings_context``). The base app knows
the shell, never the sections' apps, so apps still depend one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from careinbox.accounts.models import Membership, Role


@dataclass(frozen=True)
class SettingsSection:
    key: str
    label: str
    url_name: str
    order: int = 100
    min_role: str = Role.ADMIN
    # One line on the settings home under the label ("Invite people, change roles, ...").
    description: str = ""


_sections: dict[str, SettingsSection] = {}


def register_section(section: SettingsSection) -> None:
    _sections[section.key] = section


def sections_for(membership: Membership | None) -> list[SettingsSection]:
    if membership is None:
        return []
    return sorted(
        (section for section in _sections.values() if membership.has_role(section.min_role)),
        key=lambda section: (section.order, section.label),
    )


def settings_context(request: HttpRequest) -> dict[str, Any]:
    membership: Membership | None = getattr(request, "membership", None)
    path = request.path
    items = []
    for section in sections_for(membership):
        try:
            url = reverse(section.url_name)
        except NoReverseMatch:
            continue
        items.append(
            {
                "key": section.key,
                "label": section.label,
                "description": section.description,
                "url": url,
                "current": path.startswith(url),
            }
        )
    return {"settings_sections": items}
