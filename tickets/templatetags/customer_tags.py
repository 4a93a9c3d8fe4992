"""The customer sidebar beside a ticket, rendered where ``ticket.html`` includes it."""

from __future__ import annotations

from typing import Any

from django import template

from tickets.models import Ticket

register = template.Library()


@register.inclusion_tag("tickets/partials/customer_sidebar.html", takes_context=True)
def customer_sidebar(context: template.Context, ticket: Ticket) -> dict[str, Any]:
    from tickets.customer_views import sidebar_context

    # The ticket page computed it already for its live section "customer-info": reuse it.
    computed = context.get("customer_sidebar")
    if computed is not None and computed["ticket"].pk == ticket.pk:
        return computed  # type: ignore[no-any-return]
    return sidebar_context(ticket)
