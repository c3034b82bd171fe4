"""Every write to billing data: usage batches and rollups, budgets, alerts, reports, retention."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiKey, Organization, User
from accounts.services import audit_record
from billing import pricing, reports
from billing.attribution import tags_stored
from billing.models import (
    ROLLUP_SUMS,
    AlertKind,
    Budget,
    BudgetAlert,
    BudgetScope,
    DailyUsageRollup,
    MonthlyReport,
    Price,
    UsageEvent,
)
from billing.selectors import (
    budget_cache_forget,
    price_cache_forget,
    price_for_usage,
    tool_fees_micros,
)
from common.errors import InvalidRequest
from common.outbound import url_problem

logger = logging.getLogger(__name__)

# Any constant shared by every flush: PostgreSQL serialises them on it (see below).
_FLUSH_ADVISORY_LOCK = 0x5359_4E54_4255  # "SYNTBU"


class UsageEventInvalid(ValueError):
    """An event the proxy handed over that can never be stored (kept aside, never retried)."""


# --- Usage ------------------------------------------------------------------------------


def _as_int(event: dict, name: str) -> int:
    value = event.get(name) or 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageEventInvalid(f"{name} must be a number, got {value!r}")
    return max(int(value), 0)


def _as_float(event: dict, name: str) -> float:
    value = event.get(name) or 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageEventInvalid(f"{name} must be a number, got {value!r}")
    return max(float(value), 0.0)


def _parse_created_at(value) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError as error:
            raise UsageEventInvalid(f"created_at is not ISO-8601: {value!r}") from error
    if moment.tzinfo is None:
        # The contract says UTC; a naive value is read as UTC rather than server time.
        moment = moment.replace(tzinfo=UTC)
    return moment


def usage_event_build(*, event: dict) -> UsageEvent:
    """An unsaved ``UsageEvent`` with its cost, priced at the event's own ``created_at``."""
    request_id = str(event.get("request_id") or "").strip()
    if not request_id or len(request_id) > 100:
        raise UsageEventInvalid(f"request_id missing or too long: {request_id!r}")
    organization_id = event.get("organization_id")
    if not isinstance(organization_id, int) or isinstance(organization_id, bool):
        raise UsageEventInvalid(f"organization_id must be an integer, got {organization_id!r}")
    created_at = _parse_created_at(event.get("created_at"))
    model = str(event.get("model") or "")[:200]
    upstream_model = str(event.get("upstream_model") or "")[:200]
    tokens = pricing.token_counts(
        prompt_tokens=_as_int(event, "prompt_tokens"),
        completion_tokens=_as_int(event, "completion_tokens"),
        cache_read_tokens=_as_int(event, "cached_tokens"),
        cache_write_tokens=_as_int(event, "cache_write_tokens"),
    )
    tokens_saved = _as_int(event, "tokens_saved")
    cache = str(event.get("cache") or "off")

    price = price_for_usage(model=model, upstream_model=upstream_model, at=created_at)
    units = _as_int(event, "units")
    batch = bool(event.get("batch"))
    full_cost = pricing.request_cost_micros(price=price, tokens=tokens, units=units, batch=batch)
    tool_calls = pricing.tool_call_counts(event.get("tool_calls"))
    full_cost += tool_fees_micros(tool_calls, created_at)
    hit = cache == "hit"
    # A pipeline stage's own answer (proxy/pipeline) reached no upstream either: it costs
    # nothing, and claims no saving (nobody asked the upstream what it would have said).
    free = hit or bool(event.get("answered_by"))
    user_id = event.get("user_id")
    api_key_id = event.get("api_key_id")
    return UsageEvent(
        request_id=request_id,
        created_at=created_at,
        organization_id=organization_id,
        user_id=user_id if isinstance(user_id, int) else None,
        api_key_id=api_key_id if isinstance(api_key_id, int) else None,
        endpoint=str(event.get("endpoint") or "chat.completions")[:32],
        model=model,
        upstream_model=upstream_model,
        provider=str(event.get("provider") or "")[:32],
        deployment=str(event.get("deployment") or "")[:200],
        prompt_tokens=tokens.prompt_tokens,
        completion_tokens=tokens.completion_tokens,
        cached_tokens=tokens.cache_read_tokens,
        cache_write_tokens=tokens.cache_write_tokens,
        status_code=_as_int(event, "status_code") or 200,
        error_code=str(event.get("error_code") or "")[:64],
        stream=bool(event.get("stream")),
        client_disconnected=bool(event.get("client_disconnected")),
        cache=cache[:8],
        cache_tier=str(event.get("cache_tier") or "")[:16],
        tokens_saved=tokens_saved,
        compression_level=str(event.get("compression_level") or "")[:16],
        latency_ms=_as_float(event, "latency_ms"),
        upstream_ms=_as_float(event, "upstream_ms"),
        overhead_ms=_as_float(event, "overhead_ms"),
        # A cache hit never reached the upstream: it costs nothing and saved its price.
        cost_micros=0 if free else full_cost,
        avoided_cost_micros=full_cost if hit else 0,
        # On a hit the whole upstream call was avoided and is counted above; counting the
        # compressed-away tokens as well would claim the same money twice.
        compression_saved_micros=(
            0 if free else pricing.tokens_value_micros(price=price, input_tokens=tokens_saved)
        ),
        # The same on a hit: the provider's cache saved nothing on a call never made.
        prompt_cache_saved_micros=(
            0 if free else pricing.prompt_cache_saved_micros(price=price, tokens=tokens)
        ),
        price_unknown=price.unknown,
        usage_estimated=bool(event.get("usage_estimated")),
        units=units,
        batch=batch,
        tool_calls=tool_calls,
        end_user=str(event.get("end_user") or "")[:256],
        tags=_tags(event.get("tags")),
        metadata=event.get("metadata") if isinstance(event.get("metadata"), dict) else {},
        annotations=(
            event.get("annotations") if isinstance(event.get("annotations"), dict) else {}
        ),
    )


def _tags(value) -> str:
    # Validated by the proxy; an event from elsewhere (or an older one) keeps what fits.
    tags = [tag for tag in value if isinstance(tag, str) and tag] if isinstance(value, list) else []
    stored = tags_stored(tags)
    while len(stored) > 800 and tags:
        tags.pop()
        stored = tags_stored(tags)
    return stored


def _serialise_flushes() -> None:
    """Let one flush at a time check-and-insert, so "already stored?" has one answer.

    Without it two flushes of the same (recovered) batch could both see an event as new,
    one insert would be ignored by the unique index, and both would add it to the
    rollups. SQLite already serialises writers (IMMEDIATE transactions).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_FLUSH_ADVISORY_LOCK])


def _existing_ids(model, ids: set[int]) -> set[int]:
    if not ids:
        return set()
    return set(model.objects.filter(pk__in=ids).values_list("pk", flat=True))


@dataclass
class UsageWriteResult:
    written: int = 0
    duplicates: int = 0
    invalid: list[tuple[dict, str]] | None = None


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def usage_events_write(*, events: list[dict]) -> UsageWriteResult:
    """Store a batch exactly once and add it to the rollups, in one transaction.

    Idempotent: events whose ``request_id`` is already stored are skipped, so a batch
    retried after a failure (or recovered after a crash) never counts twice.
    """
    result = UsageWriteResult(invalid=[])
    built: dict[str, UsageEvent] = {}
    for event in events:
        try:
            row = usage_event_build(event=event)
        except UsageEventInvalid as error:
            result.invalid.append((event, str(error)))
            continue
        built.setdefault(row.request_id, row)  # a duplicate inside the batch counts once
    if not built:
        return result

    with transaction.atomic():
        _serialise_flushes()
        stored = set()
        for chunk in _chunks(list(built), 500):
            stored.update(
                UsageEvent.objects.filter(request_id__in=chunk).values_list("request_id", flat=True)
            )
        rows = [row for request_id, row in built.items() if request_id not in stored]
        result.duplicates = len(events) - len(result.invalid) - len(rows)
        # References that vanished since the request (a deleted key or user) must not
        # poison the whole batch with a foreign-key error; a deleted organization's
        # usage goes with it, as its other data does.
        organizations = _existing_ids(Organization, {row.organization_id for row in rows})
        users = _existing_ids(User, {row.user_id for row in rows if row.user_id})
        keys = _existing_ids(ApiKey, {row.api_key_id for row in rows if row.api_key_id})
        kept = []
        for row in rows:
            if row.organization_id not in organizations:
                logger.warning("usage event %s dropped: organization gone", row.request_id)
                continue
            if row.user_id not in users:
                row.user_id = None
            if row.api_key_id not in keys:
                row.api_key_id = None
            kept.append(row)
        UsageEvent.objects.bulk_create(kept, batch_size=500, ignore_conflicts=True)
        _rollups_add(kept)
        result.written = len(kept)
    return result


def _rollups_add(rows: list[UsageEvent]) -> None:
    groups: dict[tuple, dict[str, float]] = defaultdict(lambda: dict.fromkeys(ROLLUP_SUMS, 0))
    for row in rows:
        key = (
            row.created_at.astimezone(UTC).date(),
            row.organization_id,
            row.user_id or 0,
            row.api_key_id or 0,
            row.model,
        )
        sums = groups[key]
        sums["requests"] += 1
        sums["errors"] += 1 if row.status_code >= 400 else 0
        sums["prompt_tokens"] += row.prompt_tokens
        sums["completion_tokens"] += row.completion_tokens
        sums["cached_tokens"] += row.cached_tokens
        sums["cache_write_tokens"] += row.cache_write_tokens
        sums["cost_micros"] += row.cost_micros
        sums["cache_hits"] += 1 if row.cache == "hit" else 0
        sums["avoided_cost_micros"] += row.avoided_cost_micros
        sums["tokens_saved"] += row.tokens_saved
        sums["compression_saved_micros"] += row.compression_saved_micros
        sums["prompt_cache_saved_micros"] += row.prompt_cache_saved_micros
        sums["price_unknown_requests"] += 1 if row.price_unknown else 0
        sums["latency_ms_sum"] += row.latency_ms
        sums["upstream_ms_sum"] += row.upstream_ms
        sums["overhead_ms_sum"] += row.overhead_ms
    for (day, organization_id, user_id, api_key_id, model), sums in groups.items():
        dimensions = {
            "day": day,
            "organization_id": organization_id,
            "user_id": user_id,
            "api_key_id": api_key_id,
            "model": model,
        }
        # Increment in the database (F expressions), never read-modify-write in Python.
        updated = DailyUsageRollup.objects.filter(**dimensions).update(
            **{name: F(name) + value for name, value in sums.items()}
        )
        if not updated:
            DailyUsageRollup.objects.create(**dimensions, **sums)


def usage_prune(*, older_than_days: int | None = None, batch_size: int = 5000) -> int:
    """Delete raw events past retention in small batches; rollups are kept forever."""
    days = older_than_days
    if days is None:
        days = int(getattr(settings, "USAGE_RETENTION_DAYS", 90))
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        # Small batches keep each delete's locks short on a busy table.
        ids = list(
            UsageEvent.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return deleted
        deleted += UsageEvent.objects.filter(pk__in=ids).delete()[0]


# --- Budgets ----------------------------------------------------------------------------


def month_start(moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date()
    return moment.replace(day=1)


@transaction.atomic
def budget_set(
    *,
    organization: Organization,
    user: User | None = None,
    api_key: ApiKey | None = None,
    monthly_limit_micros: int | None,
    soft_limit_micros: int | None = None,
    webhook_url: str | None = None,
    actor: User | None = None,
) -> Budget:
    """Create or change the budget of an organization, one of its members or one of its keys."""
    if user is not None and api_key is not None:
        raise InvalidRequest("A budget is for a member or for a key, not both.")
    if api_key is not None and api_key.organization_id != organization.pk:
        raise InvalidRequest("That API key belongs to another organization.")
    if user is not None and not user.memberships.filter(organization=organization).exists():
        raise InvalidRequest("That user is not a member of the organization.")
    for name, value in (("monthly", monthly_limit_micros), ("soft", soft_limit_micros)):
        if value is not None and value < 0:
            raise InvalidRequest(f"The {name} limit cannot be negative.")
    if (
        monthly_limit_micros is not None
        and soft_limit_micros is not None
        and soft_limit_micros > monthly_limit_micros
    ):
        raise InvalidRequest("The soft limit cannot exceed the monthly (hard) limit.")
    if api_key is not None:
        scope, lookup = BudgetScope.KEY, {"api_key": api_key}
    elif user is not None:
        scope, lookup = BudgetScope.MEMBER, {"user": user}
    else:
        scope, lookup = BudgetScope.ORGANIZATION, {}
    budget = (
        Budget.objects.select_for_update()
        .filter(organization=organization, scope=scope, **lookup)
        .first()
    )
    before = None
    if budget is None:
        budget = Budget(organization=organization, scope=scope, **lookup)
    else:
        before = {"hard": budget.monthly_limit_micros, "soft": budget.soft_limit_micros}
    budget.monthly_limit_micros = monthly_limit_micros
    budget.soft_limit_micros = soft_limit_micros
    if webhook_url:
        # The alert is POSTed from the proxy's own network: the outbound policy decides.
        problem = url_problem(webhook_url)
        if problem:
            raise InvalidRequest(f"webhook_url: {problem}", param="webhook_url")
    if webhook_url is not None:
        budget.webhook_url = webhook_url
    budget.full_clean()
    budget.save()
    audit_record(
        organization=organization,
        actor=actor,
        event="budget.set",
        target=budget,
        details={
            "before": before,
            "after": {"hard": monthly_limit_micros, "soft": soft_limit_micros},
        },
    )
    transaction.on_commit(lambda: budget_cache_forget(organization_id=organization.pk))
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget, actor: User | None) -> None:
    organization = budget.organization
    audit_record(
        organization=organization,
        actor=actor,
        event="budget.deleted",
        target=budget,
        details={"hard": budget.monthly_limit_micros, "soft": budget.soft_limit_micros},
    )
    budget.delete()
    transaction.on_commit(lambda: budget_cache_forget(organization_id=organization.pk))


@transaction.atomic
def price_create(
    *,
    model_pattern: str,
    effective_from: datetime,
    input_per_mtok_micros: int,
    output_per_mtok_micros: int,
    cached_input_per_mtok_micros: int | None = None,
    cache_write_per_mtok_micros: int | None = None,
    source: str = "",
    actor: User | None,
) -> Price:
    """A new price row from ``effective_from`` on; earlier usage keeps its recorded cost."""
    if Price.objects.filter(model_pattern=model_pattern, effective_from=effective_from).exists():
        raise InvalidRequest("A price for that model from that moment exists.")
    if cached_input_per_mtok_micros is not None and (
        cached_input_per_mtok_micros > input_per_mtok_micros
    ):
        raise InvalidRequest("The cached input price cannot exceed the input price.")
    price = Price.objects.create(
        model_pattern=model_pattern,
        effective_from=effective_from,
        input_per_mtok_micros=input_per_mtok_micros,
        output_per_mtok_micros=output_per_mtok_micros,
        cached_input_per_mtok_micros=cached_input_per_mtok_micros,
        cache_write_per_mtok_micros=cache_write_per_mtok_micros,
        source=source,
    )
    audit_record(
        organization=None,
        actor=actor,
        event="price.created",
        target=price,
        details={"input": input_per_mtok_micros, "output": output_per_mtok_micros},
    )
    transaction.on_commit(price_cache_forget)
    return price


def budget_alert_raise(
    *, budget_id: int, month: date, kind: str, spent_micros: int
) -> BudgetAlert | None:
    """Record that a budget reached a limit this month: once, whoever calls first.

    Returns the new alert, or None when the month already has one of this kind.
    """
    budget = Budget.objects.filter(pk=budget_id).first()
    if budget is None:
        return None
    limit = budget.soft_limit_micros if kind == AlertKind.SOFT else budget.monthly_limit_micros
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                budget=budget,
                organization_id=budget.organization_id,
                month=month,
                kind=kind,
                spent_micros=spent_micros,
                limit_micros=limit or 0,
            )
    except IntegrityError:
        return None  # another process raised it first: the unique constraint decides
    if budget.webhook_url:
        from billing.tasks import budget_alert_deliver

        transaction.on_commit(lambda: budget_alert_deliver.delay(alert.pk))
    logger.warning(
        "budget %s reached its %s limit for %s: spent %s of %s micro-dollars",
        budget_id,
        kind,
        f"{month:%Y-%m}",
        spent_micros,
        limit,
    )
    return alert


def budget_alert_payload(*, alert: BudgetAlert) -> dict:
    budget = alert.budget
    return {
        "type": f"budget.{alert.kind}_limit_reached",
        "organization": budget.organization.slug,
        "budget_id": budget.pk,
        "scope": budget.scope,
        "user": budget.user.username if budget.user_id else None,
        "api_key": budget.api_key.masked if budget.api_key_id else None,
        "month": f"{alert.month:%Y-%m}",
        "spent_usd": pricing.micros_to_usd(alert.spent_micros),
        "limit_usd": pricing.micros_to_usd(alert.limit_micros),
        "created_at": alert.created_at.isoformat(),
    }


def budget_alert_mark_delivered(*, alert: BudgetAlert, error: str = "") -> None:
    alert.webhook_error = error[:300]
    alert.webhook_delivered_at = None if error else timezone.now()
    alert.save(update_fields=["webhook_error", "webhook_delivered_at"])


# --- Reports ----------------------------------------------------------------------------


@transaction.atomic
def monthly_report_create(*, organization: Organization, month: date) -> MonthlyReport:
    """Build (or rebuild) an organization's report for a month; idempotent."""
    month = month_start(month)
    data = reports.month_report(organization_id=organization.pk, month=month)
    report, _ = MonthlyReport.objects.update_or_create(
        organization=organization,
        month=month,
        defaults={"csv_content": reports.month_report_csv(data), "summary": data["summary"]},
    )
    return report
