"""Writes to the library; each one audited under the acting user."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import Organization, User
from accounts.services import audit_record
from common.errors import InvalidRequest
from prompts.models import LABEL_VALIDATOR, NAME_VALIDATOR, Prompt, PromptLabel, PromptVersion
from prompts.templating import TemplateError, check_messages

# What a version may set by default; the request's own values win (decision 0032).
PARAMETERS = {
    "temperature": (int, float),
    "top_p": (int, float),
    "max_tokens": (int,),
    "max_completion_tokens": (int,),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
    "seed": (int,),
    "stop": (str, list),
    "response_format": (dict,),
}


def _validated(validator, value: str, param: str) -> str:
    try:
        validator(value)
    except DjangoValidationError as error:
        raise InvalidRequest(f"{param}: {error.messages[0]}", param=param) from None
    return value


def _check_parameters(parameters) -> dict:
    if not isinstance(parameters, dict):
        raise InvalidRequest("parameters must be an object.", param="parameters")
    for key, value in parameters.items():
        types = PARAMETERS.get(key)
        if types is None:
            raise InvalidRequest(
                f"Unknown parameter '{key}'; allowed: {', '.join(PARAMETERS)}.", param="parameters"
            )
        if isinstance(value, bool) or not isinstance(value, types):
            raise InvalidRequest(f"Parameter '{key}' has the wrong type.", param="parameters")
    return parameters


def prompt_version_check(*, messages, parameters) -> None:
    """InvalidRequest naming the field if ``messages`` or ``parameters`` cannot be stored."""
    try:
        check_messages(messages)
    except TemplateError as error:
        raise InvalidRequest(str(error), param=error.param) from None
    _check_parameters(parameters)


@transaction.atomic
def prompt_create(
    *, organization: Organization, name: str, description: str = "", actor: User | None
) -> Prompt:
    _validated(NAME_VALIDATOR, name, "name")
    if Prompt.objects.for_org(organization.pk).filter(name=name).exists():
        raise InvalidRequest(f"A prompt named '{name}' exists.", param="name")
    prompt = Prompt.objects.create(organization=organization, name=name, description=description)
    audit_record(organization=organization, actor=actor, event="prompt.created", target=prompt)
    return prompt


@transaction.atomic
def prompt_update(*, prompt: Prompt, description: str, actor: User | None) -> Prompt:
    prompt.description = description
    prompt.save(update_fields=["description"])
    audit_record(
        organization=prompt.organization, actor=actor, event="prompt.updated", target=prompt
    )
    return prompt


@transaction.atomic
def prompt_delete(*, prompt: Prompt, actor: User | None) -> None:
    audit_record(
        organization=prompt.organization,
        actor=actor,
        event="prompt.deleted",
        target=prompt,
        details={"versions": prompt.versions.count()},
    )
    PromptLabel.objects.filter(prompt=prompt).delete()  # labels protect their versions
    prompt.delete()


def prompt_version_create(
    *,
    prompt: Prompt,
    messages,
    model: str = "",
    parameters: dict | None = None,
    commit_message: str = "",
    labels: tuple[str, ...] = (),
    actor: User | None,
) -> PromptVersion:
    """The next version of ``prompt``; ``labels`` then point at it."""
    parameters = parameters or {}
    prompt_version_check(messages=messages, parameters=parameters)
    for attempt in range(3):
        try:
            return _version_insert(
                prompt=prompt,
                messages=messages,
                model=model,
                parameters=parameters,
                commit_message=commit_message,
                labels=labels,
                actor=actor,
            )
        except IntegrityError:
            # Two writers took the same next number; the unique constraint refused one.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def _version_insert(*, prompt, messages, model, parameters, commit_message, labels, actor):
    # Locking the prompt row serialises version numbering for one prompt.
    Prompt.objects.select_for_update().filter(pk=prompt.pk).first()
    latest = prompt.versions.aggregate(latest=Max("number"))["latest"] or 0
    version = PromptVersion.objects.create(
        prompt=prompt,
        number=latest + 1,
        messages=messages,
        model=model,
        parameters=parameters,
        commit_message=commit_message,
        author=actor if actor is not None and actor.pk else None,
    )
    audit_record(
        organization=prompt.organization,
        actor=actor,
        event="prompt.version_created",
        target=version,
        details={"prompt": prompt.name, "version": version.number},
    )
    for label in labels:
        prompt_label_set(prompt=prompt, label=label, version=version, actor=actor)
    return version


@transaction.atomic
def prompt_label_set(
    *, prompt: Prompt, label: str, version: PromptVersion, actor: User | None
) -> PromptLabel:
    _validated(LABEL_VALIDATOR, label, "label")
    if version.prompt_id != prompt.pk:
        raise InvalidRequest("That version belongs to another prompt.", param="version")
    existing = PromptLabel.objects.select_for_update().filter(prompt=prompt, name=label).first()
    previous = existing.version.number if existing else None
    if existing is None:
        existing = PromptLabel.objects.create(prompt=prompt, name=label, version=version)
    else:
        existing.version = version
        existing.save(update_fields=["version", "updated_at"])
    audit_record(
        organization=prompt.organization,
        actor=actor,
        event="prompt.label_set",
        target=prompt,
        details={"label": label, "version": version.number, "previous_version": previous},
    )
    return existing


@transaction.atomic
def prompt_label_remove(*, prompt: Prompt, label: str, actor: User | None) -> None:
    deleted, _ = PromptLabel.objects.filter(prompt=prompt, name=label).delete()
    if deleted:
        audit_record(
            organization=prompt.organization,
            actor=actor,
            event="prompt.label_removed",
            target=prompt,
            details={"label": label},
        )
