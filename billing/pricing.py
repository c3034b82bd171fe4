"""Cost arithmetic in integer micro-dollars. Pure: no ORM, no settings, no I/O.

Prices are quoted per million tokens (Mtok), as every provider publishes them, and
stored as integer micro-dollars per Mtok: $2.50/Mtok is ``2_500_000``. A request's
cost is then ``tokens * price / 1_000_000`` micro-dollars, computed on integers only.

Input tokens come in three kinds, each at its own rate: fresh ones at the input price,
those read from the provider's prompt cache at the cached rate (OpenAI's
``cached_tokens``, Anthropic's ``cache_read_input_tokens``), and those written to it at
the cache-write rate (Anthropic's ``cache_creation_input_tokens``, 1.25 times the input
price for its 5-minute cache). ``usage_tokens`` reads them from an upstream's usage.
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
    """Input, output, cached-input and cache-write price per million tokens, in micro-dollars."""

    input_per_mtok_micros: int
    output_per_mtok_micros: int
    cached_input_per_mtok_micros: int | None = None
    cache_write_per_mtok_micros: int | None = None
    # True when no price row matched and the unknown-model rule supplied this price.
    unknown: bool = False
    # Per image, per second of audio, per character spoken: what ``units`` counts.
    per_unit_micros: int | None = None
    batch_input_per_mtok_micros: int | None = None
    batch_output_per_mtok_micros: int | None = None

    def __post_init__(self) -> None:
        for name, value, optional in (
            ("input_per_mtok_micros", self.input_per_mtok_micros, False),
            ("output_per_mtok_micros", self.output_per_mtok_micros, False),
            ("cached_input_per_mtok_micros", self.cached_input_per_mtok_micros, True),
            ("cache_write_per_mtok_micros", self.cache_write_per_mtok_micros, True),
            ("per_unit_micros", self.per_unit_micros, True),
            ("batch_input_per_mtok_micros", self.batch_input_per_mtok_micros, True),
            ("batch_output_per_mtok_micros", self.batch_output_per_mtok_micros, True),
        ):
            if value is None and optional:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        # A cache read that cost more than a fresh read would make caching a loss and
        # break the guarantee that reading the cache never raises a bill.
        cached = self.cached_input_per_mtok_micros
        if cached is not None and cached > self.input_per_mtok_micros:
            raise ValueError("the cached-input price cannot exceed the input price")

    @property
    def cached_rate(self) -> int:
        """Providers without a cache discount bill cached tokens at the input price."""
        if self.cached_input_per_mtok_micros is None:
            return self.input_per_mtok_micros
        return self.cached_input_per_mtok_micros

    @property
    def cache_write_rate(self) -> int:
        """Providers without a write surcharge (OpenAI) bill cache writes as fresh input."""
        if self.cache_write_per_mtok_micros is None:
            return self.input_per_mtok_micros
        return self.cache_write_per_mtok_micros


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


# --- Token counts from an upstream's usage ------------------------------------------------


@dataclass(frozen=True)
class TokenCounts:
    """One request's tokens. Cache reads and writes are parts of ``prompt_tokens``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def fresh_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cache_read_tokens - self.cache_write_tokens


def _count(value) -> int:
    # An upstream's usage is not ours to trust: a count that is no number ("many", None)
    # or a negative one is none, rather than an error that loses the usage event.
    if isinstance(value, bool):
        return 0
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(count, 0)


def token_counts(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> TokenCounts:
    """Counts made consistent: an upstream that reports more cached tokens than prompt
    tokens cannot make us bill fewer than zero fresh ones (reads are kept first)."""
    prompt = _count(prompt_tokens)
    read = min(_count(cache_read_tokens), prompt)
    write = min(_count(cache_write_tokens), prompt - read)
    return TokenCounts(prompt, _count(completion_tokens), read, write)


def usage_tokens(usage: dict | None) -> TokenCounts:
    """The token counts in an upstream's ``usage``, whichever dialect it speaks.

    - OpenAI's: ``prompt_tokens`` counts every input token and
      ``prompt_tokens_details.cached_tokens`` the part read from the cache. Writes, when
      reported (the Anthropic provider passes them on this way, as LiteLLM does), are
      ``cache_creation_input_tokens`` beside them.
    - OpenAI's Responses API: the same with ``input_tokens``, ``output_tokens`` and
      ``input_tokens_details.cached_tokens``.
    - Anthropic's Messages API: ``input_tokens`` counts only the tokens after the last
      cache breakpoint; the total is ``input_tokens + cache_read_input_tokens +
      cache_creation_input_tokens``.
    """
    if not isinstance(usage, dict):
        return TokenCounts()
    if "input_tokens_details" in usage and "prompt_tokens" not in usage:
        details = usage.get("input_tokens_details")
        return token_counts(
            prompt_tokens=usage.get("input_tokens"),
            completion_tokens=usage.get("output_tokens"),
            cache_read_tokens=details.get("cached_tokens") if isinstance(details, dict) else 0,
        )
    if "prompt_tokens" in usage or "input_tokens" not in usage:
        details = usage.get("prompt_tokens_details")
        read = details.get("cached_tokens") if isinstance(details, dict) else 0
        return token_counts(
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            cache_read_tokens=read,
            cache_write_tokens=usage.get("cache_creation_input_tokens"),
        )
    read = _count(usage.get("cache_read_input_tokens"))
    write = _count(usage.get("cache_creation_input_tokens"))
    return token_counts(
        prompt_tokens=_count(usage.get("input_tokens")) + read + write,
        completion_tokens=usage.get("output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


# --- Costs and savings ------------------------------------------------------------------


def _input_numerator(price: Price, tokens: TokenCounts) -> int:
    return (
        tokens.fresh_prompt_tokens * price.input_per_mtok_micros
        + tokens.cache_read_tokens * price.cached_rate
        + tokens.cache_write_tokens * price.cache_write_rate
    )


def tokens_cost_micros(*, price: Price, tokens: TokenCounts) -> int:
    """What one request costs, in whole micro-dollars.

    Rounded up to the next whole micro-dollar, once per request and never per token
    class: the bill is never below the exact cost, the error is under one micro-dollar
    per request ($1 per million requests), and a budget counter built from these
    integers can only err on the safe side.
    """
    numerator = (
        _input_numerator(price, tokens) + tokens.completion_tokens * price.output_per_mtok_micros
    )
    return _ceil_div(numerator, TOKENS_PER_MTOK)


def _half(micros: int) -> int:
    # Rounded up: a discount computed here never bills below the published batch price.
    return _ceil_div(micros, 2)


def batch_rates(price: Price) -> Price:
    """The price of a batch's tokens: the batch prices when set, else half of each rate
    (OpenAI's Batch API discount), cached reads and cache writes halved alike."""
    batch_input = (
        price.batch_input_per_mtok_micros
        if price.batch_input_per_mtok_micros is not None
        else _half(price.input_per_mtok_micros)
    )
    return Price(
        input_per_mtok_micros=batch_input,
        output_per_mtok_micros=(
            price.batch_output_per_mtok_micros
            if price.batch_output_per_mtok_micros is not None
            else _half(price.output_per_mtok_micros)
        ),
        # A cached read never costs more than a fresh one, in a batch as anywhere.
        cached_input_per_mtok_micros=min(_half(price.cached_rate), batch_input),
        cache_write_per_mtok_micros=_half(price.cache_write_rate),
        unknown=price.unknown,
    )


def units_cost_micros(*, price: Price, units: int) -> int:
    """Images, seconds of audio or characters at the model's per-unit price (none: 0)."""
    return max(int(units), 0) * (price.per_unit_micros or 0)


def request_cost_micros(
    *, price: Price, tokens: TokenCounts, units: int = 0, batch: bool = False
) -> int:
    """A request's whole cost: its tokens (at the batch rates for batch results) and its
    units at the per-unit price."""
    token_price = batch_rates(price) if batch else price
    return tokens_cost_micros(price=token_price, tokens=tokens) + units_cost_micros(
        price=price, units=units
    )


def cost_micros(
    *,
    price: Price,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> int:
    """``tokens_cost_micros`` from loose counts: ``cached_tokens`` (cache reads) and
    ``cache_write_tokens`` are parts of ``prompt_tokens``, never in addition to it."""
    return tokens_cost_micros(
        price=price,
        tokens=token_counts(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cache_read_tokens=cached_tokens,
            cache_write_tokens=cache_write_tokens,
        ),
    )


def prompt_cache_saved_micros(*, price: Price, tokens: TokenCounts) -> int:
    """What the provider's prompt cache saved on this request: the input priced as if
    nothing were cached, minus the input as billed.

    Negative on a request that only wrote to the cache (Anthropic charges writes above
    the input price): the net over a conversation is the honest figure. Rounded down
    (towards minus infinity), so a saving is never overstated and a loss never hidden.
    """
    uncached = tokens.prompt_tokens * price.input_per_mtok_micros
    return (uncached - _input_numerator(price, tokens)) // TOKENS_PER_MTOK


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

    Every prompt token at the dearest input rate (what the cache will read or write is
    not known yet, and a write costs more than a fresh token on Anthropic) and the
    completion at ``max_tokens`` when the client set it, else a default allowance.
    """
    completion = max_tokens if max_tokens is not None and max_tokens >= 0 else None
    if completion is None:
        completion = default_completion_tokens
    prompt = max(int(prompt_tokens), 0)
    rate = max(price.input_per_mtok_micros, price.cache_write_rate)
    numerator = prompt * rate + completion * price.output_per_mtok_micros
    return _ceil_div(numerator, TOKENS_PER_MTOK)


# --- Built-in tool calls --------------------------------------------------------------

# A provider's built-in tools (OpenAI's web and file search, Anthropic's web search...)
# are billed per call beside the tokens. A price row named ``tool:<name>`` holds the fee
# per call in ``per_unit_micros``; a tool without a row costs nothing per call.
TOOL_PRICE_PREFIX = "tool:"
MAX_TOOL_NAME = 40


def tool_call_counts(value) -> dict[str, int]:
    """``{tool name: calls}`` from what an adapter or a usage event says, the untrustworthy
    left out (a name that is not a short word, a count that is not a positive integer)."""
    if not isinstance(value, dict):
        return {}
    counts: dict[str, int] = {}
    for name, count in value.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_TOOL_NAME:
            continue
        if not name.replace("_", "").isalnum():
            continue
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            continue
        counts[name.lower()] = counts.get(name.lower(), 0) + count
    return counts


TOOL_CALLS_KEY = "tool_calls"  # beside the tokens in a usage dict an adapter hands over
# Anthropic's usage counts its server tools' requests itself, as <tool>_requests.
_ANTHROPIC_SERVER_TOOLS = "server_tool_use"


def tool_calls_in_usage(usage) -> dict[str, int]:
    """The built-in tool calls a usage dict reports: the proxy's own ``tool_calls`` (the
    Responses pass-through counts the output's tool items) or Anthropic's
    ``server_tool_use`` (``web_search_requests`` is ``web_search``)."""
    if not isinstance(usage, dict):
        return {}
    counts = tool_call_counts(usage.get(TOOL_CALLS_KEY))
    server = usage.get(_ANTHROPIC_SERVER_TOOLS)
    if isinstance(server, dict):
        named = {
            name.removesuffix("_requests"): count
            for name, count in server.items()
            if isinstance(name, str)
        }
        for name, count in tool_call_counts(named).items():
            counts[name] = counts.get(name, 0) + count
    return counts
