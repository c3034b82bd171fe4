"""The guardrail policy of one API key, read on the hot path and cached per process.

Like the principal cache (``accounts.selectors``): a few seconds fresh
(``API_KEY_CACHE_SECONDS``), concurrent misses share one query, and with the database
down a policy read recently is served for ``API_KEY_STALE_IF_ERROR_SECONDS``. A key
whose policy cannot be read at all gets a 503: sending its text upstream unchecked
would break the promise its organization's setting makes. Redis is not involved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from common.db import run_in_db_thread
from common.local_state import local_state_register
from common.outages import DATABASE_ERRORS
from common.outages import refusal as outage_refusal
from common.ttlcache import TTLCache
from guardrails import rules as rules_engine
from guardrails.models import (
    PII_STRICTNESS,
    ApiKeyGuardrails,
    GuardrailRule,
    OrganizationGuardrails,
    PiiMode,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    pii_mode: str = PiiMode.OFF
    rules: tuple[rules_engine.CompiledRule, ...] = ()
    moderation_model: str = ""


OFF = Policy()

_policy_cache: TTLCache[Policy] = TTLCache()


def policy_cache_forget() -> None:
    _policy_cache.clear()


local_state_register("guardrails:policies", policy_cache_forget, redis_twin=False)


def strictest(*modes: str) -> str:
    """The strictest of ``modes`` (an empty one is off). A loop rather than ``max`` with a
    key: every request asks, and this is one Python call instead of six."""
    chosen = PiiMode.OFF
    for mode in modes:
        if mode and PII_STRICTNESS[mode] > PII_STRICTNESS[chosen]:
            chosen = mode
    return chosen


def _policy_from_db(organization_id: int, key_id: int) -> Policy:
    org_mode, moderation_model = (
        OrganizationGuardrails.objects.filter(organization_id=organization_id)
        .values_list("pii_mode", "moderation_model")
        .first()
    ) or ("", "")
    key_mode = (
        ApiKeyGuardrails.objects.filter(api_key_id=key_id)
        .values_list("pii_mode", flat=True)
        .first()
    )
    compiled = []
    rows = GuardrailRule.objects.for_org(organization_id).filter(enabled=True)
    for name, kind, pattern, action, target in rows.values_list(
        "name", "kind", "pattern", "action", "target"
    )[: rules_engine.MAX_RULES_PER_ORGANIZATION]:
        try:
            regex = rules_engine.compile_pattern(kind, pattern)
        except rules_engine.RuleInvalid:
            # Saved before validation tightened, or edited in the database: a deny rule
            # we cannot run must not silently open the gate, an allow rule may be dropped.
            log.warning(
                "guardrail rule %r of organization %s does not compile", name, organization_id
            )
            if action == "deny":
                regex = rules_engine.compile_pattern("regex", r"[\s\S]")
            else:
                continue
        compiled.append(rules_engine.CompiledRule(name, action, target, regex))
    if not org_mode and not key_mode and not compiled and not moderation_model:
        return OFF
    return Policy(
        pii_mode=strictest(org_mode or "", key_mode or ""),
        rules=tuple(compiled),
        moderation_model=moderation_model,
    )


async def apolicy_for(principal) -> Policy:
    cache_key = (principal.organization_id, principal.key_id)
    try:
        return await _policy_cache.get_or_load(
            cache_key,
            lambda: run_in_db_thread(_policy_from_db, principal.organization_id, principal.key_id),
            ttl=settings.API_KEY_CACHE_SECONDS,
        )
    except DATABASE_ERRORS as error:
        known, policy = _policy_cache.get_stale(
            cache_key, max_age=settings.API_KEY_STALE_IF_ERROR_SECONDS
        )
        if not known:
            raise outage_refusal("database") from error
        return policy


# --- Management reads (tenant-scoped) ---------------------------------------------------


def guardrails_settings_get(*, organization_id: int) -> OrganizationGuardrails:
    """The organization's row, or an unsaved one with the defaults."""
    return OrganizationGuardrails.objects.filter(
        organization_id=organization_id
    ).first() or OrganizationGuardrails(organization_id=organization_id)


def key_guardrails_get(*, api_key) -> ApiKeyGuardrails:
    return ApiKeyGuardrails.objects.filter(api_key=api_key).first() or ApiKeyGuardrails(
        api_key=api_key
    )


def guardrail_rules_for_org(*, organization_id: int):
    return GuardrailRule.objects.for_org(organization_id)


def guardrail_rule_get(*, organization_id: int, rule_id: int) -> GuardrailRule:
    from common.errors import NotFound

    rule = GuardrailRule.objects.for_org(organization_id).filter(pk=rule_id).first()
    if rule is None:
        raise NotFound("No such guardrail rule.", param="rule_id")
    return rule
