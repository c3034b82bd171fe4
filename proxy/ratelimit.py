"""Requests and tokens per minute, per key, per member and per organization.

A sliding window approximated from two fixed one-minute windows (the previous
window's count weighted by how much of it still overlaps the last 60 seconds).
With Redis, one Lua script checks every limit and then counts against all of them,
so the decision is atomic and global across proxy instances; without Redis the
same arithmetic runs in this process (the embedded default is one process), and
during a Redis outage ``common.outages`` decides between that and a 503.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass, field

from accounts.selectors import Principal, RateLimit
from common.errors import DomainError
from common.local_state import local_state_register
from common.outages import ashared
from common.redis import KEY_PREFIX, pipelined_redis
from common.redis_writes import write_batcher
from proxy import metrics

WINDOW_SECONDS = 60

_ADMIT_SCRIPT = """
local elapsed = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local weight = (window - elapsed) / window
local n = #KEYS / 2
local used = {}
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local total = math.floor(previous * weight) + current
  if limit > 0 and total + cost > limit then
    return {0, i, current, previous}
  end
  used[i] = total
end
for i = 1, n do
  local cost = tonumber(ARGV[2 + 2 * i])
  if cost ~= 0 then
    redis.call('INCRBY', KEYS[2 * i - 1], cost)
    redis.call('PEXPIRE', KEYS[2 * i - 1], window * 2000)
  end
end
local reply = {1, 0}
for i = 1, n do reply[2 + i] = used[i] end
return reply
"""


# Sent by its SHA1 (EVALSHA) rather than as its whole text on every request.
_ADMIT_SHA = hashlib.sha1(_ADMIT_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's script id


class RateLimited(DomainError):
    code = "rate_limit_exceeded"


@dataclass(frozen=True)
class Counter:
    scope: str  # "key" | "member" | "organization"
    kind: str  # "requests" | "tokens"
    key: str
    limit: int


@dataclass
class Admission:
    counters: list[Counter]
    used_before: list[int]
    costs: list[int]
    window_index: int
    reset_seconds: float
    tokens_counted: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    # Counted in this process (no Redis, or Redis down): settled in the same place.
    local: bool = True


def _counters(principal: Principal) -> list[Counter]:
    scopes: list[tuple[str, str, RateLimit | None]] = [
        ("key", f"key:{principal.key_id}", principal.key_limit),
        (
            "member",
            f"member:{principal.organization_id}:{principal.user_id}",
            principal.member_limit,
        ),
        ("organization", f"org:{principal.organization_id}", principal.organization_limit),
    ]
    # One admission's script touches every counter of the principal: the hash tag keeps them
    # in one Redis Cluster slot, as a script's keys must be.
    slot = f"{{org:{principal.organization_id}}}"
    counters = []
    for scope, ident, limit in scopes:
        if limit is None:
            continue
        if limit.rpm:
            counters.append(Counter(scope, "requests", f"{slot}:{ident}:rpm", limit.rpm))
        if limit.tpm:
            counters.append(Counter(scope, "tokens", f"{slot}:{ident}:tpm", limit.tpm))
    return counters


def _window_key(counter_key: str, window_index: int) -> str:
    return f"{KEY_PREFIX}rl:{counter_key}:{window_index}"


def _format_reset(seconds: float) -> str:
    seconds = max(seconds, 0.001)
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60)}s"
    if seconds >= 1:
        return f"{seconds:.0f}s" if seconds.is_integer() else f"{seconds:.1f}s"
    return f"{int(seconds * 1000)}ms"


def _retry_after(limit: int, cost: int, current: int, previous: int, elapsed: float) -> float:
    """Seconds until the sliding window has room for ``cost`` again."""
    if current + cost > limit or previous <= 0:
        return WINDOW_SECONDS - elapsed + 0.01
    room_needed_fraction = 1 - (limit - current - cost) / previous
    return max(WINDOW_SECONDS * room_needed_fraction - elapsed, 0.01)


# The embedded default: counters in this process.
_local_counts: dict[str, int] = {}


def _local_admit(
    keys: list[tuple[str, str]], limits: list[int], costs: list[int], elapsed: float
) -> list[int]:
    weight = (WINDOW_SECONDS - elapsed) / WINDOW_SECONDS
    used = []
    for i, (current_key, previous_key) in enumerate(keys):
        current = _local_counts.get(current_key, 0)
        previous = _local_counts.get(previous_key, 0)
        total = math.floor(previous * weight) + current
        if limits[i] > 0 and total + costs[i] > limits[i]:
            return [0, i + 1, current, previous]
        used.append(total)
    for (current_key, _), cost in zip(keys, costs, strict=True):
        _local_counts[current_key] = _local_counts.get(current_key, 0) + cost
    if len(_local_counts) > 100_000:
        _local_prune()
    return [1, 0, *used]


def _local_prune() -> None:
    oldest_kept = int(time.time() // WINDOW_SECONDS) - 1
    for key in list(_local_counts):
        if int(key.rsplit(":", 1)[1]) < oldest_kept:
            del _local_counts[key]


def reset_local_counters() -> None:
    _local_counts.clear()


local_state_register("ratelimit:counters", reset_local_counters, redis_twin=True)


async def admit(principal: Principal, *, tokens: int) -> Admission:
    """Count this request against every limit that applies, or raise ``RateLimited``."""
    now = time.time()
    window_index = int(now // WINDOW_SECONDS)
    elapsed = now - window_index * WINDOW_SECONDS
    counters = _counters(principal)
    admission = Admission(
        counters=counters,
        used_before=[],
        costs=[],
        window_index=window_index,
        reset_seconds=WINDOW_SECONDS - elapsed,
        tokens_counted=tokens,
    )
    if not counters:
        return admission
    costs = [1 if c.kind == "requests" else tokens for c in counters]
    keys = [
        (_window_key(c.key, window_index), _window_key(c.key, window_index - 1)) for c in counters
    ]
    flat_keys = [k for pair in keys for k in pair]
    args = [int(elapsed * 1000), WINDOW_SECONDS * 1000]
    for counter, cost in zip(counters, costs, strict=True):
        args += [counter.limit, cost]

    async def in_redis() -> list:
        return await pipelined_redis().evalsha(_ADMIT_SCRIPT, _ADMIT_SHA, flat_keys, args)

    reply, admission.local = await ashared(
        "ratelimit",
        in_redis,
        lambda: _local_admit(keys, [c.limit for c in counters], costs, elapsed),
    )
    reply = [int(x) for x in reply]
    if reply[0] == 0:
        index = reply[1] - 1
        counter = counters[index]
        current, previous = reply[2], reply[3]
        retry = _retry_after(counter.limit, costs[index], current, previous, elapsed)
        metrics.RATE_LIMITED.labels(scope=counter.scope, kind=counter.kind).inc()
        used = math.floor(previous * (WINDOW_SECONDS - elapsed) / WINDOW_SECONDS) + current
        raise RateLimited(
            f"Rate limit reached for {counter.kind} per minute on this {counter.scope}: "
            f"limit {counter.limit}, used {used}, requested {costs[index]}. "
            f"Please try again in {_format_reset(retry)}.",
            headers={
                "retry-after": str(math.ceil(retry)),
                "retry-after-ms": str(int(retry * 1000)),
                **_headers(counters, [None] * len(counters), costs, WINDOW_SECONDS - elapsed),
            },
        )
    admission.used_before = reply[2:]
    admission.costs = costs
    admission.headers = _headers(counters, admission.used_before, costs, WINDOW_SECONDS - elapsed)
    return admission


def _headers(
    counters: list[Counter], used: list[int | None], costs: list[int], reset_seconds: float
) -> dict[str, str]:
    """OpenAI's rate-limit headers, for the tightest limit of each kind."""
    headers: dict[str, str] = {}
    for kind, suffix in (("requests", "requests"), ("tokens", "tokens")):
        best: tuple[int, int] | None = None  # (remaining, limit)
        for counter, before, cost in zip(counters, used, costs, strict=True):
            if counter.kind != kind:
                continue
            remaining = counter.limit - (before + cost if before is not None else counter.limit)
            remaining = max(remaining, 0)
            if best is None or remaining < best[0]:
                best = (remaining, counter.limit)
        if best is not None:
            headers[f"x-ratelimit-limit-{suffix}"] = str(best[1])
            headers[f"x-ratelimit-remaining-{suffix}"] = str(best[0])
            headers[f"x-ratelimit-reset-{suffix}"] = _format_reset(reset_seconds)
    return headers


async def settle_tokens(admission: Admission, *, actual_tokens: int) -> None:
    """Replace the admission's token estimate with the real count."""
    delta = actual_tokens - admission.tokens_counted
    token_counters = [c for c in admission.counters if c.kind == "tokens"]
    if not delta or not token_counters:
        return
    keys = [_window_key(c.key, admission.window_index) for c in token_counters]

    def locally() -> None:
        for key in keys:
            _local_counts[key] = _local_counts.get(key, 0) + delta

    if admission.local:
        locally()
    else:
        # Settling happens after the response: it shares a round trip with other requests'.
        async def in_redis() -> None:
            batcher = write_batcher()
            await asyncio.gather(
                *(batcher.incrby(key, delta, expire_seconds=WINDOW_SECONDS * 2) for key in keys)
            )

        # Admitted in Redis, which went away since: the count settles here, never refuses.
        await ashared("ratelimit", in_redis, locally, enforces_limits=False)
    admission.tokens_counted = actual_tokens
