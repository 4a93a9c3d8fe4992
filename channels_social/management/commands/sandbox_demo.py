"""``manage.py sandbox_demo``: a steady, realistic stream of customer mentions into the X sandbox.

It registers every X account that points at ``settings.X_SANDBOX_URL`` as a user in the
emulator, posts a burst, then a trickle: complaints, questions, praise, the odd furious
influencer, and now and then a customer chasing their own earlier post. One post in four goes
to a Facebook page instead, when one points at ``settings.FACEBOOK_SANDBOX_URL``: a comment under
the page's post (or a reply in a customer's own comment thread), a visitor post, or a Messenger
message (``channels_social.management.facebook_sandbox``).

It is a demo helper next to the real stack, so it never stops on its own account:

* it never collides with itself. A customer's id is derived from the handle, so the same
  handle is the same user in every run (the emulator keeps its users across restarts, in
  ``var/x_sandbox_state.json``); one run never draws the same handle twice; and a handle the
  emulator already knows under another id (a hand-made ``sandbox_post`` user, a user made by
  an older version of this command) is adopted with that id rather than fought over;
* any error (emulator down or restarted, database not migrated yet, no account yet, a refused
  post) is logged, waited out with a capped backoff, and the stream goes on. Only Ctrl-C or
  ``--count`` ends it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from channels_social.management.facebook_sandbox import FacebookDemo
from channels_social.models import Platform, SocialAccount
from channels_social.sandbox.x.control import SandboxControl, SandboxError, SandboxUnreachable

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
# One post in four goes to the Facebook page, when there is one in the Facebook emulator.
FACEBOOK_SHARE = 0.25
FACEBOOK_RECHECK_SECONDS = 30.0

FIRST_NAMES = [
    "Amelia",
    "Noah",
    "Priya",
    "Lucas",
    "Sofia",
    "Mateo",
    "Aisha",
    "Liam",
    "Chloe",
    "Omar",
    "Hannah",
    "Kenji",
    "Zoe",
    "Diego",
    "Fatima",
    "Ethan",
    "Maya",
    "Jonas",
    "Leila",
    "Ravi",
    "Grace",
    "Tomasz",
    "Ines",
    "Samuel",
    "Yara",
    "Daniel",
    "Mei",
    "Oliver",
    "Nadia",
    "Felix",
]
LAST_NAMES = [
    "Smith",
    "Garcia",
    "Patel",
    "Müller",
    "Rossi",
    "Kim",
    "Okafor",
    "Nguyen",
    "Silva",
    "Cohen",
    "Brown",
    "Haddad",
    "Lopez",
    "Novak",
    "Tanaka",
    "Andersen",
    "Murphy",
    "Dubois",
    "Kowalski",
    "Mensah",
]
PRODUCTS = ("headphones", "blender", "running shoes", "laptop stand", "coffee machine", "jacket")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August")
CITIES = ("Leeds", "Austin", "Lyon", "Rotterdam", "Dublin", "Porto", "Denver", "Manchester")

COMPLAINTS = (
    "My order {order} was due {days} days ago and tracking hasn't moved since. What's going on?",
    "Ordered the {product} on {date}, still nothing. Order {order}. Can someone help?",
    "You charged my card twice for order {order} (£{amount} each). Please refund the duplicate.",
    "I was billed £{amount} for a subscription I cancelled last month. Not ok.",
    "Your app has been down all morning, can't log in or check my order {order}.",
    "Site keeps erroring at checkout, tried 4 times. Is there an outage?",
    "The delivery driver left my parcel in the rain, {product} box soaked through. Order {order}.",
    "Received the wrong {product}. Order {order}. How do I swap it without paying return postage?",
    "Staff at your {city} store were really rude to my mum today. Expected better.",
    "Waited 50 minutes on hold and got cut off. Twice. Order {order}.",
    "Refund for order {order} was promised {days} days ago. Still not in my account.",
    "Your chat bot keeps looping me back to the start. I just need to change my address!",
    "The {product} stopped working after {days} days. Warranty claim ignored so far.",
    "Promo code from your email says invalid at checkout. Pretty annoying tbh.",
)
QUESTIONS = (
    "Do you deliver to {city} on Saturdays?",
    "Hi! Can I change the delivery address for order {order}? It hasn't shipped yet.",
    "Is the {product} back in stock anytime soon?",
    "How long do refunds usually take to show up? Returned order {order} last week.",
    "Quick one: does the {product} come with a UK plug?",
    "Can I return something bought in the {city} store online?",
    "What's the warranty on the {product}?",
    "Is there a student discount? Couldn't find it on the site.",
    "Hey, my tracking for {order} says 'exception', what does that mean?",
)
PRAISE = (
    "Shoutout to the team at your {city} store, {first} sorted my return in 2 minutes. Legends.",
    "Loving the new {product}, best purchase this year.",
    "Order {order} arrived a day early, thank you!",
    "Great service from {first} on chat today, really patient. Thanks!",
    "Have to say the refund was super quick. Appreciated.",
)
ANGRY = (
    "Third week chasing order {order}. Nobody answers. Never again. #thissucks",
    "Charged £{amount} for nothing and support ghosts me. Avoid. #thissucks",
    "Shocking service. {days} days, zero updates, zero refund. #thissucks #customerservice",
    "Your outage cost me a day's work and not a word from you. Disgraceful. #thissucks",
    "Rude staff in {city}, broken {product}, no reply here. Done with this brand. #thissucks",
)
FOLLOW_UPS = (
    "Any update on this? Still waiting.",
    "Hello?? It's been {hours} hours.",
    "Still nothing. Really disappointed.",
    "Bumping this, nobody has replied yet.",
    "Update: still no refund. Please DM me.",
    "Thanks for nothing so far...",
)
KINDS = (("complaint", COMPLAINTS, 45), ("question", QUESTIONS, 30), ("praise", PRAISE, 15))
# X: a customer the brand took offline answers its DM; a post that names no handle but matches
# the demo's listening query (careinbox/demo.py seeds "#thissucks"); a quote post.
DM_ANSWERS = (
    "Sure, it's order {order}. Thanks for getting back to me.",
    "The order number is {order}, delivery to {city}.",
    "I paid £{amount} on {date}. The {product} never came.",
    "Thanks! Tracking still says nothing, order {order}.",
)
LISTENING = (
    "Day {days} waiting for my {product}, customer service unreachable #thissucks",
    "Third time my {product} order is cancelled without a word #thissucks",
)
QUOTES = ("Same thing happened to me, order {order}.", "This. Still no answer {days} days on.")


@dataclass
class Customer:
    id: str
    username: str
    name: str
    followers: int
    posts: dict[str, list[str]] = field(default_factory=dict)  # brand handle -> post ids


class NotReady(Exception):
    """Setup cannot finish yet (no account points at the sandbox); retried, never fatal."""


def customer_id(username: str) -> str:
    """A stable X id for a demo handle: the same handle is the same user in every run.

    Derived, not drawn, so a restarted generator re-uses the users it made before instead of
    asking the emulator to give an existing handle to a new id (which it refuses).
    """
    digest = hashlib.sha256(f"careinbox-demo:{username.lower()}".encode()).digest()
    return str(10**15 + int.from_bytes(digest[:8], "big") % (9 * 10**17))


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 1, 2, 4, ... up to 30."""
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(0, failures - 1)))


class Command(BaseCommand):
    help = "Post a realistic stream of customer mentions to the brand accounts in the X sandbox."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval", type=float, default=10.0, help="Mean seconds between posts."
        )
        parser.add_argument("--burst", type=int, default=6, help="Posts sent at once at the start.")
        parser.add_argument(
            "--count", type=int, default=0, help="Stop after N posts (0 = forever)."
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--wait",
            type=float,
            default=30.0,
            help="Seconds to wait for the sandbox before logging that it is not up (and "
            "waiting on).",
        )
        parser.add_argument(
            "--customers", type=int, default=40, help="Ordinary customers (plus 5 influencers)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.url = settings.X_SANDBOX_URL.rstrip("/")
        self.control = SandboxControl(self.url)
        self.rng = random.Random(options["seed"])  # noqa: S311 - demo data, not security
        self.facebook = FacebookDemo(self.rng)
        self.facebook_checked_at = -FACEBOOK_RECHECK_SECONDS
        try:
            brands = self._until_ready(options["wait"])
            customers = self._customers(options["customers"])
            self._stream(brands, customers, options)
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")

    # Setup, retried until it works

    def _until_ready(self, wait: float) -> list[str]:
        failures = 0
        while True:
            try:
                self.control.wait_until_up(wait)
                return self._register_accounts()
            except (SandboxError, DatabaseError, NotReady) as exc:
                failures += 1
                delay = backoff(failures)
                logger.warning(
                    "Demo mentions: not ready (%s: %s); trying again in %.0f s.",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                close_old_connections()  # a broken connection must not poison the next try
                time.sleep(delay)

    def _register_accounts(self) -> list[str]:
        accounts = [
            account
            for account in SocialAccount.objects.filter(platform=Platform.X).select_related("brand")
            if account.api_base_url.rstrip("/") == self.url
        ]
        if not accounts:
            raise NotReady(
                f"no X account points at the sandbox ({self.url}); set an account's API base "
                "URL to it in the admin (or run the seed command)"
            )
        for account in accounts:
            self.control.upsert_user(
                id=account.external_id,
                username=account.username,
                name=account.brand.name,
                followers_count=250_000,
            )
            self.stdout.write(
                f"Registered @{account.username} ({account.brand.name}) in the sandbox."
            )
        self.brand_ids = {account.username: account.external_id for account in accounts}
        return [account.username for account in accounts]

    # Customers: distinct handles, stable ids, reconciled with the emulator

    def _customers(self, ordinary: int) -> list[Customer]:
        taken: set[str] = set()
        customers = [self._new_customer(taken, influencer=False) for _ in range(ordinary)]
        customers += [self._new_customer(taken, influencer=True) for _ in range(5)]
        for customer in customers:
            self._adopt_existing(customer)
        return customers

    def _new_customer(self, taken: set[str], *, influencer: bool) -> Customer:
        for attempt in range(1000):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            style = self.rng.choice(("{f}{n}", "{f}_{l}", "{f}{l}{n}", "the_{f}"))
            if attempt > 20:
                style = "{f}{l}{n}"  # the widest pattern, once the pool is crowded
            handle = style.format(
                f=first.lower(), l=last.lower().replace("ü", "u"), n=self.rng.randint(1, 999)
            )[:15]
            if handle.lower() not in taken:
                break
        else:  # 30 x 20 x 999 combinations: unreachable for any sensible --customers
            raise ValueError("no free demo handle left")
        taken.add(handle.lower())
        followers = (
            self.rng.randint(20_000, 500_000)
            if influencer
            else int(self.rng.triangular(50, 3_000, 300))
        )
        return Customer(
            id=customer_id(handle), username=handle, name=f"{first} {last}", followers=followers
        )

    def _adopt_existing(self, customer: Customer) -> None:
        """If the emulator knows the handle under another id, become that user.

        Best effort: an unreachable emulator here is found again (and logged) at the first post.
        """
        try:
            known = self.control.user_by_username(customer.username)
        except SandboxError:
            return  # no such user (404) or not reachable: keep our id
        if known.get("id") and known["id"] != customer.id:
            customer.id = str(known["id"])

    # The stream: every failure logged and survived

    def _stream(
        self, brands: list[str], customers: list[Customer], options: dict[str, Any]
    ) -> None:
        posted = failures = 0
        needs_registration = False
        try:
            while options["count"] == 0 or posted < options["count"]:
                brand = self.rng.choice(brands)
                try:
                    if needs_registration:  # the emulator may have restarted empty
                        brands = self._register_accounts()
                        needs_registration = False
                    self._post_one_anywhere(brand, customers)
                except Exception as exc:  # a demo helper: log it, wait, go on
                    failures += 1
                    needs_registration = True
                    delay = backoff(failures)
                    logger.warning(
                        "Demo mentions: a post to @%s failed (%s: %s); going on in %.0f s.",
                        brand,
                        type(exc).__name__,
                        exc,
                        delay,
                        exc_info=not isinstance(exc, SandboxError | DatabaseError | NotReady),
                    )
                    if isinstance(exc, DatabaseError):
                        close_old_connections()
                    time.sleep(delay)
                    continue
                failures = 0
                posted += 1
                if options["count"] and posted >= options["count"]:
                    break
                if posted < options["burst"]:
                    time.sleep(0.2)
                else:
                    time.sleep(max(0.1, options["interval"] * self.rng.uniform(0.4, 1.6)))
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"Stopped after {posted} posts.")

    def _post_one_anywhere(self, brand: str, customers: list[Customer]) -> None:
        """Now and then a Facebook customer (a comment, a visitor post, a Messenger message)
        instead of an X mention, when a Facebook page points at the Facebook emulator."""
        now = time.monotonic()
        if not self.facebook.pages and now - self.facebook_checked_at > FACEBOOK_RECHECK_SECONDS:
            self.facebook_checked_at = now
            self.facebook.pages_in_sandbox()
        if self.facebook.pages and self.rng.random() < FACEBOOK_SHARE:
            customer = self.rng.choice([c for c in customers if c.followers < 20_000])
            line = self.facebook.post_one(
                person_id=customer.id,
                name=customer.name,
                text=self._fill(self.rng.choice(COMPLAINTS + QUESTIONS + PRAISE)),
                follow_up=self._fill(self.rng.choice(FOLLOW_UPS)),
            )
            self.stdout.write(f"{time.strftime('%H:%M:%S')} {line}")
            self.stdout.flush()
            return
        self._post_one(brand, customers)

    def _fill(self, template: str) -> str:
        return template.format(
            order=f"#{self.rng.choice('ABCDEFGHJK')}{self.rng.randint(100000, 999999)}",
            days=self.rng.randint(2, 14),
            amount=f"{self.rng.uniform(9, 480):.2f}",
            product=self.rng.choice(PRODUCTS),
            city=self.rng.choice(CITIES),
            first=self.rng.choice(FIRST_NAMES),
            date=f"{self.rng.randint(1, 28)} {self.rng.choice(MONTHS)}",
            hours=self.rng.randint(3, 48),
        )

    def _x_extra(self, brand: str, customers: list[Customer], chasers: list[Customer]) -> bool:
        """Now and then a DM answer, a listening match or a quote instead of a mention."""
        roll = self.rng.random()
        if roll < 0.25 and self._answer_a_dm(brand, customers):
            return True
        if roll > 0.95 or (roll > 0.9 and not chasers):
            customer = self.rng.choice(customers)
            post = self.control.post_tweet(
                customer.id,
                customer.username,
                self._fill(self.rng.choice(LISTENING)),
                followers=customer.followers,
            )
            self._log("listening", customer, post["id"], post["text"])
            return True
        if roll > 0.9:
            quoted = self.rng.choice(chasers).posts[brand][-1]
            customer = self.rng.choice(customers)
            text = f"@{brand} {self._fill(self.rng.choice(QUOTES))}"
            post = self.control.post_tweet(
                customer.id, customer.username, text, followers=customer.followers, quote_of=quoted
            )
            customer.posts.setdefault(brand, []).append(post["id"])
            self._log("quote", customer, post["id"], post["text"])
            return True
        return False

    def _answer_a_dm(self, brand: str, customers: list[Customer]) -> bool:
        """A customer whose last DM with the brand is the brand's (taken offline) answers it."""
        brand_id = getattr(self, "brand_ids", {}).get(brand)
        if not brand_id:
            return False
        waiting: dict[str, bool] = {}
        for event in self.control.dm_events(brand_id):
            other = next((p for p in event["participant_ids"] if p != brand_id), "")
            waiting[other] = event["sender_id"] == brand_id
        candidates = [c for c in customers if waiting.get(c.id)]
        if not candidates:
            return False
        customer = self.rng.choice(candidates)
        text = self._fill(self.rng.choice(DM_ANSWERS))
        event = self.control.send_dm(
            brand, customer.id, customer.username, text, followers=customer.followers
        )
        self._log("dm", customer, str(event["id"]), text)
        return True

    def _log(self, kind: str, customer: Customer, post_id: str, text: str) -> None:
        self.stdout.write(
            f"{time.strftime('%H:%M:%S')} {kind:<9} @{customer.username} "
            f"({customer.followers:,} followers) -> {post_id}: {text}"
        )
        self.stdout.flush()

    def _post_one(self, brand: str, customers: list[Customer]) -> None:
        chasers = [c for c in customers if c.posts.get(brand)]
        if self._x_extra(brand, customers, chasers):
            return
        in_reply_to: str | None = None
        if chasers and self.rng.random() < 0.15:
            customer, kind = self.rng.choice(chasers), "follow-up"
            in_reply_to = customer.posts[brand][-1]
            text = self._fill(self.rng.choice(FOLLOW_UPS))
        elif self.rng.random() < 0.08:
            customer, kind = (
                self.rng.choice([c for c in customers if c.followers >= 20_000]),
                "angry",
            )
            text = self._fill(self.rng.choice(ANGRY))
        else:
            customer = self.rng.choice([c for c in customers if c.followers < 20_000])
            kind, templates, _ = self.rng.choices(KINDS, weights=[w for *_, w in KINDS])[0]
            text = self._fill(self.rng.choice(templates))
        try:
            post = self.control.post_mention(
                to_username=brand,
                author_id=customer.id,
                author_username=customer.username,
                author_name=customer.name,
                followers=customer.followers,
                text=text,
                in_reply_to=in_reply_to,
            )
        except SandboxUnreachable:
            raise
        except SandboxError:
            if in_reply_to:  # the post it chased may be gone (the emulator was reset)
                customer.posts[brand].remove(in_reply_to)
            self._adopt_existing(customer)  # someone may have taken the handle meanwhile
            raise
        customer.posts.setdefault(brand, []).append(post["id"])
        self.stdout.write(
            f"{time.strftime('%H:%M:%S')} {kind:<9} @{customer.username} "
            f"({customer.followers:,} followers) -> {post['id']}: {post['text']}"
        )
        self.stdout.flush()
