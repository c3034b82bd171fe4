"""A prompt per organization, its immutable numbered versions and its movable labels."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from accounts.models import Organization

# Names are what a request refers to: short, URL-safe, and never all digits (an all-digit
# reference is read as the prompt's id).
NAME_VALIDATOR = RegexValidator(
    r"^(?!\d+$)[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    "Letters, digits, '.', '_' and '-', starting with a letter or digit, not all digits.",
)
LABEL_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]{0,49}$", "Lower-case letters, digits, '.', '_' and '-'."
)


class PromptQuerySet(models.QuerySet):
    def for_org(self, organization_id: int) -> PromptQuerySet:
        return self.filter(organization_id=organization_id)


class Prompt(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="prompts")
    name = models.CharField(max_length=100, validators=[NAME_VALIDATOR])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PromptQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="unique_prompt_name")
        ]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """One version of a prompt: never edited once written (a change is a new version)."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # Chat messages ({"role", "content"}) whose text may hold {{variable}} placeholders.
    messages = models.JSONField()
    model = models.CharField(max_length=256, blank=True, help_text="Empty: the request's model.")
    parameters = models.JSONField(
        default=dict, blank=True, help_text="Defaults such as temperature and max_tokens."
    )
    commit_message = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="unique_prompt_version")
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.number}"


class PromptLabel(models.Model):
    """A movable name (``production``, ``staging``) for one version of a prompt."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=50, validators=[LABEL_VALIDATOR])
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="labels")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prompt", "name"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "name"], name="unique_prompt_label")
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name}@{self.name}"
