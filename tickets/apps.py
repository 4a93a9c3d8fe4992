from __future__ import annotations

from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Tickets"

    def ready(self) -> None:
        # channels_social reads the platforms; tickets is where what it reads is stored.
        from channels_social.intake import register_post_sink, register_update_sink
        from tickets.events import register_kinds
        from tickets.services.ingest import PostChangeKind, apply_post_updates, ingest_posts

        register_post_sink(ingest_posts)
        register_update_sink(apply_post_updates)
        register_kinds(PostChangeKind)

        # Team work: a new ticket goes to the team that takes new tickets (round-robin).
        from careinbox.accounts.models import Role
        from careinbox.settings_area import SettingsSection, register_section
        from tickets import events
        from tickets.models import EventKind
        from tickets.priority import (
            on_customer_message,
            on_customer_messages,
            on_reposted,
            on_reposted_many,
        )
        from tickets.services.teamwork import route_new_ticket, route_new_tickets

        events.subscribe(route_new_ticket, kinds=[EventKind.OPENED], many=route_new_tickets)
        # A repost widens a ticket's reach and virality: score it again.
        events.subscribe(on_reposted, kinds=[EventKind.REPOSTED], many=on_reposted_many)
        # A customer's follow-up re-reads the sentiment and re-scores the priority.
        events.subscribe(
            on_customer_message, kinds=[EventKind.MESSAGE_RECEIVED], many=on_customer_messages
        )
        register_section(
            SettingsSection(
                "routing",
                "Team routing",
                "tickets:routing",
                35,
                Role.MANAGER,
                description="Which team takes new tickets, round-robin by capacity, and who is "
                "away.",
            )
        )
        register_section(
            SettingsSection(
                "canned",
                "Canned responses",
                "tickets:canned-list",
                60,
                min_role=Role.MANAGER,
                description="Saved replies with placeholders and variants, so no two customers "
                "get the same text.",
            )
        )
        register_section(
            SettingsSection(
                "priority",
                "Priority and approval rules",
                "tickets:priority-rules",
                61,
                description="Keywords, hashtags and VIPs that raise priority; which replies "
                "need a manager's approval.",
            )
        )
        register_section(
            SettingsSection(
                "threading",
                "Threading",
                "tickets:settings-threading",
                order=62,
                description="When a customer's new post joins their open ticket, is offered for "
                "merge, or reopens a closed one.",
            )
        )
