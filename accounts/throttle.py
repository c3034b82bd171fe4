"""Failed API-key lookups, counted per client address: a guesser is stopped after a few.

After ``KEY_LOOKUP_FAILURE_LIMIT`` answers of 401 to requests that carried a key, within
``KEY_LOOKUP_FAILURE_WINDOW_SECONDS``, the address gets OpenAI's 429 (``Retry-After``
set) for what is left of the window, before any lookup. With Redis the count is one
counter per address shared by every instance (one script: increment, start the window,
read its end); without it, this process counts alone. Redis being down is not a reason
to stop counting: this process's counter takes over.

Only a failure costs a Redis call. The check before a request reads this process's list
of blocked addresses, which a failure adds to once the shared count reaches the limit;
another instance therefore lets an address through at most once more per window, then
blocks it too.
"""

from __future__ import annotations

import logging
import threading
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import JsonResponse

from common.client_address import client_address
from common.errors import error_body
from common.local_state import local_state_register
from common.outages import ashared, shared

logger = logging.getLogger(__name__)

KEY_PREFIX = "synthlang:auth:key-failures:"
# Bounds this process's memory under a flood of addresses (each entry is small).
MAX_TRACKED_ADDRESSES = 100_000
GUARDED_PREFIXES = ("/v1/", "/api/")

_COUNT_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: dict[str, tuple[int, float]] = {}  # address -> (count, window end)
        self.blocked: dict[str, float] = {}  # address -> blocked until (monotonic)

    def _prune(self, now: float) -> None:
        if len(self.failures) + len(self.blocked) < MAX_TRACKED_ADDRESSES:
            return
        self.failures = {a: v for a, v in self.failures.items() if v[1] > now}
        self.blocked = {a: until for a, until in self.blocked.items() if until > now}
        if len(self.failures) >= MAX_TRACKED_ADDRESSES:
            self.failures.clear()  # a flood of addresses: start counting again

    def count_locally(self, address: str, window: int) -> tuple[int, float]:
        now = time.monotonic()
        with self.lock:
            self._prune(now)
            count, ends = self.failures.get(address, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            count += 1
            self.failures[address] = (count, ends)
            return count, ends - now

    def block(self, address: str, seconds: float) -> None:
        with self.lock:
            self.blocked[address] = time.monotonic() + max(seconds, 1.0)

    def blocked_for(self, address: str) -> float:
        until = self.blocked.get(address)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            with self.lock:
                self.blocked.pop(address, None)
            return 0.0
        return left

    def clear(self) -> None:
        with self.lock:
            self.failures.clear()
            self.blocked.clear()


counters = _Counters()


def key_lookup_throttle_forget() -> None:
    """Forget this process's counts and blocks (tests)."""
    counters.clear()


# Blocks outlive an outage: an address blocked during it stays blocked for its window.
local_state_register("throttle:key-lookups", key_lookup_throttle_forget, redis_twin=False)


def _limit() -> int:
    return int(getattr(settings, "KEY_LOOKUP_FAILURE_LIMIT", 20))


def _window() -> int:
    return int(getattr(settings, "KEY_LOOKUP_FAILURE_WINDOW_SECONDS", 300))


def _conclude(address: str, count: int, seconds_left: float) -> None:
    if count >= _limit():
        counters.block(address, seconds_left)
        if count == _limit():
            logger.warning("blocking %s after %s failed API key lookups", address, count)


def failure_record(address: str) -> None:
    if not address or _limit() <= 0:
        return

    def in_redis() -> tuple:
        from common.redis import sync_redis

        return sync_redis().eval(_COUNT_LUA, 1, KEY_PREFIX + address, _window())

    (count, ttl), _local = shared(
        "throttle",
        in_redis,
        lambda: counters.count_locally(address, _window()),
        enforces_limits=False,
    )
    _conclude(address, int(count), float(ttl))


async def afailure_record(address: str) -> None:
    if not address or _limit() <= 0:
        return

    async def in_redis() -> tuple:
        from common.redis import async_redis

        return await async_redis().eval(_COUNT_LUA, 1, KEY_PREFIX + address, _window())

    (count, ttl), _local = await ashared(
        "throttle",
        in_redis,
        lambda: counters.count_locally(address, _window()),
        enforces_limits=False,
    )
    _conclude(address, int(count), float(ttl))


def _carries_key(request) -> bool:
    authorization = request.headers.get("Authorization", "")
    return authorization[:7].lower() == "bearer " or bool(request.headers.get("x-api-key"))


def _refusal(seconds: float) -> JsonResponse:
    wait = max(1, int(seconds + 0.999))
    response = JsonResponse(
        error_body(
            message="Too many requests with an invalid API key from your address. "
            f"Try again in {wait} seconds.",
            code="rate_limit_exceeded",
        ),
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


class KeyLookupThrottleMiddleware:
    """Refuses a blocked address before its key is looked up; counts 401s to keyed
    requests. Async-native on the API path, sync on Django's full stack (``/api/``)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        if not request.path.startswith(GUARDED_PREFIXES):
            return self.get_response(request)
        address = client_address(request)
        seconds = counters.blocked_for(address)
        if seconds:
            return _refusal(seconds)
        response = self.get_response(request)
        if response.status_code == 401 and _carries_key(request):
            failure_record(address)
        return response

    async def __acall__(self, request):
        if not request.path.startswith(GUARDED_PREFIXES):
            return await self.get_response(request)
        address = client_address(request)
        seconds = counters.blocked_for(address)
        if seconds:
            return _refusal(seconds)
        response = await self.get_response(request)
        if response.status_code == 401 and _carries_key(request):
            await afailure_record(address)
        return response
