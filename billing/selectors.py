"""Reads of billing data: effective prices and budgets (cached per process), scoped usage."""

from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db.models import Max, QuerySet, Sum

from accounts.models import ApiKey
from billing import pricing
from billing.models import Budget, BudgetScope, DailyUsageRollup, Price, UsageEvent
from common.db import run_in_db_thread

# --- Prices ----------------------------------------------------------------------------

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class _PriceRow:
    pattern: str
    effective_from: datetime
    price: pricing.Price
    specificity: tuple[int, int]


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


class _PriceTable:
    """Every price row in memory, reloaded after a short TTL.

    The table is small (hundreds of rows) and read on every request and every flushed
    event, so one query per TTL per process replaces one query per lookup.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[_PriceRow] = []
        self._by_model: dict[str, list[_PriceRow]] = {}
        self._expires_at = 0.0

    def fresh(self) -> bool:
        return time.monotonic() < self._expires_at

    def forget(self) -> None:
        with self._lock:
            self._expires_at = 0.0

    def load(self) -> None:
        rows = []
        for record in Price.objects.only(
            "model_pattern",
            "effective_from",
            "input_per_mtok_micros",
            "output_per_mtok_micros",
            "cached_input_per_mtok_micros",
            "cache_write_per_mtok_micros",
            "per_unit_micros",
            "batch_input_per_mtok_micros",
            "batch_output_per_mtok_micros",
        ):
            pattern = record.model_pattern.strip().lower()
            is_glob = bool(_GLOB_CHARS & set(pattern))
            literal = sum(1 for char in pattern if char not in _GLOB_CHARS)
            rows.append(
                _PriceRow(
                    pattern=pattern,
                    effective_from=record.effective_from,
                    price=pricing.Price(
                        int(record.input_per_mtok_micros),
                        int(record.output_per_mtok_micros),
                        _optional_int(record.cached_input_per_mtok_micros),
                        _optional_int(record.cache_write_per_mtok_micros),
                        per_unit_micros=_optional_int(record.per_unit_micros),
                        batch_input_per_mtok_micros=_optional_int(
                            record.batch_input_per_mtok_micros
                        ),
                        batch_output_per_mtok_micros=_optional_int(
                            record.batch_output_per_mtok_micros
                        ),
                    ),
                    # An exact name beats any glob; among globs the one that spells out
                    # more of the name is the more specific.
                    specificity=(0 if is_glob else 1, literal),
                )
            )
        ttl = float(getattr(settings, "PRICE_CACHE_SECONDS", 60))
        with self._lock:
            self._rows = rows
            self._by_model = {}
            self._expires_at = time.monotonic() + ttl

    def candidates(self, model: str) -> list[_PriceRow]:
        found = self._by_model.get(model)
        if found is None:
            found = sorted(
                (row for row in self._rows if fnmatch.fnmatchcase(model, row.pattern)),
                key=lambda row: (row.specificity, row.effective_from),
                reverse=True,
            )
            self._by_model[model] = found
        return found


_prices = _PriceTable()


def price_cache_forget() -> None:
    """Make this process reload prices on the next lookup (others follow within the TTL)."""
    _prices.forget()


def unknown_model_price() -> pricing.Price:
    """The unknown-model rule: ``UNKNOWN_MODEL_PRICE_PER_MTOK_USD``, "IN" or "IN,OUT" dollars."""
    configured = getattr(settings, "UNKNOWN_MODEL_PRICE_PER_MTOK_USD", "0")
    if isinstance(configured, (list, tuple)):
        parts = [str(part) for part in configured]
    else:
        parts = [part.strip() for part in str(configured).split(",") if part.strip()]
    parts = parts or ["0"]
    input_micros = pricing.usd_to_micros(parts[0])
    output_micros = pricing.usd_to_micros(parts[1] if len(parts) > 1 else parts[0])
    return pricing.Price(input_micros, output_micros, None, unknown=True)


def _lookup(model: str, at: datetime) -> pricing.Price | None:
    name = (model or "").strip().lower()
    names = [name]
    # "openai/gpt-4o" and "anthropic/claude-..." as routers spell them.
    if "/" in name:
        names.append(name.rsplit("/", 1)[1])
    for candidate in names:
        for row in _prices.candidates(candidate):
            if row.effective_from <= at:
                return row.price
    return None


def price_for(model: str, at: datetime) -> pricing.Price:
    """The price in force for ``model`` at ``at``, else the unknown-model rule.

    The result's ``unknown`` flag tells the caller (and the usage event) which it was.
    """
    if not _prices.fresh():
        _prices.load()
    return _lookup(model, at) or unknown_model_price()


async def aprice_for(model: str, at: datetime) -> pricing.Price:
    """``price_for`` for the event loop: it touches the database only when the TTL ran out."""
    if not _prices.fresh():
        await run_in_db_thread(_prices.load)
    return _lookup(model, at) or unknown_model_price()


def _usage_price(model: str, upstream_model: str, at: datetime) -> pricing.Price:
    # The upstream model is what the provider bills; a public alias has no price of its
    # own, so the asked-for name is only the fallback.
    price = _lookup(upstream_model or model, at)
    if price is None and upstream_model and model and upstream_model != model:
        price = _lookup(model, at)
    return price or unknown_model_price()


def price_for_usage(*, model: str, upstream_model: str, at: datetime) -> pricing.Price:
    """The price a usage event is billed at: the same for the event written by the flush,
    the cost the client is told (``x-synthlang-cost-usd``) and the access line."""
    if not _prices.fresh():
        _prices.load()
    return _usage_price(model, upstream_model, at)


async def aprice_for_usage(*, model: str, upstream_model: str, at: datetime) -> pricing.Price:
    if not _prices.fresh():
        await run_in_db_thread(_prices.load)
    return _usage_price(model, upstream_model, at)


def _tool_fee(name: str, at: datetime) -> int:
    # Only rows named for tools: a catch-all model pattern ("*") prices models, not calls.
    for row in _prices.candidates(f"{pricing.TOOL_PRICE_PREFIX}{name}"):
        if row.pattern.startswith(pricing.TOOL_PRICE_PREFIX) and row.effective_from <= at:
            return row.price.per_unit_micros or 0
    return 0


def _tool_fees(tool_calls: dict[str, int], at: datetime) -> int:
    return sum(count * _tool_fee(name, at) for name, count in tool_calls.items())


def tool_fees_micros(tool_calls: dict[str, int], at: datetime) -> int:
    """What the built-in tool calls cost: each tool's ``tool:<name>`` fee per call."""
    if not tool_calls:
        return 0
    if not _prices.fresh():
        _prices.load()
    return _tool_fees(tool_calls, at)


async def atool_fees_micros(tool_calls: dict[str, int], at: datetime) -> int:
    if not tool_calls:
        return 0
    if not _prices.fresh():
        await run_in_db_thread(_prices.load)
    return _tool_fees(tool_calls, at)


async def aprice_for_models(models: list[str], at: datetime) -> pricing.Price:
    """The price to hold against a budget for a call that any of ``models`` may serve
    (the public name and each deployment's upstream model): the dearest that has a price,
    so a routed alias without a price row of its own is not held at zero; the
    unknown-model rule only when none is priced."""
    if not _prices.fresh():
        await run_in_db_thread(_prices.load)
    known = [price for price in (_lookup(model, at) for model in models if model) if price]
    if not known:
        return unknown_model_price()
    return max(known, key=lambda price: (price.output_per_mtok_micros, price.input_per_mtok_micros))


# --- Budgets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetLimit:
    """What a reservation needs to know about one budget, without an ORM object."""

    budget_id: int
    organization_id: int
    scope: str
    user_id: int | None
    api_key_id: int | None
    hard_micros: int | None
    soft_micros: int | None
    has_webhook: bool


@dataclass(frozen=True)
class _OrgBudgets:
    limits: tuple[BudgetLimit, ...]
    # Key id -> the key that created it, for the keys with a parent: a child key spends
    # from its ancestors' key budgets too, so creating keys cannot widen a budget.
    key_parents: dict[int, int]
    # The newest key when this was loaded (None: no key budgets, lineage does not matter).
    # A key created since could be a child whose parent has a budget: load again.
    newest_key_id: int | None = None

    def knows(self, api_key_id: int | None) -> bool:
        return self.newest_key_id is None or not api_key_id or api_key_id <= self.newest_key_id

    def key_lineage(self, api_key_id: int | None) -> set[int]:
        lineage: set[int] = set()
        while api_key_id and api_key_id not in lineage:
            lineage.add(api_key_id)
            api_key_id = self.key_parents.get(api_key_id)
        return lineage


class _BudgetTable:
    """Each organization's budgets, cached per process for a few seconds.

    A budget changed in the admin takes effect here at once and in other processes
    within ``BUDGET_CACHE_SECONDS``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_org: dict[int, tuple[float, _OrgBudgets]] = {}

    def get(self, organization_id: int) -> _OrgBudgets | None:
        entry = self._by_org.get(organization_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def load(self, organization_id: int) -> _OrgBudgets:
        limits = tuple(
            BudgetLimit(
                budget_id=budget.pk,
                organization_id=budget.organization_id,
                scope=budget.scope,
                user_id=budget.user_id,
                api_key_id=budget.api_key_id,
                hard_micros=budget.monthly_limit_micros,
                soft_micros=budget.soft_limit_micros,
                has_webhook=bool(budget.webhook_url),
            )
            for budget in Budget.objects.filter(organization_id=organization_id)
        )
        parents: dict[int, int] = {}
        newest_key_id = None
        if any(limit.scope == BudgetScope.KEY for limit in limits):
            keys = ApiKey.objects.filter(organization_id=organization_id)
            parents = dict(keys.filter(parent__isnull=False).values_list("pk", "parent_id"))
            newest_key_id = keys.aggregate(newest=Max("pk"))["newest"] or 0
        loaded = _OrgBudgets(limits=limits, key_parents=parents, newest_key_id=newest_key_id)
        ttl = float(getattr(settings, "BUDGET_CACHE_SECONDS", 5))
        with self._lock:
            self._by_org[organization_id] = (time.monotonic() + ttl, loaded)
        return loaded

    def forget(self, organization_id: int | None = None) -> None:
        with self._lock:
            if organization_id is None:
                self._by_org.clear()
            else:
                self._by_org.pop(organization_id, None)


_budgets = _BudgetTable()


def budget_cache_forget(*, organization_id: int | None = None) -> None:
    _budgets.forget(organization_id)


def _applicable(
    budgets: _OrgBudgets, user_id: int | None, api_key_id: int | None
) -> list[BudgetLimit]:
    found = []
    lineage = budgets.key_lineage(api_key_id)
    for limit in budgets.limits:
        if limit.hard_micros is None and limit.soft_micros is None:
            continue
        if (
            limit.scope == BudgetScope.ORGANIZATION
            or (limit.scope == BudgetScope.MEMBER and user_id and limit.user_id == user_id)
            or (limit.scope == BudgetScope.KEY and limit.api_key_id in lineage)
        ):
            found.append(limit)
    return found


def budgets_applicable(
    *, organization_id: int, user_id: int | None, api_key_id: int | None
) -> list[BudgetLimit]:
    limits = _budgets.get(organization_id)
    if limits is None or not limits.knows(api_key_id):
        limits = _budgets.load(organization_id)
    return _applicable(limits, user_id, api_key_id)


async def abudgets_applicable(
    *, organization_id: int, user_id: int | None, api_key_id: int | None
) -> list[BudgetLimit]:
    limits = _budgets.get(organization_id)
    if limits is None or not limits.knows(api_key_id):
        limits = await run_in_db_thread(_budgets.load, organization_id)
    return _applicable(limits, user_id, api_key_id)


def budget_month_spent_micros(*, limit: BudgetLimit, month: date) -> int:
    """The month's settled cost in a budget's scope, from the rollups (seeds the counters)."""
    if month.month == 12:
        next_month = date(month.year + 1, 1, 1)
    else:
        next_month = date(month.year, month.month + 1, 1)
    rows = DailyUsageRollup.objects.filter(
        organization_id=limit.organization_id, day__gte=month, day__lt=next_month
    )
    if limit.scope == BudgetScope.MEMBER:
        rows = rows.filter(user_id=limit.user_id)
    elif limit.scope == BudgetScope.KEY:
        rows = rows.filter(api_key_id__in=_key_and_descendants(limit.api_key_id))
    return int(rows.aggregate(total=Sum("cost_micros"))["total"] or 0)


def _key_and_descendants(api_key_id: int) -> list[int]:
    """A key budget covers the keys created from that key, at any depth."""
    found = [api_key_id]
    frontier = [api_key_id]
    while frontier:
        frontier = [
            pk
            for pk in ApiKey.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)
            if pk not in found
        ]
        found.extend(frontier)
    return found


# --- Tenant-scoped usage reads ----------------------------------------------------------


def usage_events_for_org(*, organization_id: int) -> QuerySet[UsageEvent]:
    return UsageEvent.objects.filter(organization_id=organization_id)


def rollups_for_org(*, organization_id: int | None) -> QuerySet[DailyUsageRollup]:
    """An organization's rollups; ``None`` only for platform staff (every organization)."""
    if organization_id is None:
        return DailyUsageRollup.objects.all()
    return DailyUsageRollup.objects.filter(organization_id=organization_id)
