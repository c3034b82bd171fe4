"""Every write to an organization's tools goes through here and leaves an audit entry."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.crypto import encrypt_secret
from accounts.models import Organization, User
from accounts.services import audit_record
from common.errors import InvalidRequest
from tools.models import Tool, ToolAttachRule

_UNSET = object()
TOOL_FIELDS = ("description", "parameters", "url", "timeout_seconds", "enabled")


def _validated(obj, *, exclude: list[str] | None = None) -> None:
    """Model validation as a client-facing 400: the first field's first message."""
    try:
        obj.full_clean(exclude=exclude, validate_unique=False)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        raise InvalidRequest(messages[0], param=None if field == "__all__" else field) from None


def _set_secret(tool: Tool, secret: str) -> None:
    tool.encrypted_secret = encrypt_secret(secret) if secret else ""
    tool.secret_last_four = secret[-4:] if len(secret) >= 8 else ""


@transaction.atomic
def tool_create(
    *,
    organization: Organization,
    name: str,
    url: str,
    description: str = "",
    parameters: dict | None = None,
    secret: str = "",
    timeout_seconds: float = 10.0,
    enabled: bool = True,
    actor: User | None = None,
) -> Tool:
    tool = Tool(
        organization=organization,
        name=name,
        url=url,
        description=description,
        parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
        timeout_seconds=timeout_seconds,
        enabled=enabled,
    )
    _validated(tool)
    _set_secret(tool, secret)
    if Tool.objects.filter(organization=organization, name=name).exists():
        raise InvalidRequest(f"A tool named {name!r} exists in this organization.", param="name")
    try:
        with transaction.atomic():
            tool.save()
    except IntegrityError:
        raise InvalidRequest(
            f"A tool named {name!r} exists in this organization.", param="name"
        ) from None
    audit_record(
        organization=organization,
        actor=actor,
        event="tool.created",
        target=tool,
        details={"name": name, "url": url, "has_secret": bool(secret)},
    )
    return tool


@transaction.atomic
def tool_update(*, tool: Tool, actor: User | None = None, secret=_UNSET, **changes) -> Tool:
    """Change the named fields; ``secret`` replaces the stored one ("" removes it)."""
    unknown = set(changes) - set(TOOL_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown tool fields: {', '.join(sorted(unknown))}.")
    for field, value in changes.items():
        setattr(tool, field, value)
    _validated(tool)
    if secret is not _UNSET:
        _set_secret(tool, secret)
    tool.save()
    details = {"fields": sorted(changes)}
    if secret is not _UNSET:
        details["secret_changed"] = True
    audit_record(
        organization=tool.organization,
        actor=actor,
        event="tool.updated",
        target=tool,
        details=details,
    )
    return tool


@transaction.atomic
def tool_delete(*, tool: Tool, actor: User | None = None) -> None:
    audit_record(
        organization=tool.organization,
        actor=actor,
        event="tool.deleted",
        target=tool,
        details={"name": tool.name},
    )
    tool.delete()


@transaction.atomic
def tool_attach_rule_create(
    *,
    tool: Tool,
    pattern: str,
    kind: str = "keyword",
    enabled: bool = True,
    actor: User | None = None,
) -> ToolAttachRule:
    rule = ToolAttachRule(
        organization_id=tool.organization_id, tool=tool, kind=kind, pattern=pattern, enabled=enabled
    )
    _validated(rule, exclude=["organization", "tool"])
    rule.save()
    audit_record(
        organization=tool.organization,
        actor=actor,
        event="tool.rule_created",
        target=rule,
        details={"tool": tool.name, "kind": kind, "pattern": pattern},
    )
    return rule


@transaction.atomic
def tool_attach_rule_delete(*, rule: ToolAttachRule, actor: User | None = None) -> None:
    audit_record(
        organization=rule.organization,
        actor=actor,
        event="tool.rule_deleted",
        target=rule,
        details={"tool": rule.tool.name, "pattern": rule.pattern},
    )
    rule.delete()
