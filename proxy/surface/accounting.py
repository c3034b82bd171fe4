"""What the surface endpoints add to a usage event: per-unit counts and the batch flag.

Pure, no imports from the gateway: the gateway reads these from the usage dict a call
hands to ``finish``. Chat's usage carries neither key, so nothing changes for it.
"""

from __future__ import annotations

UNITS_KEY = "units"  # images generated, seconds of audio, characters spoken
BATCH_KEY = "batch"  # the usage of a batch's results, priced at the batch rates


def surface_units(usage: dict | None) -> tuple[int, bool]:
    """``(units, batch)`` from a usage dict; an untrustworthy count is none."""
    if not isinstance(usage, dict):
        return 0, False
    units = usage.get(UNITS_KEY)
    if isinstance(units, bool) or not isinstance(units, (int, float)) or units < 0:
        units = 0
    return int(units), usage.get(BATCH_KEY) is True


def surface_usage(
    *, prompt_tokens: int = 0, completion_tokens: int = 0, units: int = 0, batch: bool = False
) -> dict:
    """A usage dict in OpenAI's chat shape with the surface's own keys beside it."""
    usage: dict = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    if units:
        usage[UNITS_KEY] = units
    if batch:
        usage[BATCH_KEY] = True
    return usage
