"""An organization's HTTP tools and the rules that attach them to chat requests."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from accounts.models import Organization
from common.outbound import validate_outbound_url

# A tool's name is what a model calls it by: OpenAI's function-name alphabet and length.
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A rule's pattern runs on every matching chat request: kept short, and run on a bounded
# slice of the message (``tools.matching``), so no pattern can stall the event loop long.
MAX_PATTERN_LENGTH = 200


def validate_json_schema(value) -> None:
    """A tool's ``parameters`` must be a JSON Schema object (OpenAI's function tools and
    MCP's ``inputSchema`` both require ``type: object``)."""
    import jsonschema

    if not isinstance(value, dict):
        raise ValidationError("The parameters must be a JSON object (a JSON Schema).")
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except jsonschema.SchemaError as error:
        raise ValidationError(
            f"The parameters are not a valid JSON Schema: {error.message}"
        ) from None
    if value.get("type", "object") != "object":
        raise ValidationError('The parameters schema must have "type": "object".')


class ToolQuerySet(models.QuerySet):
    def for_org(self, organization_id: int) -> ToolQuerySet:
        return self.filter(organization_id=organization_id)


class Tool(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(
        max_length=64,
        validators=[RegexValidator(TOOL_NAME_PATTERN, "Letters, digits, '_' and '-' only.")],
    )
    description = models.TextField(blank=True, max_length=1024)
    parameters = models.JSONField(
        default=dict,
        validators=[validate_json_schema],
        help_text="JSON Schema of the arguments (an object schema).",
    )
    url = models.URLField(
        max_length=500,
        validators=[validate_outbound_url],
        help_text="The proxy POSTs the arguments here as JSON. https, public hosts only "
        "unless platform staff allow-listed the host.",
    )
    # Sent as ``Authorization: Bearer <secret>``; encrypted like provider keys, never shown.
    encrypted_secret = models.TextField(blank=True, editable=False)
    secret_last_four = models.CharField(max_length=4, blank=True, editable=False)
    timeout_seconds = models.FloatField(
        default=10.0, validators=[MinValueValidator(0.1), MaxValueValidator(120.0)]
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ToolQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="unique_org_tool_name"),
        ]
        ordering = ["organization", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"


class MatchKind(models.TextChoices):
    KEYWORD = "keyword", "Keyword (case-insensitive, whole word)"
    REGEX = "regex", "Regular expression"


def validate_pattern(kind: str, pattern: str) -> None:
    if not pattern.strip():
        raise ValidationError("The pattern must not be empty.")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValidationError(f"The pattern is longer than {MAX_PATTERN_LENGTH} characters.")
    if kind == MatchKind.REGEX:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValidationError(
                f"The pattern is not a valid regular expression: {error}"
            ) from None


class ToolAttachRule(models.Model):
    """When the last user message matches, ``tool`` is attached to the chat request."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="tool_attach_rules"
    )
    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="attach_rules")
    kind = models.CharField(max_length=10, choices=MatchKind.choices, default=MatchKind.KEYWORD)
    pattern = models.CharField(max_length=MAX_PATTERN_LENGTH)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "tool", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.pattern!r} -> {self.tool.name}"

    def clean(self) -> None:
        validate_pattern(self.kind, self.pattern)
        if (
            self.tool_id
            and self.organization_id
            and self.tool.organization_id != self.organization_id
        ):
            raise ValidationError({"tool": "The tool belongs to another organization."})
