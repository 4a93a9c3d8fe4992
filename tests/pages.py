"""Reading what a page sends back, as the browser's htmx would."""

from __future__ import annotations

import json
import re


def live_vals(page: str) -> dict[str, str]:
    """The ticket page's live poller's values, as its htmx GET sends them."""
    found = re.search(r"""id="ticket-live"[^>]*hx-vals='([^']+)'""", page)
    assert found, "no live poller on the page"
    return {**json.loads(found.group(1))}
