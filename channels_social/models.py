"""Brands and the social accounts (X handles, later Facebook pages) they are reached on."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from careinbox.accounts.models import Organization
from careinbox.crypto import EncryptedJSONField
from careinbox.liveness import current_backend_pid, holder_gone
from careinbox.tenancy import OrgQuerySet


class Platform(models.TextChoices):
    X = "x", "X (Twitter)"
    FACEBOOK = "facebook", "Facebook"


class Brand(models.Model):
    """A brand an organisation cares for; it owns one or more social accounts."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="brands")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="brand_name_per_org")
        ]

    def __str__(self) -> str:
        return self.name


def stale_after(interval_seconds: int) -> timedelta:
    """How long without a successful poll before a handle counts as failing."""
    return timedelta(seconds=max(4 * interval_seconds, 60))


class SocialAccountQuerySet(OrgQuerySet["SocialAccount"]):
    def pollable(self) -> SocialAccountQuerySet:
        return self.filter(enabled=True)


class SocialAccount(models.Model):
    """A brand's handle on one platform, with its encrypted credentials and its poll state.

    ``api_base_url`` empty means the real platform API; set, every call goes to that address
    instead (the project's sandbox emulators).
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="social_accounts"
    )
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="social_accounts")
    platform = models.CharField(max_length=16, choices=Platform.choices, default=Platform.X)
    external_id = models.CharField(
        max_length=64, help_text="The platform's id of this account (X user id, Facebook page id)."
    )
    username = models.CharField(max_length=100, help_text="The handle, without '@'.")
    api_base_url = models.URLField(
        blank=True, help_text="Leave empty for the real API; set to reach a sandbox emulator."
    )
    credentials = EncryptedJSONField(blank=True, default=dict, editable=False)
    enabled = models.BooleanField(default=True)
    connected_at = models.DateTimeField(
        default=timezone.now,
        help_text="Mentions posted before this are not imported on the first poll, so "
        "connecting a busy handle does not fill the inbox with old, already-breached tickets.",
    )

    # Poll state (the cursors are PollCursor rows, one per stream). Beat polls the accounts
    # whose ``next_poll_at`` has come, most overdue first, so no handle is starved.
    next_poll_at = models.DateTimeField(null=True, blank=True)
    poll_queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When a poll task was last sent and not yet started."
    )
    poll_lease_until = models.DateTimeField(null=True, blank=True)
    # PostgreSQL: the database backend (``pg_backend_pid()``) of the poll holding the lease. A
    # worker killed mid-poll (SIGKILL, OOM) leaves its lease behind, but its connection closes
    # with it, so the next poll takes the lease over at once instead of waiting it out.
    poll_lease_holder = models.IntegerField(null=True, blank=True)
    last_polled_at = models.DateTimeField(
        null=True, blank=True, help_text="The end of the last poll that succeeded."
    )
    last_poll_error = models.TextField(blank=True)
    last_poll_error_at = models.DateTimeField(null=True, blank=True)
    rate_limit_remaining = models.IntegerField(null=True, blank=True)
    rate_limit_reset_at = models.DateTimeField(null=True, blank=True)
    # Why polling waits longer than its interval (a rate budget nearly or fully used).
    # (A database default too: code from before this column, mid-deploy, still inserts rows.)
    pacing_reason = models.CharField(max_length=300, blank=True, default="", db_default="")
    # Set when the platform refused the credentials themselves (revoked or expired): the
    # account is disabled until new credentials are saved or a re-check succeeds.
    auth_failed_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True, default="", db_default="")

    created_at = models.DateTimeField(auto_now_add=True)

    objects = SocialAccountQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "platform", "external_id"], name="account_once_per_org"
            )
        ]
        indexes = [
            models.Index(fields=["enabled", "next_poll_at"], name="account_poll_due_idx"),
        ]

    def __str__(self) -> str:
        return f"@{self.username} ({self.get_platform_display()})"

    def __repr__(self) -> str:  # never show credentials
        return f"<SocialAccount {self.pk} {self.platform}:@{self.username}>"

    @sensitive_variables("values")
    def set_credentials(self, **values: Any) -> None:
        self.credentials = {key: value for key, value in values.items() if value}

    def claim_poll(self, *, lease_seconds: int) -> datetime | None:
        """Atomically take the right to poll this account for a while; None if another holds it.

        Returns the lease's end, which ``release_poll`` needs: a poll that outlived its lease
        must not release the lease a later poll has taken since. On PostgreSQL a lease whose
        holder's database connection is gone (its worker was killed) is free at once.
        """
        now = timezone.now()
        lease_until = now + timedelta(seconds=lease_seconds)
        free = models.Q(poll_lease_until__isnull=True) | models.Q(poll_lease_until__lt=now)
        claimed = (
            SocialAccount.objects.filter(pk=self.pk, enabled=True)
            .filter(free | holder_gone("poll_lease_holder"))
            .update(poll_lease_until=lease_until, poll_lease_holder=current_backend_pid())
        )
        return lease_until if claimed == 1 else None

    def release_poll(self, lease_until: datetime) -> None:
        SocialAccount.objects.filter(pk=self.pk, poll_lease_until=lease_until).update(
            poll_lease_until=None, poll_lease_holder=None
        )

    def restart_intake(self) -> None:
        """Start like a newly connected account: no cursors, nothing from before now.

        For an account pointed at another platform id or API, so that its old posts are not
        imported as a backlog of breached tickets.
        """
        self.connected_at = timezone.now()
        if self.pk:
            self.cursors.all().delete()

    def poll_is_stale(self, now: datetime, interval_seconds: int) -> bool:
        """No successful poll for a few intervals (or ever, a while after connecting)."""
        last = self.last_polled_at or self.connected_at
        return self.enabled and now - last > stale_after(interval_seconds)


class RateBudget(models.Model):
    """One rate budget of an account as the platform's headers last told it: an X endpoint
    (``x-rate-limit-limit/remaining/reset``), or Graph's app and page budgets (``X-App-Usage``,
    ``X-Business-Use-Case-Usage``: a share of the hour used). Shown in the channel's health
    and used to pace its polls."""

    account = models.ForeignKey(
        SocialAccount, on_delete=models.CASCADE, related_name="rate_budgets"
    )
    endpoint = models.CharField(max_length=120)
    limit = models.IntegerField(null=True, blank=True)
    remaining = models.IntegerField(null=True, blank=True)
    used_percent = models.IntegerField(null=True, blank=True)
    reset_at = models.DateTimeField(null=True, blank=True)
    raw_headers = models.JSONField(default=dict, blank=True)
    observed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "endpoint"], name="one_budget_per_endpoint")
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.endpoint}: {self.describe()}"

    def describe(self) -> str:
        """The budget in words, for the health panel."""
        if self.used_percent is not None:
            text = f"{self.used_percent} % of the hour used"
        elif self.remaining is not None:
            text = f"{self.remaining}" + (f" of {self.limit}" if self.limit is not None else "")
            text += " calls left"
        else:
            text = "not reported"
        if self.reset_at is not None:
            text += f", resets {timezone.localtime(self.reset_at):%H:%M:%S}"
        return text


class MessengerIdentity(models.Model):
    """A Facebook person's two ids on one page: the id on their comments and posts, and the
    Page-scoped id (PSID) Messenger knows them by. Learned from a private reply's answer
    (``recipient_id``), so their Messenger answer joins the ticket of the comment it answers
    and the team's Messenger replies reach them."""

    account = models.ForeignKey(
        SocialAccount, on_delete=models.CASCADE, related_name="messenger_identities"
    )
    person_external_id = models.CharField(max_length=64)
    psid = models.CharField(max_length=64)
    learned_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "psid"], name="one_person_per_psid"),
        ]
        indexes = [models.Index(fields=["account", "person_external_id"], name="psid_by_person")]

    def __str__(self) -> str:
        return f"{self.account}: {self.person_external_id} is {self.psid} on Messenger"


class PollCursor(models.Model):
    """How far intake has read one stream of one account (mentions, DMs, one listening query).

    The position is the platform's own (an id, a paging token, a time); it moves only in the
    transaction that stores what was read up to it.
    """

    account = models.ForeignKey(SocialAccount, on_delete=models.CASCADE, related_name="cursors")
    stream = models.CharField(max_length=32)
    key = models.CharField(
        max_length=200, blank=True, help_text="Which one, for streams with several (a query)."
    )
    position = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "stream", "key"], name="one_cursor_per_stream"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.stream}{':' + self.key if self.key else ''} @ {self.position}"


class QuarantineQuerySet(OrgQuerySet["QuarantinedPost"]):
    def waiting(self) -> QuarantineQuerySet:
        return self.filter(resolved_at__isnull=True)


class QuarantinedPost(models.Model):
    """A post intake could not read or store: set aside with the error, so the rest moves on.

    ``payload`` is the post exactly as received, as ASCII-only JSON text (lossless, and storable
    whatever it holds); ``post`` is what the adapter made of it, when it could, for a retry.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(SocialAccount, on_delete=models.CASCADE, related_name="quarantine")
    stream = models.CharField(max_length=32)
    external_id = models.CharField(max_length=64, blank=True)
    error = models.TextField()
    payload = models.TextField(help_text="The raw item, as ASCII JSON.")
    post = models.TextField(blank=True, help_text="The parsed post, as ASCII JSON, if any.")
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_tried_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = QuarantineQuerySet.as_manager()

    class Meta:
        verbose_name = "quarantined post"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "stream", "external_id"],
                condition=models.Q(resolved_at__isnull=True) & ~models.Q(external_id=""),
                name="quarantine_once_while_waiting",
            )
        ]

    def __str__(self) -> str:
        return f"{self.stream} {self.external_id or '?'} from {self.account}: {self.error[:60]}"


# X's search query limit for recent search on the self-serve tiers is 512 characters
# (PLATFORMS.md; the spec allows up to 4,096 for the higher tiers). CareInbox adds
# " -is:retweet -from:<handle>" (at most 29 characters) to every query, so the admin's part
# keeps room for it.
LISTENING_QUERY_MAX_LENGTH = 512 - len(" -is:retweet -from:") - 15


# X's search operators (the v2 query syntax), the values ``is:`` and ``has:`` take, and the
# operators that cannot stand alone: a query of only these (or only negations) is refused.
X_OPERATORS = frozenset(
    {
        "from", "to", "url", "retweets_of", "context", "entity", "conversation_id", "list",
        "place", "place_country", "point_radius", "bounding_box", "is", "has", "lang",
        "in_reply_to_tweet_id", "retweets_of_tweet_id", "quotes_of_tweet_id", "sample",
    }
)  # fmt: skip
X_IS_VALUES = frozenset({"retweet", "reply", "quote", "verified", "nullcast"})
X_HAS_VALUES = frozenset(
    {"hashtags", "cashtags", "links", "mentions", "media", "images", "videos", "geo"}
)
NOT_STANDALONE = frozenset({"is", "has", "lang", "sample", "place_country"})


def x_query_problems(query: str) -> list[str]:
    """What X's recent search would refuse in ``query`` (beyond its length), in words."""
    problems: list[str] = []
    depth = 0
    for char in re.sub(r'"[^"]*"', "", query):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        problems.append("The brackets ( ) do not match up.")
    terms = re.findall(r'-?"[^"]*"|[^\s()]+', query)
    standalone = False
    for term in terms:
        negated = term.startswith("-") and len(term) > 1
        body = term[1:] if negated else term
        if body in ("OR", "AND"):
            continue
        if body.lower() in ("or", "and") and body not in ("OR", "AND"):
            problems.append(f'X needs "{body.upper()}" in capitals to mean {body.upper()}.')
            continue
        match = re.match(r"^([A-Za-z_]+):(.*)$", body)
        if match and not body.lower().startswith(("http:", "https:")):
            operator, value = match.group(1).lower(), match.group(2)
            if operator not in X_OPERATORS:
                problems.append(f"X search has no {operator}: operator.")
                continue
            if not value:
                problems.append(f"{operator}: needs a value after the colon.")
                continue
            if operator == "is" and value.lower() not in X_IS_VALUES:
                problems.append(
                    f"is:{value} is not an X operator (is: takes {_list(X_IS_VALUES)})."
                )
            if operator == "has" and value.lower() not in X_HAS_VALUES:
                problems.append(
                    f"has:{value} is not an X operator (has: takes {_list(X_HAS_VALUES)})."
                )
            if operator not in NOT_STANDALONE and not negated:
                standalone = True
        elif not negated:
            standalone = True
    if terms and not standalone and not problems:
        problems.append(
            "X needs at least one word, phrase, #hashtag or account that is not excluded; "
            "is:, has: and lang: only narrow a search down."
        )
    return problems


def _list(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def validate_listening_query(value: str) -> None:
    from django.core.exceptions import ValidationError

    text = value.strip()
    if not text:
        raise ValidationError("A listening query cannot be empty.")
    if len(text) > LISTENING_QUERY_MAX_LENGTH:
        raise ValidationError(
            f"This query is {len(text)} characters; X searches at most 512, and CareInbox "
            f"needs room for its filters, so keep it to {LISTENING_QUERY_MAX_LENGTH}."
        )
    if text.count('"') % 2:
        raise ValidationError('A quoted phrase is not closed: check the " marks.')
    problems = x_query_problems(text)
    if problems:
        raise ValidationError(problems)


class ListeningQueryQuerySet(OrgQuerySet["ListeningQuery"]):
    def enabled(self) -> ListeningQueryQuerySet:
        return self.filter(enabled=True)


class ListeningQuery(models.Model):
    """A search an admin writes for a brand (its name without the @, product names,
    ``#thissucks``-style hashtags). Each match not addressed to the brand opens a ticket under
    the brand's X account, marked as found by listening; each query has its own cursor,
    ``PollCursor(account, "search", key=str(pk))``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="listening_queries")
    query = models.CharField(
        max_length=LISTENING_QUERY_MAX_LENGTH,
        validators=[validate_listening_query],
        help_text='X search syntax: words, #hashtags, "quoted phrases", -excluded words. '
        "Retweets and the brand's own posts are left out.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ListeningQueryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "listening queries"
        constraints = [
            models.UniqueConstraint(fields=["brand", "query"], name="listening_query_once")
        ]

    def __str__(self) -> str:
        return f"{self.brand}: {self.query}"
