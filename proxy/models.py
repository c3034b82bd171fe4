"""Where a public model name goes: routes, their deployments and the fallback order."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelRouteQuerySet(models.QuerySet):
    def visible_to(self, organization_id: int) -> ModelRouteQuerySet:
        """The platform's routes and the organization's own (which win on a name clash)."""
        return self.filter(Q(organization__isnull=True) | Q(organization_id=organization_id))


class ModelRoute(models.Model):
    """A public model name that clients ask for, mapped to one or more deployments."""

    organization = models.ForeignKey(
        "accounts.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="model_routes",
        help_text="Empty for a route every organization sees.",
    )
    public_name = models.CharField(max_length=200)
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ModelRouteQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "public_name"],
                condition=Q(organization__isnull=False),
                name="unique_org_model_route",
            ),
            models.UniqueConstraint(
                fields=["public_name"],
                condition=Q(organization__isnull=True),
                name="unique_platform_model_route",
            ),
        ]
        ordering = ["public_name"]

    def __str__(self) -> str:
        return self.public_name


class Deployment(models.Model):
    """One upstream that can serve a route.

    Deployments of the lowest ``priority`` share the traffic by ``weight``; the next
    priority is the fallback when every deployment of the previous one has failed.
    """

    route = models.ForeignKey(ModelRoute, on_delete=models.CASCADE, related_name="deployments")
    provider = models.CharField(
        max_length=20,
        choices=[
            ("openai", "OpenAI-compatible"),
            ("azure", "Azure OpenAI"),
            ("anthropic", "Anthropic"),
            ("fake", "Fake (offline)"),
        ],
    )
    credential = models.ForeignKey(
        "accounts.ProviderCredential",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deployments",
        help_text="Empty: the organization's own key for the provider, else the platform's.",
    )
    upstream_model = models.CharField(max_length=200)
    weight = models.PositiveIntegerField(default=1)
    priority = models.PositiveSmallIntegerField(default=0, help_text="0 first, then 1, ...")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["route", "priority", "-weight", "pk"]

    def __str__(self) -> str:
        return f"{self.route}: {self.provider}/{self.upstream_model} (p{self.priority})"


class TranslatedPrompt(models.Model):
    """A long system prompt compiled once into compact SynthLang by a cheap upstream model.

    Looked up by the hash of the original text; used only once it passed the same
    protected-content checks as every compression (``status == ready``).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        READY = "ready", "Ready"
        REJECTED = "rejected", "Rejected (failed the protected-content checks)"
        FAILED = "failed", "Failed (upstream error)"

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="translated_prompts"
    )
    source_hash = models.CharField(max_length=64)
    source_text = models.TextField()
    source_tokens = models.PositiveIntegerField(default=0)
    compiled_text = models.TextField(blank=True)
    compiled_tokens = models.PositiveIntegerField(default=0)
    translator_model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    detail = models.CharField(max_length=500, blank=True)
    uses = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "source_hash"], name="unique_translated_prompt"
            )
        ]
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.source_hash[:12]} ({self.status})"


class CacheEntry(models.Model):
    """A cached answer, the durable tier behind process memory and Redis.

    ``scope`` is who may see it (``org:<id>``, ``key:<id>`` or ``platform``);
    ``context_fingerprint`` covers everything but the final user turn (model, system
    prompt, history, tools, response format, sampling); ``exact_key`` adds the
    normalised final user turn.
    """

    organization = models.ForeignKey(
        "accounts.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="cache_entries",
    )
    scope = models.CharField(max_length=64)
    context_fingerprint = models.CharField(max_length=64)
    exact_key = models.CharField(max_length=64)
    question = models.TextField()
    embedding = models.BinaryField(null=True, blank=True)
    model = models.CharField(max_length=200)
    response = models.JSONField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "exact_key"], name="unique_cache_entry")
        ]
        indexes = [models.Index(fields=["scope", "context_fingerprint"])]
        ordering = ["-created_at"]
        verbose_name_plural = "cache entries"

    def __str__(self) -> str:
        return self.question[:80]


class StoredResponseQuerySet(models.QuerySet):
    def for_org(self, organization_id: int) -> StoredResponseQuerySet:
        return self.filter(organization_id=organization_id)

    def live(self, now) -> StoredResponseQuerySet:
        return self.filter(expires_at__gt=now)


class StoredResponse(models.Model):
    """A Responses API answer kept for ``GET /v1/responses/{id}`` and
    ``previous_response_id`` (``store: true``), until ``expires_at``.

    ``conversation`` is the whole exchange as chat messages (the earlier turns, this
    turn's input and the answer), without the instructions, which do not carry over;
    the next turn sends it again upstream.
    """

    id = models.CharField(primary_key=True, max_length=64)
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="stored_responses"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="stored_responses",
    )
    model = models.CharField(max_length=200)
    response = models.JSONField()
    conversation = models.JSONField()
    # This request's own input as Responses items, each with its id, for ``input_items``.
    input_items = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    objects = StoredResponseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return self.id


class UpstreamObjectQuerySet(models.QuerySet):
    def for_org(self, organization_id: int):
        return self.filter(organization_id=organization_id)


class UpstreamObject(models.Model):
    """What a file or batch lives on: the provider and key that hold it upstream.

    The proxy hands clients its own ids (``public_id``) and keeps the upstream's: one
    upstream account serves many organizations, and an id from another organization
    must not reach its object. The provider key is referenced, never copied, so key
    rotation and re-encryption cover it.
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE)
    public_id = models.CharField(max_length=64, unique=True)
    upstream_id = models.CharField(max_length=200)
    provider = models.CharField(max_length=32)
    credential = models.ForeignKey(
        "accounts.ProviderCredential", on_delete=models.SET_NULL, null=True, blank=True
    )
    platform_key = models.BooleanField(
        default=False, help_text="Held under the platform's OPENAI_API_KEY."
    )
    # The creator, for attribution of what the object later costs.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.SET_NULL, null=True, blank=True)
    # The upstream's object as last seen, ids rewritten to ours (lists are served from it).
    snapshot = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = UpstreamObjectQuerySet.as_manager()

    class Meta:
        abstract = True


class UpstreamFile(UpstreamObject):
    purpose = models.CharField(max_length=32)
    filename = models.CharField(max_length=255)
    bytes = models.PositiveBigIntegerField(default=0)
    # For a batch input file: the one model its lines name, public and upstream.
    batch_model = models.CharField(max_length=200, blank=True)
    batch_endpoint = models.CharField(max_length=64, blank=True)
    batch_lines = models.PositiveIntegerField(default=0)
    batch_prompt_tokens = models.PositiveBigIntegerField(
        default=0, help_text="The lines' prompt tokens, counted at upload (budget checks)."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="file_org_created")]

    def __str__(self) -> str:
        return self.public_id


class UpstreamBatch(UpstreamObject):
    input_file = models.ForeignKey(
        UpstreamFile, on_delete=models.SET_NULL, null=True, related_name="batches"
    )
    output_file = models.ForeignKey(
        UpstreamFile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error_file = models.ForeignKey(
        UpstreamFile, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    model = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=64)
    accounted_at = models.DateTimeField(
        null=True, blank=True, help_text="When its results were fetched and their usage recorded."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="batch_org_created")]

    def __str__(self) -> str:
        return self.public_id
