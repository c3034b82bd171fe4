"""Writes of guardrail settings and rules: validated, audited, and seen by the hot path
within ``API_KEY_CACHE_SECONDS`` (at once in this process)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import ApiKey, Organization, User
from accounts.services import audit_record
from common.errors import InvalidRequest
from guardrails import rules as rules_engine
from guardrails.models import (
    ApiKeyGuardrails,
    GuardrailRule,
    OrganizationGuardrails,
    PiiMode,
    RuleAction,
    RuleKind,
    RuleTarget,
)
from guardrails.selectors import policy_cache_forget


def _check_choice(value: str, choices, param: str) -> None:
    if value not in choices.values:
        allowed = ", ".join(choices.values)
        raise InvalidRequest(f"{param} must be one of {allowed}.", param=param)


@transaction.atomic
def organization_guardrails_update(
    *,
    organization: Organization,
    pii_mode: str | None = None,
    moderation_model: str | None = None,
    actor: User | None,
) -> OrganizationGuardrails:
    settings_row, _ = OrganizationGuardrails.objects.select_for_update().get_or_create(
        organization=organization
    )
    changes = {}
    if pii_mode is not None:
        _check_choice(pii_mode, PiiMode, "pii_mode")
        changes["pii_mode"] = [settings_row.pii_mode, pii_mode]
        settings_row.pii_mode = pii_mode
    if moderation_model is not None:
        moderation_model = moderation_model.strip()
        if len(moderation_model) > 100:
            raise InvalidRequest(
                "A model name has at most 100 characters.", param="moderation_model"
            )
        changes["moderation_model"] = [settings_row.moderation_model, moderation_model]
        settings_row.moderation_model = moderation_model
    settings_row.save()
    audit_record(
        organization=organization,
        actor=actor,
        event="guardrails.updated",
        target=settings_row,
        details=changes,
    )
    transaction.on_commit(policy_cache_forget)
    return settings_row


@transaction.atomic
def api_key_guardrails_update(
    *, api_key: ApiKey, pii_mode: str, actor: User | None
) -> ApiKeyGuardrails:
    _check_choice(pii_mode, PiiMode, "pii_mode")
    row, _ = ApiKeyGuardrails.objects.select_for_update().get_or_create(api_key=api_key)
    before = row.pii_mode
    row.pii_mode = pii_mode
    row.save()
    audit_record(
        organization=api_key.organization,
        actor=actor,
        event="guardrails.key_updated",
        target=api_key,
        details={"pii_mode": [before, pii_mode]},
    )
    transaction.on_commit(policy_cache_forget)
    return row


def _validate_rule(*, kind: str, pattern: str, action: str, target: str) -> None:
    _check_choice(kind, RuleKind, "kind")
    _check_choice(action, RuleAction, "action")
    _check_choice(target, RuleTarget, "target")
    try:
        rules_engine.check_pattern(kind, pattern)
    except rules_engine.RuleInvalid as error:
        raise InvalidRequest(str(error), param="pattern") from None


@transaction.atomic
def guardrail_rule_create(
    *,
    organization: Organization,
    name: str,
    pattern: str,
    kind: str = RuleKind.PHRASE,
    action: str = RuleAction.DENY,
    target: str = RuleTarget.BOTH,
    enabled: bool = True,
    actor: User | None,
) -> GuardrailRule:
    _validate_rule(kind=kind, pattern=pattern, action=action, target=target)
    # The organization row is the lock: two concurrent creates cannot pass the limit.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    if (
        GuardrailRule.objects.for_org(organization.pk).count()
        >= rules_engine.MAX_RULES_PER_ORGANIZATION
    ):
        raise InvalidRequest(
            f"An organization has at most {rules_engine.MAX_RULES_PER_ORGANIZATION} rules."
        )
    try:
        with transaction.atomic():
            rule = GuardrailRule.objects.create(
                organization=organization,
                name=name,
                kind=kind,
                pattern=pattern,
                action=action,
                target=target,
                enabled=enabled,
            )
    except IntegrityError:
        raise InvalidRequest(f"A rule named {name!r} exists.", param="name") from None
    audit_record(
        organization=organization,
        actor=actor,
        event="guardrails.rule_created",
        target=rule,
        details={"kind": kind, "action": action, "target": target},
    )
    transaction.on_commit(policy_cache_forget)
    return rule


@transaction.atomic
def guardrail_rule_update(*, rule: GuardrailRule, actor: User | None, **changes) -> GuardrailRule:
    allowed = {"name", "kind", "pattern", "action", "target", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidRequest(f"Unknown fields: {', '.join(sorted(unknown))}.")
    for field, value in changes.items():
        setattr(rule, field, value)
    _validate_rule(kind=rule.kind, pattern=rule.pattern, action=rule.action, target=rule.target)
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError:
        raise InvalidRequest(f"A rule named {rule.name!r} exists.", param="name") from None
    audit_record(
        organization=rule.organization,
        actor=actor,
        event="guardrails.rule_updated",
        target=rule,
        details={"fields": sorted(changes)},
    )
    transaction.on_commit(policy_cache_forget)
    return rule


@transaction.atomic
def guardrail_rule_delete(*, rule: GuardrailRule, actor: User | None) -> None:
    audit_record(
        organization=rule.organization, actor=actor, event="guardrails.rule_deleted", target=rule
    )
    rule.delete()
    transaction.on_commit(policy_cache_forget)
