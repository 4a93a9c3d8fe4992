"""The locust users of ``bench/inbox_load.py``: signed-in agents working the inbox.

Each user takes one agent's session (``INBOX_LOAD_SESSIONS``, comma-separated session keys,
handed out in turn), loads the inbox page once, then does what the page does every 5 s, its
live poll (``?live=1&token=…`` with ``HX-Request``), without the 5 s wait (a closed loop: the
load is bounded by the number of users); every tenth request is the full page again.
"""

from __future__ import annotations

import itertools
import os
import re

from locust import HttpUser, task

SESSIONS = itertools.cycle(os.environ.get("INBOX_LOAD_SESSIONS", "").split(","))
VIEW = os.environ.get("INBOX_LOAD_VIEW", "open")
TOKEN = re.compile(r'id="live-token" name="token" value="([^"]+)"')


class Agent(HttpUser):
    def on_start(self) -> None:
        self.client.headers["Cookie"] = f"sessionid={next(SESSIONS)}"
        self.token = ""
        self.requests = 0
        self.page()

    def page(self) -> None:
        with self.client.get(f"/?view={VIEW}", name="inbox page", catch_response=True) as r:
            match = TOKEN.search(r.text)
            if r.status_code != 200 or not match:
                r.failure(f"status {r.status_code}, token {'found' if match else 'missing'}")
                return
            self.token = match.group(1)

    @task
    def work(self) -> None:
        self.requests += 1
        if self.requests % 10 == 0:
            self.page()
            return
        with self.client.get(
            f"/?view={VIEW}&live=1&token={self.token}",
            name="live poll",
            headers={"HX-Request": "true"},
            catch_response=True,
        ) as r:
            if r.status_code == 204:
                return
            match = TOKEN.search(r.text)
            if r.status_code != 200 or not match:
                r.failure(f"status {r.status_code}")
                return
            self.token = match.group(1)
