"""Monthly budgets enforced by reservation: reserve an estimate, settle to the real cost.

Each budget has one counter per UTC month holding spent + reserved micro-dollars.
``budget_reserve`` checks every applicable budget (organization, member, key) and adds
the estimate to all of them in one atomic step, or rejects with ``insufficient_quota``;
``budget_settle`` replaces the estimate with the actual cost; ``budget_release``
returns it when the upstream call failed.

With Redis the check-and-add is one Lua script, so the limit holds across every proxy
instance. The embedded default keeps the counters in this process behind a lock: it
holds across threads but not across processes, which is why the embedded mode is
single-process. A counter missing from Redis (new month, Redis flushed) is seeded
from the month's settled cost in the database before anything is added to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from billing import pricing, selectors
from billing.budget_counters import last_seen, memory_counters, redis_scripts, remember
from billing.models import AlertKind, BudgetScope
from billing.selectors import BudgetLimit
from common.db import run_in_db_thread
from common.errors import DomainError
from common.outages import DATABASE_ERRORS, ashared, redis_configured, shared

logger = logging.getLogger(__name__)

COUNTER_PREFIX = "synthlang:billing:budget:"
# Counters outlive their month long enough for late settlements, then expire.
COUNTER_TTL_SECONDS = 40 * 24 * 3600

_SCOPE_WORDS = {
    BudgetScope.ORGANIZATION: "your organization's monthly budget",
    BudgetScope.MEMBER: "your monthly budget in this organization",
    BudgetScope.KEY: "this API key's monthly budget",
}


class BudgetExceeded(DomainError):
    code = "insufficient_quota"
    message = "You exceeded your current quota, please check your plan and billing details."


class ModelNotPriced(DomainError):
    """A hard budget applies and the model has no price: its cost could not be held
    against the budget, so it would spend without limit."""

    code = "model_not_priced"
    message = "This model has no price, and a budget applies to your requests."


def unpriced_under_budget(
    *, limits: list[BudgetLimit], price: pricing.Price | None, model: str
) -> ModelNotPriced | None:
    """The refusal for a model that no price row matches while a hard budget applies,
    unless the platform prices unknown models with a non-zero fallback
    (``UNKNOWN_MODEL_PRICE_PER_MTOK_USD``); None when the request may go on."""
    if price is None or not price.unknown:
        return None
    if price.input_per_mtok_micros or price.output_per_mtok_micros:
        return None  # priced by the configured fallback
    if not any(limit.hard_micros is not None for limit in limits):
        return None  # soft limits only alert; nothing to exceed
    return ModelNotPriced(
        f"The model '{model}' has no price, and a monthly budget applies to your requests, "
        "so its cost could not be counted against it. Ask an administrator to add its "
        "price, or to set UNKNOWN_MODEL_PRICE_PER_MTOK_USD.",
        param="model",
    )


@dataclass(frozen=True)
class _Hold:
    budget_id: int
    counter_key: str
    soft_micros: int | None
    hard_micros: int | None


@dataclass
class Reservation:
    """An estimate held against every applicable budget until settled or released."""

    organization_id: int
    user_id: int | None
    api_key_id: int | None
    estimate_micros: int
    month: date
    holds: tuple[_Hold, ...] = ()
    # Settling or releasing twice must not move the counters twice.
    open: bool = field(default=True)
    # Held in this process's counters (no Redis, or Redis down): settled there too.
    local: bool = True


def _month_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date().replace(day=1)


def _counter_key(organization_id: int, budget_id: int, month: date) -> str:
    # One reservation's script touches the counters of one organization's budgets: the hash
    # tag keeps them in one Redis Cluster slot, as a script's keys must be.
    return f"{COUNTER_PREFIX}{{org:{organization_id}}}:{budget_id}:{month:%Y-%m}"


def _budget_counter_key(budget_id: int, month: date) -> str:
    from billing.models import Budget

    organization_id = Budget.objects.values_list("organization_id", flat=True).get(pk=budget_id)
    return _counter_key(organization_id, budget_id, month)


def budget_counters_forget() -> None:
    """Drop this process's in-memory counters (tests; they reseed from the database)."""
    memory_counters.clear()
    last_seen.clear()


def _reserve_args(holds, estimate, seeds):
    args = [estimate, COUNTER_TTL_SECONDS]
    for hold, seed in zip(holds, seeds, strict=True):
        args += [-1 if hold.hard_micros is None else hold.hard_micros, seed]
    return args


def _holds(limits: list[BudgetLimit], month: date) -> tuple[_Hold, ...]:
    return tuple(
        _Hold(
            budget_id=limit.budget_id,
            counter_key=_counter_key(limit.organization_id, limit.budget_id, month),
            soft_micros=limit.soft_micros,
            hard_micros=limit.hard_micros,
        )
        for limit in limits
    )


def _seeds(limits: list[BudgetLimit], month: date, missing: list[int]) -> list[int]:
    seeds = [-1] * len(limits)
    for index in missing:
        limit = limits[index - 1]
        try:
            seeds[index - 1] = selectors.budget_month_spent_micros(limit=limit, month=month)
        except DATABASE_ERRORS:
            last = last_seen.get(_counter_key(limit.organization_id, limit.budget_id, month))
            if last is None:
                raise  # nothing to hold the request against: a 503
            seeds[index - 1] = last
    return seeds


def _flag_key(budget_id: int, month: date, kind: str) -> str:
    return f"{COUNTER_PREFIX}{budget_id}:{month:%Y-%m}:alerted:{kind}"


def _first_time(budget_id: int, month: date, kind: str) -> bool:
    """Whether this process is the first, cluster-wide, to see this limit reached."""
    name = _flag_key(budget_id, month, kind)

    def in_redis() -> bool:
        from common.redis import sync_redis

        return bool(sync_redis().set(name, 1, nx=True, ex=COUNTER_TTL_SECONDS))

    # The database's unique constraint keeps the alert single whichever process raises it.
    first, _local = shared(
        "budget", in_redis, lambda: memory_counters.flag_once(name), enforces_limits=False
    )
    return first


async def _afirst_time(budget_id: int, month: date, kind: str) -> bool:
    name = _flag_key(budget_id, month, kind)

    async def in_redis() -> bool:
        from common.redis import async_redis

        return bool(await async_redis().set(name, 1, nx=True, ex=COUNTER_TTL_SECONDS))

    first, _local = await ashared(
        "budget", in_redis, lambda: memory_counters.flag_once(name), enforces_limits=False
    )
    return first


def _alert(budget_id: int, month: date, kind: str, spent_micros: int) -> None:
    from billing.tasks import budget_alert_raise

    try:
        budget_alert_raise.delay(budget_id, month.isoformat(), kind, int(spent_micros))
    except Exception:
        # The database's unique constraint still allows exactly one alert: let the
        # next process that reaches the limit try again.
        logger.exception("could not raise the %s alert of budget %s", kind, budget_id)
        _forget_flag(budget_id, month, kind)


def _forget_flag(budget_id: int, month: date, kind: str) -> None:
    name = _flag_key(budget_id, month, kind)

    def in_redis() -> None:
        from common.redis import sync_redis

        sync_redis().delete(name)

    def locally() -> None:
        with memory_counters.lock:
            memory_counters.flags.discard(name)

    try:
        shared("budget", in_redis, locally, enforces_limits=False)
    except Exception:
        logger.warning("could not clear alert flag %s", name, exc_info=True)


def _rejection(limit: BudgetLimit) -> BudgetExceeded:
    scope = _SCOPE_WORDS.get(limit.scope, "a monthly budget")
    error = BudgetExceeded(
        "You exceeded your current quota, please check your plan and billing details. "
        f"This request would exceed {scope}."
    )
    error.scope = str(limit.scope)  # the budget that refused, for the refusals metric
    return error


def _soft_crossings(reservation: Reservation, values) -> list[tuple[_Hold, int]]:
    return [
        (hold, value)
        for hold, value in zip(reservation.holds, values, strict=True)
        if hold.soft_micros is not None and value >= 0 and value >= hold.soft_micros
    ]


# --- The API the proxy calls -------------------------------------------------------------------


def budget_reserve(
    *,
    organization_id: int,
    user_id: int | None,
    api_key_id: int | None,
    estimate_micros: int,
    at: datetime | None = None,
    price: pricing.Price | None = None,
    model: str = "",
) -> Reservation:
    """Hold ``estimate_micros`` against every applicable budget or raise ``BudgetExceeded``
    (``ModelNotPriced`` when ``price`` is the unknown-model rule's zero under a budget)."""
    month = _month_of(at or datetime.now(UTC))
    estimate = max(int(estimate_micros), 0)
    limits = selectors.budgets_applicable(
        organization_id=organization_id, user_id=user_id, api_key_id=api_key_id
    )
    reservation = Reservation(organization_id, user_id, api_key_id, estimate, month)
    if not limits:
        return reservation
    refusal = unpriced_under_budget(limits=limits, price=price, model=model)
    if refusal is not None:
        raise refusal
    holds = _holds(limits, month)
    keys = [hold.counter_key for hold in holds]
    seeds = [-1] * len(holds)
    limits_micros = [-1 if h.hard_micros is None else h.hard_micros for h in holds]
    for _attempt in range(2):

        def in_redis(seeds=seeds) -> list:
            from common.redis import sync_redis

            reserve_script, _ = redis_scripts(sync_redis())
            return list(reserve_script(keys=keys, args=_reserve_args(holds, estimate, seeds)))

        result, reservation.local = shared(
            "budget",
            in_redis,
            lambda seeds=seeds: memory_counters.reserve(keys, estimate, limits_micros, seeds),
        )
        if result[0] != -1:
            break
        seeds = _seeds(limits, month, result[1:])
    if result[0] == 1 and not reservation.local:
        remember(keys, result[1:])
    return _conclude(reservation, limits, holds, result, sync=True)


async def abudget_reserve(
    *,
    organization_id: int,
    user_id: int | None,
    api_key_id: int | None,
    estimate_micros: int,
    at: datetime | None = None,
    price: pricing.Price | None = None,
    model: str = "",
) -> Reservation:
    """``budget_reserve`` for the event loop: one Redis round trip when nothing is missing."""
    month = _month_of(at or datetime.now(UTC))
    estimate = max(int(estimate_micros), 0)
    limits = await selectors.abudgets_applicable(
        organization_id=organization_id, user_id=user_id, api_key_id=api_key_id
    )
    reservation = Reservation(organization_id, user_id, api_key_id, estimate, month)
    if not limits:
        return reservation
    refusal = unpriced_under_budget(limits=limits, price=price, model=model)
    if refusal is not None:
        raise refusal
    holds = _holds(limits, month)
    keys = [hold.counter_key for hold in holds]
    seeds = [-1] * len(holds)
    limits_micros = [-1 if h.hard_micros is None else h.hard_micros for h in holds]
    for _attempt in range(2):

        async def in_redis(seeds=seeds) -> list:
            from common.redis import async_redis

            reserve_script, _ = redis_scripts(async_redis())
            return list(await reserve_script(keys=keys, args=_reserve_args(holds, estimate, seeds)))

        result, reservation.local = await ashared(
            "budget",
            in_redis,
            lambda seeds=seeds: memory_counters.reserve(keys, estimate, limits_micros, seeds),
        )
        if result[0] != -1:
            break
        seeds = await run_in_db_thread(_seeds, limits, month, result[1:])
    if result[0] == 1 and not reservation.local:
        remember(keys, result[1:])
    if result[0] == 0:
        limit = limits[int(result[1]) - 1]
        if await _afirst_time(limit.budget_id, month, AlertKind.HARD):
            await run_in_db_thread(_alert, limit.budget_id, month, AlertKind.HARD, int(result[2]))
        raise _rejection(limit)
    return _conclude(reservation, limits, holds, result, sync=False)


def _conclude(reservation, limits, holds, result, *, sync: bool) -> Reservation:
    if result[0] == -1:
        # Seeded and still missing: the counter expired between the two calls. Refusing
        # would punish the client for our cache; admit it without a hold instead.
        logger.warning("budget counters missing after seeding; admitting without a hold")
        return reservation
    if result[0] == 0:
        limit = limits[int(result[1]) - 1]
        if sync and _first_time(limit.budget_id, reservation.month, AlertKind.HARD):
            _alert(limit.budget_id, reservation.month, AlertKind.HARD, int(result[2]))
        raise _rejection(limit)
    reservation.holds = holds
    return reservation


# A reservation settles where it was held. One held in Redis that went away since settles
# into this process's counters only if they hold that month (they were seeded during the
# outage); otherwise there is nothing to correct here, and Redis keeps the estimate.


def _adjust_sync(reservation: Reservation, delta: int) -> list[int]:
    keys = [hold.counter_key for hold in reservation.holds]
    if reservation.local:
        return memory_counters.adjust(keys, delta)

    def in_redis() -> list[int]:
        from common.redis import sync_redis

        _, adjust_script = redis_scripts(sync_redis())
        return [int(value) for value in adjust_script(keys=keys, args=[delta])]

    values, local = shared(
        "budget", in_redis, lambda: memory_counters.adjust(keys, delta), enforces_limits=False
    )
    if not local:
        remember(keys, values)
    return values


async def _adjust_async(reservation: Reservation, delta: int) -> list[int]:
    keys = [hold.counter_key for hold in reservation.holds]
    if reservation.local:
        return memory_counters.adjust(keys, delta)

    async def in_redis() -> list[int]:
        from common.redis import async_redis

        _, adjust_script = redis_scripts(async_redis())
        return [int(value) for value in await adjust_script(keys=keys, args=[delta])]

    values, local = await ashared(
        "budget", in_redis, lambda: memory_counters.adjust(keys, delta), enforces_limits=False
    )
    if not local:
        remember(keys, values)
    return values


async def abudget_hold_for_done_work(
    *, organization_id: int, user_id: int | None, api_key_id: int | None
) -> Reservation:
    """A reservation of nothing on every applicable budget, never refused: for work the
    upstream has already done (a batch's results), whose cost settling it adds. The
    budget was checked when the work was asked for; refusing to record it now would
    only hide spending that happened."""
    month = _month_of(datetime.now(UTC))
    limits = await selectors.abudgets_applicable(
        organization_id=organization_id, user_id=user_id, api_key_id=api_key_id
    )
    reservation = Reservation(organization_id, user_id, api_key_id, 0, month)
    reservation.holds = _holds(limits, month)
    return reservation


def budget_settle(reservation: Reservation, *, actual_micros: int) -> None:
    """Replace the held estimate by the real cost; raise the soft-limit alert once."""
    if not reservation.open or not reservation.holds:
        reservation.open = False
        return
    reservation.open = False
    values = _adjust_sync(reservation, max(int(actual_micros), 0) - reservation.estimate_micros)
    for hold, value in _soft_crossings(reservation, values):
        if _first_time(hold.budget_id, reservation.month, AlertKind.SOFT):
            _alert(hold.budget_id, reservation.month, AlertKind.SOFT, value)


async def abudget_settle(reservation: Reservation, *, actual_micros: int) -> None:
    if not reservation.open or not reservation.holds:
        reservation.open = False
        return
    reservation.open = False
    delta = max(int(actual_micros), 0) - reservation.estimate_micros
    values = await _adjust_async(reservation, delta)
    for hold, value in _soft_crossings(reservation, values):
        if await _afirst_time(hold.budget_id, reservation.month, AlertKind.SOFT):
            await run_in_db_thread(_alert, hold.budget_id, reservation.month, AlertKind.SOFT, value)


def budget_release(reservation: Reservation) -> None:
    """Give the estimate back: the upstream call failed and costs nothing."""
    if not reservation.open or not reservation.holds:
        reservation.open = False
        return
    reservation.open = False
    _adjust_sync(reservation, -reservation.estimate_micros)


async def abudget_release(reservation: Reservation) -> None:
    if not reservation.open or not reservation.holds:
        reservation.open = False
        return
    reservation.open = False
    await _adjust_async(reservation, -reservation.estimate_micros)


def budget_counter_value(*, budget_id: int, at: datetime | None = None) -> int | None:
    """The month's spent + reserved micro-dollars as the counters see it (admin, tests)."""
    key = _budget_counter_key(budget_id, _month_of(at or datetime.now(UTC)))
    if redis_configured():
        from common.redis import sync_redis

        value = sync_redis().get(key)
        return None if value is None else int(value)
    with memory_counters.lock:
        return memory_counters.values.get(key)


def budget_counter_reset(*, budget_id: int, at: datetime | None = None) -> None:
    """Forget a month's counter so the next request reseeds it from the database.

    Outstanding reservations are forgotten with it; use after fixing data, not routinely.
    """
    key = _budget_counter_key(budget_id, _month_of(at or datetime.now(UTC)))
    if redis_configured():
        from common.redis import sync_redis

        sync_redis().delete(key)
    else:
        with memory_counters.lock:
            memory_counters.values.pop(key, None)
