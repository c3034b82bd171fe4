"""Cost arithmetic in integer micro-dollars. Pure: no ORM, no settings, no I/O.

Prices are quoted per million tokens (Mtok), as every provider publishes them, and
stored as integer micro-dollars per Mtok: $2.50/Mtok is ``2_500_000``. A request's
cost is then ``tokens * price / 1_000_000`` micro-dollars, computed on integers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

TOKENS_PER_MTOK = 1_000_000
MICROS_PER_USD = 1_000_000

# Completion tokens reserved for a request that names no max_tokens: large enough to
# cover most answers, small enough not to block a budget that still has room.
DEFAULT_COMPLETION_ALLOWANCE = 1024


@dataclass(frozen=True)
class Price:
    """Input, output and cached-input price per million tokens, in micro-dollars."""

    input_per_mtok_micros: int
    output_per_mtok_micros: int
    cached_input_per_mtok_micros: int | None = None
    # True when no price row matched and the unknown-model rule supplied this price.
    unknown: bool = False

    def __post_init__(self) -> None:
        cached = self.cached_input_per_mtok_micros
        for name, value in (
            ("input_per_mtok_micros", self.input_per_mtok_micros),
            ("output_per_mtok_micros", self.output_per_mtok_micros),
            ("cached_input_per_mtok_micros", cached),
        ):
            if value is None and name == "cached_input_per_mtok_micros":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        # A cache read that cost more than a fresh read would make caching a loss and
        # break the guarantee that cached tokens never raise a bill.
        if cached is not None and cached > self.input_per_mtok_micros:
            raise ValueError("the cached-input price cannot exceed the input price")

    @property
    def cached_rate(self) -> int:
        """Providers without a cache discount bill cached tokens at the input price."""
        if self.cached_input_per_mtok_micros is None:
            return self.input_per_mtok_micros
        return self.cached_input_per_mtok_micros


ZERO_PRICE = Price(0, 0, 0)


def usd_to_micros(usd) -> int:
    """Dollars (a Decimal, an int or a decimal string) to integer micro-dollars.

    Floats are refused: 0.1 has no exact binary form and money must not drift.
    """
    if isinstance(usd, float):
        raise TypeError("pass dollars as a Decimal or a string, never a float")
    return int((Decimal(str(usd)) * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def micros_to_usd(micros: int) -> str:
    """Micro-dollars as an exact decimal string with six places (for display and CSV)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(int(micros)), MICROS_PER_USD)
    return f"{sign}{whole}.{frac:06d}"


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def cost_micros(
    *, price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> int:
    """What one request costs, in whole micro-dollars.

    ``cached_tokens`` are the part of ``prompt_tokens`` the upstream served from its
    prompt cache (OpenAI's ``prompt_tokens_details.cached_tokens``), so they are billed
    at the cached rate instead of the input rate, never in addition to it.
    """
    prompt_tokens = max(int(prompt_tokens), 0)
    completion_tokens = max(int(completion_tokens), 0)
    # An upstream that reports more cached than prompt tokens cannot make us bill less
    # than zero fresh tokens.
    cached_tokens = min(max(int(cached_tokens), 0), prompt_tokens)
    fresh_tokens = prompt_tokens - cached_tokens
    numerator = (
        fresh_tokens * price.input_per_mtok_micros
        + cached_tokens * price.cached_rate
        + completion_tokens * price.output_per_mtok_micros
    )
    # Round up to the next whole micro-dollar, once per request and never per token
    # class: the bill is never below the exact cost, the error is under one
    # micro-dollar per request ($1 per million requests), and a budget counter built
    # from these integers can only err on the safe side.
    return _ceil_div(numerator, TOKENS_PER_MTOK)


def tokens_value_micros(*, price: Price, input_tokens: int) -> int:
    """The value of input tokens that were never sent (compression savings).

    Rounded down, the opposite of costs: a saving we claim must never be overstated.
    """
    return max(int(input_tokens), 0) * price.input_per_mtok_micros // TOKENS_PER_MTOK


def estimate_cost_micros(
    *,
    price: Price,
    prompt_tokens: int,
    max_tokens: int | None = None,
    default_completion_tokens: int = DEFAULT_COMPLETION_ALLOWANCE,
) -> int:
    """An upper estimate for a budget reservation, before the upstream answers.

    Every prompt token at the full input rate (the cache discount is not known yet) and
    the completion at ``max_tokens`` when the client set it, else a default allowance.
    """
    completion = max_tokens if max_tokens is not None and max_tokens >= 0 else None
    if completion is None:
        completion = default_completion_tokens
    return cost_micros(
        price=price, prompt_tokens=prompt_tokens, completion_tokens=completion, cached_tokens=0
    )
