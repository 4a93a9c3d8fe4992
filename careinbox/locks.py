"""Transaction-level locks that serialise one organisation's ingest and event delivery."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

# The first key of the advisory locks (the second is the organisation's id); a constant no other
# lock in CareInbox uses.
ORGANIZATION_LOCK_NAMESPACE = 0x1D6E57


def lock_organizations(organization_ids: Iterable[int]) -> None:
    """Wait until no other transaction holds the write lock of these organisations, then hold
    it until the current transaction ends (PostgreSQL: ``pg_advisory_xact_lock``, taken in
    ascending order so two holders of several never wait on each other in a circle). SQLite
    serialises writers already: nothing to do.

    Ingest takes it (two handles of one organisation polled at once fetch the same posts and
    customers: without it their transactions deadlocked on the same identity or message, and
    two could thread one customer into two tickets), and so does the delivery of a batch of
    events (its handlers update the tickets a concurrent ingest or delivery of the same
    organisation updates, in another order). Other organisations run in parallel.
    """
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for organization_id in sorted(set(organization_ids)):
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [ORGANIZATION_LOCK_NAMESPACE, organization_id],
            )
