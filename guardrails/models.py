"""Guardrail settings of an organization and its keys, and its deny/allow rules."""

from __future__ import annotations

from django.db import models


class PiiMode(models.TextChoices):
    OFF = "off", "Off"
    MASK = "mask", "Mask (placeholders upstream, values restored in the answer)"
    BLOCK = "block", "Block (refuse requests that contain personal data)"


# Strictness order: a key or a header may move right along it, never left.
PII_STRICTNESS = {PiiMode.OFF: 0, PiiMode.MASK: 1, PiiMode.BLOCK: 2}


class OrganizationGuardrails(models.Model):
    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="guardrails"
    )
    pii_mode = models.CharField(max_length=5, choices=PiiMode.choices, default=PiiMode.OFF)
    moderation_model = models.CharField(
        max_length=100,
        blank=True,
        help_text="A moderation model (a route of this organization or the default provider's,"
        " e.g. omni-moderation-latest) every chat request is checked with; blank: none.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "guardrail settings"
        verbose_name_plural = "guardrail settings"

    def __str__(self) -> str:
        return f"Guardrails of {self.organization}"


class ApiKeyGuardrails(models.Model):
    """A key's own PII mode: it may only tighten its organization's."""

    api_key = models.OneToOneField(
        "accounts.ApiKey", on_delete=models.CASCADE, related_name="guardrails"
    )
    pii_mode = models.CharField(
        max_length=5,
        choices=PiiMode.choices,
        default=PiiMode.OFF,
        help_text="A key's mode may only tighten its organization's, never loosen it.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "key guardrail setting"

    def __str__(self) -> str:
        return f"Guardrails of key {self.api_key_id}"


class RuleAction(models.TextChoices):
    DENY = "deny", "Deny"
    ALLOW = "allow", "Allow (exempts what a deny rule would match)"


class RuleTarget(models.TextChoices):
    REQUEST = "request", "Request"
    RESPONSE = "response", "Answer"
    BOTH = "both", "Request and answer"


class RuleKind(models.TextChoices):
    PHRASE = "phrase", "Phrase (case-insensitive)"
    REGEX = "regex", "Regular expression"


class GuardrailRuleQuerySet(models.QuerySet):
    def for_org(self, organization_id: int) -> GuardrailRuleQuerySet:
        return self.filter(organization_id=organization_id)


class GuardrailRule(models.Model):
    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="guardrail_rules"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=6, choices=RuleKind.choices, default=RuleKind.PHRASE)
    pattern = models.CharField(max_length=500)
    action = models.CharField(max_length=5, choices=RuleAction.choices, default=RuleAction.DENY)
    target = models.CharField(max_length=8, choices=RuleTarget.choices, default=RuleTarget.BOTH)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = GuardrailRuleQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"], name="guardrail_rule_unique_name"
            )
        ]

    def __str__(self) -> str:
        return self.name
