"""Who may use the proxy, on whose behalf, and with which upstream secrets."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from common.outbound import validate_outbound_url


class User(AbstractUser):
    """The project's user from the first migration, so it can grow without a swap."""


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    PREMIUM = "premium", "Premium"
    BASIC = "basic", "Basic"


class CompressionLevel(models.TextChoices):
    DEFAULT = "", "Platform default"
    OFF = "off", "Off"
    LOW = "low", "Low: lossless, safe on any text"
    MEDIUM = "medium", "Medium: also rewords instructions"
    HIGH = "high", "High: telegraphic, changes wording"


class CacheScope(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    KEY = "key", "API key"
    PLATFORM = "platform", "Platform-wide"


class PromptCacheKeyScope(models.TextChoices):
    OFF = "off", "Off"
    ORGANIZATION = "organization", "One key per organization"
    KEY = "key", "One key per API key"


def default_compression_roles() -> list[str]:
    return ["system", "user"]


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Aggregate limits for the whole organization; empty means no organization-wide cap.
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # Models the organization may use; empty means every model.
    allowed_models = models.JSONField(default=list, blank=True)

    compression_level = models.CharField(
        max_length=10,
        choices=CompressionLevel.choices,
        default=CompressionLevel.DEFAULT,
        blank=True,
    )
    compression_roles = models.JSONField(default=default_compression_roles, blank=True)
    # Lossless agent-context compression (JSON minified, repeated results and log lines
    # referenced) of tool results and tool-call arguments, at every level but off.
    compression_tool_results = models.BooleanField(
        default=True,
        help_text="Minify JSON in tool results and tool-call arguments, count runs of repeated "
        "lines, and replace a result that repeats an earlier one with a reference. Lossless; "
        "file contents keep their bytes.",
    )
    # Prompts and completions are what tenants are most careful about: they leave the proxy
    # in traces only when the organization asks (docs/decisions/0029).
    trace_content = models.BooleanField(
        "Prompts and completions in traces",
        default=False,
        help_text="Attach the prompt sent upstream and the completion to this organization's "
        "OpenTelemetry spans as span events. Off: spans carry ids, names and numbers only.",
    )
    cache_enabled = models.BooleanField(default=True)
    cache_scope = models.CharField(
        max_length=20, choices=CacheScope.choices, default=CacheScope.ORGANIZATION
    )
    # The upstream providers' own prompt caches (docs/decisions/0012).
    prompt_cache_breakpoints = models.BooleanField(
        "Anthropic cache breakpoints",
        default=True,
        help_text=(
            "Mark the stable prefix (tools, system prompt, earlier turns) of requests to "
            "Anthropic models for Anthropic's prompt cache, which bills cached input at a "
            "tenth of the input price (writes at 1.25 times). Never when the client marks "
            "it itself."
        ),
    )
    prompt_cache_key_scope = models.CharField(
        "OpenAI prompt_cache_key",
        max_length=20,
        choices=PromptCacheKeyScope.choices,
        default=PromptCacheKeyScope.ORGANIZATION,
        help_text=(
            "Send OpenAI a prompt_cache_key (an opaque hash, never an id) so requests that "
            "share a prefix reach the same cache, when the client sends none."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RoleLimit(models.Model):
    """An organization's override of a role's defaults (the environment's *_RPM/*_TPM)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="role_limits"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="0 = unlimited")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="0 = unlimited")
    allowed_models = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "role"], name="unique_role_limit")
        ]

    def __str__(self) -> str:
        return f"{self.organization} / {self.role}"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.BASIC)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="unique_membership")
        ]
        ordering = ["organization", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class ApiKeyQuerySet(models.QuerySet):
    def for_org(self, organization) -> ApiKeyQuerySet:
        return self.filter(organization=organization)

    def active(self, now) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A client key. Only an HMAC of it is stored; the plaintext is shown once."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    last_four = models.CharField(max_length=4)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="0 = unlimited")
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="0 = unlimited")
    # The key that created this one through the API. A child is never wider than its
    # parent (models, limits, expiry), spends from its parent's key budget too, and stops
    # working when its parent is revoked (docs/decisions: key lineage).
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        editable=False,
        related_name="children",
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'key'} (sk-syn-{self.prefix}…{self.last_four})"

    @property
    def masked(self) -> str:
        return f"sk-syn-{self.prefix}…{self.last_four}"


class Provider(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    AZURE = "azure", "Azure OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    FAKE = "fake", "Fake (offline)"


class ProviderCredentialQuerySet(models.QuerySet):
    def for_org(self, organization) -> ProviderCredentialQuerySet:
        return self.filter(organization=organization)

    def platform(self) -> ProviderCredentialQuerySet:
        return self.filter(organization__isnull=True)


class ProviderCredential(models.Model):
    """An upstream key, platform-wide (no organization) or an organization's own."""

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="provider_credentials",
    )
    provider = models.CharField(max_length=20, choices=Provider.choices)
    name = models.CharField(max_length=100, default="default")
    base_url = models.URLField(
        blank=True,
        validators=[validate_outbound_url],
        help_text="https only, public hosts only unless platform staff allow-listed it.",
    )
    encrypted_key = models.TextField(editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    # Provider-specific options, such as Azure's api-version.
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderCredentialQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "name"],
                condition=Q(organization__isnull=False),
                name="unique_org_provider_credential",
            ),
            models.UniqueConstraint(
                fields=["provider", "name"],
                condition=Q(organization__isnull=True),
                name="unique_platform_provider_credential",
            ),
        ]
        ordering = ["organization", "provider", "name"]

    def __str__(self) -> str:
        owner = self.organization or "platform"
        return f"{self.provider}/{self.name} ({owner}) …{self.last_four}"


class InvitationQuerySet(models.QuerySet):
    def for_org(self, organization) -> InvitationQuerySet:
        return self.filter(organization=organization)


class Invitation(models.Model):
    """An invitation to join an organization, sent to an e-mail address.

    Members join by e-mail, never by username: whether an address or a user already
    exists anywhere is not the inviting admin's to learn, so every invitation is sent
    and answered alike. Only a SHA-256 of the link's token is stored.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.BASIC)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Replaced by a newer invitation to the same address, or withdrawn.
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.organization} ({self.role})"


class AuditLogEntry(models.Model):
    """An append-only record of who changed what. Written only by services."""

    organization = models.ForeignKey(
        Organization, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_log"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_log",
    )
    event = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.event} {self.target_repr}"
