"""Tenant-scoped reads of tools. The proxy's paths read a frozen snapshot per organization,
cached for a few seconds, so listing, calling and attaching cost no query per request."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from common.db import run_in_db_thread
from common.errors import NotFound
from common.outages import is_outage_error
from common.ttlcache import TTLCache
from tools.models import Tool, ToolAttachRule


@dataclass(frozen=True)
class ToolSpec:
    """What the proxy needs to list and call a tool; the secret stays encrypted here."""

    id: int
    organization_id: int
    name: str
    description: str
    parameters: dict
    url: str
    encrypted_secret: str
    timeout_seconds: float

    def function_tool(self) -> dict:
        """OpenAI's function-tool shape (what ``tools`` in a chat request holds)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class RuleSpec:
    tool_name: str
    kind: str
    pattern: str


@dataclass(frozen=True)
class OrganizationTools:
    tools: dict[str, ToolSpec]
    rules: tuple[RuleSpec, ...]


def tools_for_org(*, organization_id: int):
    return Tool.objects.for_org(organization_id)


def tool_get_for_org(*, organization_id: int, tool_id) -> Tool:
    tool = tools_for_org(organization_id=organization_id).filter(pk=tool_id).first()
    if tool is None:
        raise NotFound("No such tool in your organization.")
    return tool


def attach_rules_for_org(*, organization_id: int):
    return ToolAttachRule.objects.filter(organization_id=organization_id).select_related("tool")


def attach_rule_get_for_org(*, organization_id: int, rule_id) -> ToolAttachRule:
    rule = attach_rules_for_org(organization_id=organization_id).filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("No such tool rule in your organization.")
    return rule


def _load(organization_id: int) -> OrganizationTools:
    enabled = tools_for_org(organization_id=organization_id).filter(enabled=True)
    tools = {
        tool.name: ToolSpec(
            id=tool.pk,
            organization_id=tool.organization_id,
            name=tool.name,
            description=tool.description,
            parameters=tool.parameters,
            url=tool.url,
            encrypted_secret=tool.encrypted_secret,
            timeout_seconds=tool.timeout_seconds,
        )
        for tool in enabled
    }
    rules = tuple(
        RuleSpec(tool_name=rule.tool.name, kind=rule.kind, pattern=rule.pattern)
        for rule in attach_rules_for_org(organization_id=organization_id).filter(
            enabled=True, tool__enabled=True
        )
    )
    return OrganizationTools(tools=tools, rules=rules)


STALE_SECONDS = 300
_snapshots: TTLCache[OrganizationTools] = TTLCache(max_entries=10_000)


async def organization_tools(*, organization_id: int) -> OrganizationTools:
    """The organization's enabled tools and rules, at most ``TOOLS_CACHE_SECONDS`` old."""
    try:
        return await _snapshots.get_or_load(
            organization_id,
            lambda: run_in_db_thread(_load, organization_id),
            ttl=settings.TOOLS_CACHE_SECONDS,
        )
    except Exception as error:
        if not is_outage_error(error):
            raise
        # The database is down: the last snapshot still names the right tools for a while.
        found, stale = _snapshots.get_stale(organization_id, max_age=STALE_SECONDS)
        if not found:
            raise
        return stale


def organization_tools_forget() -> None:
    """Drop the snapshots (tests, and this process's own writes)."""
    _snapshots.clear()


async def tool_spec_get(*, organization_id: int, name: str) -> ToolSpec:
    """An enabled tool of the caller's organization by name; any other answers 404."""
    spec = (await organization_tools(organization_id=organization_id)).tools.get(name)
    if spec is None:
        raise NotFound(f"No tool named {name!r} in your organization.", param="name")
    return spec
