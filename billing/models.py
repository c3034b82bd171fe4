"""Prices, usage events, daily rollups, budgets and reports. Money is integer micro-dollars."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from accounts.models import ApiKey, Organization


class Price(models.Model):
    """A model's list price from ``effective_from`` on; later rows supersede, never rewrite.

    A change of price is a new row: past usage keeps the cost it was recorded with, and
    the flush prices each event with the row in force at the event's ``created_at``.
    """

    model_pattern = models.CharField(
        max_length=200,
        help_text=(
            "Exact model name, or a glob such as 'gpt-4o-2024-*'. The most specific match "
            "wins. 'tool:<tool>' (tool:web_search) prices a provider's built-in tool per "
            "call, in the per-unit price."
        ),
    )
    effective_from = models.DateTimeField()
    input_per_mtok_micros = models.PositiveBigIntegerField(
        help_text="Micro-dollars per million input tokens ($2.50 = 2500000)."
    )
    output_per_mtok_micros = models.PositiveBigIntegerField(
        help_text="Micro-dollars per million output tokens."
    )
    cached_input_per_mtok_micros = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Micro-dollars per million cached input tokens; empty = the input price.",
    )
    cache_write_per_mtok_micros = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Micro-dollars per million input tokens written to the provider's prompt cache "
            "(Anthropic: 1.25 times the input price); empty = the input price."
        ),
    )
    per_unit_micros = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Micro-dollars per unit, for models billed by the unit rather than (or beside) "
            "the token: per image (image models), per second of audio (transcription), "
            "per character of input (speech), per call of a built-in tool (a tool:<tool> "
            "row); empty = not billed per unit."
        ),
    )
    batch_input_per_mtok_micros = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Micro-dollars per million input tokens in a batch; empty = half the input price."
        ),
    )
    batch_output_per_mtok_micros = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Micro-dollars per million output tokens in a batch; empty = half the output price."
        ),
    )
    source = models.CharField(max_length=300, blank=True, help_text="Where the price comes from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_pattern", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_pattern", "effective_from"], name="unique_price_per_model_and_date"
            ),
            models.CheckConstraint(
                condition=Q(cached_input_per_mtok_micros__isnull=True)
                | Q(cached_input_per_mtok_micros__lte=F("input_per_mtok_micros")),
                name="cached_price_not_above_input_price",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_pattern} from {self.effective_from:%Y-%m-%d}"


class Endpoint(models.TextChoices):
    CHAT = "chat.completions", "Chat completions"
    COMPLETIONS = "completions", "Completions"
    EMBEDDINGS = "embeddings", "Embeddings"
    RESPONSES = "responses", "Responses"
    MESSAGES = "messages", "Messages"
    MODERATIONS = "moderations", "Moderations"
    IMAGES = "images.generations", "Image generations"
    SPEECH = "audio.speech", "Speech"
    TRANSCRIPTIONS = "audio.transcriptions", "Transcriptions"
    TRANSLATIONS = "audio.translations", "Translations"
    BATCHES = "batches", "Batches"


class UsageEventQuerySet(models.QuerySet):
    def for_org(self, organization) -> UsageEventQuerySet:
        return self.filter(organization=organization)


class UsageEvent(models.Model):
    """One proxied request, exactly once. Append-only: written by the flush, never edited."""

    request_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="usage_events"
    )
    # Usage outlives its user and key: deleting either keeps the cost on the books.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_events",
    )
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage_events"
    )
    endpoint = models.CharField(max_length=32, choices=Endpoint.choices)
    model = models.CharField(
        max_length=200, help_text="The public model name the client asked for."
    )
    upstream_model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(
        default=0, help_text="Input tokens read from the provider's prompt cache."
    )
    cache_write_tokens = models.PositiveIntegerField(
        default=0, help_text="Input tokens written to the provider's prompt cache."
    )
    status_code = models.PositiveSmallIntegerField(default=200)
    error_code = models.CharField(max_length=64, blank=True)
    stream = models.BooleanField(default=False)
    client_disconnected = models.BooleanField(default=False)
    cache = models.CharField(max_length=8, default="off")
    cache_tier = models.CharField(max_length=16, blank=True)
    tokens_saved = models.PositiveIntegerField(default=0, help_text="Removed by compression.")
    compression_level = models.CharField(max_length=16, blank=True)
    latency_ms = models.FloatField(default=0.0)
    upstream_ms = models.FloatField(default=0.0)
    overhead_ms = models.FloatField(default=0.0)
    cost_micros = models.BigIntegerField(default=0)
    avoided_cost_micros = models.BigIntegerField(
        default=0, help_text="What a cache hit would have cost upstream."
    )
    compression_saved_micros = models.BigIntegerField(
        default=0, help_text="Value of the input tokens compression removed."
    )
    prompt_cache_saved_micros = models.BigIntegerField(
        default=0,
        help_text=(
            "Input as if uncached minus input as billed (the provider's prompt cache); "
            "negative on a request that only wrote to the cache."
        ),
    )
    price_unknown = models.BooleanField(
        default=False, help_text="No price matched; the unknown-model rule priced it."
    )
    usage_estimated = models.BooleanField(
        default=False, help_text="The upstream sent no usage; the tokens were counted here."
    )
    units = models.PositiveBigIntegerField(
        default=0,
        help_text=(
            "What a per-unit price applies to: images generated, seconds of audio "
            "transcribed, characters spoken."
        ),
    )
    batch = models.BooleanField(
        default=False, help_text="Results of a batch, priced at the batch rates."
    )
    tool_calls = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Calls of the provider's built-in tools (web search, file search...) by tool, "
            "each billed at the per-unit fee of the price named tool:<tool>."
        ),
    )
    # Attribution inside an organization: who and what the spend was for (chargeback).
    end_user = models.CharField(
        max_length=256, blank=True, help_text="OpenAI's `user` field: the client's end user."
    )
    tags = models.CharField(
        max_length=800,
        blank=True,
        help_text=(
            "The x-synthlang-tags header, stored as ',a,b,' so that one tag is matched "
            "by ',a,' on every database."
        ),
    )
    metadata = models.JSONField(
        default=dict, blank=True, help_text="The request's `metadata` object (strings)."
    )
    # What the pipeline's stages did (proxy/pipeline): small str/int/bool values by stage.
    annotations = models.JSONField(
        default=dict, blank=True, help_text="What each pipeline stage did, by stage name."
    )

    objects = UsageEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="usage_org_created"),
            # Spend per end user: the chargeback report's filter and grouping.
            models.Index(
                fields=["organization", "end_user", "created_at"], name="usage_org_end_user"
            ),
            # Retention deletes by age across every organization.
            models.Index(fields=["created_at"], name="usage_created"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status_code}"


# The additive counters of a rollup row: summed by the flush, summed again by reports.
ROLLUP_SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cost_micros",
    "cache_hits",
    "avoided_cost_micros",
    "tokens_saved",
    "compression_saved_micros",
    "prompt_cache_saved_micros",
    "price_unknown_requests",
    "latency_ms_sum",
    "upstream_ms_sum",
    "overhead_ms_sum",
)


class DailyUsageRollup(models.Model):
    """Per day, organization, user, key and model: the sums every report reads.

    ``user_id``/``api_key_id`` are plain integers (0 = none), not foreign keys: rollups
    are kept forever and must neither vanish nor merge when a user or key is deleted,
    and a NOT NULL dimension keeps the unique constraint meaningful on every database.
    """

    day = models.DateField()
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="usage_rollups"
    )
    user_id = models.PositiveBigIntegerField(default=0)
    api_key_id = models.PositiveBigIntegerField(default=0)
    model = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    cache_hits = models.PositiveBigIntegerField(default=0)
    avoided_cost_micros = models.BigIntegerField(default=0)
    tokens_saved = models.PositiveBigIntegerField(default=0)
    compression_saved_micros = models.BigIntegerField(default=0)
    prompt_cache_saved_micros = models.BigIntegerField(default=0)
    price_unknown_requests = models.PositiveBigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0.0)
    upstream_ms_sum = models.FloatField(default=0.0)
    overhead_ms_sum = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-day", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "organization", "user_id", "api_key_id", "model"],
                name="unique_daily_rollup_dimensions",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "day"], name="rollup_org_day"),
            # The platform-wide dashboard filters by day alone.
            models.Index(fields=["day"], name="rollup_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.organization_id} {self.model}"


class BudgetScope(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    MEMBER = "member", "Member"
    KEY = "key", "API key"


class Budget(models.Model):
    """A monthly (UTC calendar month) spending limit on an organization, a member or a key."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="budgets")
    scope = models.CharField(max_length=16, choices=BudgetScope.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="budgets",
    )
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    monthly_limit_micros = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Hard limit: requests beyond it get 429. Empty = none."
    )
    soft_limit_micros = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Alert once a month when spend reaches it. Empty = none."
    )
    webhook_url = models.URLField(blank=True, help_text="POSTed a JSON alert when a limit is hit.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "scope"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(scope="organization", user__isnull=True, api_key__isnull=True)
                    | Q(scope="member", user__isnull=False, api_key__isnull=True)
                    | Q(scope="key", user__isnull=True, api_key__isnull=False)
                ),
                name="budget_scope_matches_target",
            ),
            models.CheckConstraint(
                condition=Q(soft_limit_micros__isnull=True)
                | Q(monthly_limit_micros__isnull=True)
                | Q(soft_limit_micros__lte=F("monthly_limit_micros")),
                name="budget_soft_not_above_hard",
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(scope="organization"),
                name="unique_organization_budget",
            ),
            models.UniqueConstraint(
                fields=["organization", "user"],
                condition=Q(scope="member"),
                name="unique_member_budget",
            ),
            models.UniqueConstraint(
                fields=["api_key"], condition=Q(scope="key"), name="unique_key_budget"
            ),
        ]

    def __str__(self) -> str:
        if self.scope == BudgetScope.MEMBER:
            target = f"member {self.user}"
        elif self.scope == BudgetScope.KEY:
            target = f"key {self.api_key}"
        else:
            target = "organization"
        return f"{self.organization} / {target}"


class AlertKind(models.TextChoices):
    SOFT = "soft", "Soft limit reached"
    HARD = "hard", "Hard limit reached"


class BudgetAlert(models.Model):
    """A budget's limit reached in a month. At most one of each kind per budget and month."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="budget_alerts"
    )
    month = models.DateField(help_text="First day of the month (UTC).")
    kind = models.CharField(max_length=8, choices=AlertKind.choices)
    spent_micros = models.BigIntegerField()
    limit_micros = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)
    webhook_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "month", "kind"], name="one_alert_per_budget_month_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget}: {self.get_kind_display()} ({self.month:%Y-%m})"


class MonthlyReport(models.Model):
    """An organization's usage for one month, generated by Celery, downloadable as CSV."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="monthly_reports"
    )
    month = models.DateField(help_text="First day of the month (UTC).")
    csv_content = models.TextField()
    summary = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-month", "organization"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "month"], name="one_report_per_org_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m}"

    @property
    def filename(self) -> str:
        return f"usage-{self.organization.slug}-{self.month:%Y-%m}.csv"
