from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "careinbox.accounts"
    label = "accounts"
    verbose_name = "Accounts and tenancy"

    def ready(self) -> None:
        from careinbox.settings_area import SettingsSection, register_section

        for section in (
            SettingsSection(
                "members",
                "Users and roles",
                "accounts:members",
                10,
                description="Invite people, change roles, deactivate, set away and capacity.",
            ),
            SettingsSection(
                "teams",
                "Teams",
                "accounts:teams",
                20,
                description="Groups of members that tickets and escalations go to.",
            ),
            SettingsSection(
                "organization",
                "Organisation",
                "accounts:organization",
                30,
                description="The organisation's name and time zone.",
            ),
            SettingsSection(
                "audit",
                "Audit trail",
                "accounts:audit",
                90,
                description="Every settings change: who, when, before and after.",
            ),
        ):
            register_section(section)
