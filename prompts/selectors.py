"""Tenant-scoped reads of the library: every lookup names the organization."""

from __future__ import annotations

from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce

from billing.models import UsageEvent
from common.errors import NotFound
from prompts.models import Prompt, PromptLabel, PromptVersion


def prompts_for_org(*, organization_id: int) -> QuerySet[Prompt]:
    return (
        Prompt.objects.for_org(organization_id)
        .annotate(latest_version=Max("versions__number"))
        .prefetch_related("labels__version")
    )


def prompt_find(*, organization_id: int, ref) -> Prompt | None:
    """The organization's prompt named ``ref``, or whose id it is (names are never all
    digits, so ``"12"`` and ``12`` are ids)."""
    prompts = Prompt.objects.for_org(organization_id)
    if isinstance(ref, int) and not isinstance(ref, bool):
        return prompts.filter(pk=ref).first()
    if not isinstance(ref, str) or not ref:
        return None
    if ref.isdigit():
        return prompts.filter(pk=int(ref)).first()
    return prompts.filter(name=ref).first()


def prompt_get(*, organization_id: int, ref) -> Prompt:
    """``prompt_find`` for the management API: an outsider's prompt is a 404."""
    prompt = prompt_find(organization_id=organization_id, ref=ref)
    if prompt is None:
        raise NotFound("No such prompt in your organization.", param="prompt")
    return prompt


def version_find(*, prompt: Prompt, number: int | None = None, label: str = ""):
    """The version numbered ``number``, or the one ``label`` points at, or the latest."""
    if label:
        found = (
            PromptLabel.objects.filter(prompt=prompt, name=label).select_related("version").first()
        )
        return found.version if found else None
    versions = PromptVersion.objects.filter(prompt=prompt)
    if number is not None:
        return versions.filter(number=number).first()
    return versions.order_by("-number").first()


def version_get(*, prompt: Prompt, number: int) -> PromptVersion:
    version = version_find(prompt=prompt, number=number)
    if version is None:
        raise NotFound(f"Prompt '{prompt.name}' has no version {number}.", param="version")
    return version


def prompt_usage_by_version(*, organization_id: int, name: str, since=None) -> list[dict]:
    """Requests, tokens and cost of the organization's calls that used prompt ``name``, per
    version, read from the ``prompts`` stage's annotation on each usage event."""
    events = UsageEvent.objects.filter(
        organization_id=organization_id, annotations__prompts__prompt=name
    )
    if since is not None:
        events = events.filter(created_at__gte=since)
    rows = events.values(version=KT("annotations__prompts__version")).annotate(
        requests=Count("id"),
        prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
        completion_tokens=Coalesce(Sum("completion_tokens"), 0),
        cost_micros=Coalesce(Sum("cost_micros"), 0),
    )
    # KT reads the number as text: sort numerically here, not "10" before "2" in SQL.
    return sorted(({**row, "version": int(row["version"])} for row in rows), key=_version)


def _version(row: dict) -> int:
    return row["version"]
