"""Outbound webhooks: an organisation's endpoints receive signed JSON for ticket and SLA events.

A Django app of its own (label ``webhooks``) inside ``monitoring``, the app furthest right, so it
may subscribe to ticket events and to monitoring's SLA events alike.
"""
