"""Cache-write prices for Anthropic's models, and rows for models the first seed lacked.

Anthropic bills input written to its prompt cache above the input price (1.25 times for
the 5-minute cache the proxy asks for) and reads at a tenth of it; OpenAI's models before
GPT-5.6 bill cached reads at a discount and writes as ordinary input, which an empty
cache-write price means. Figures are the list prices per million tokens on Anthropic's
pricing page (platform.claude.com/docs/en/about-claude/pricing, "Model pricing") and
OpenAI's (developers.openai.com/api/docs/pricing) as read on 2026-12-02.

The new rows start on the first seed's date so every recorded event finds a price; a
more specific pattern ("claude-opus-4-5*") beats the older glob ("claude-opus-4*") that
priced those models at the Opus 4 rate.
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations

AS_OF = "2026-12-02"
SINCE = datetime(2023, 1, 1, tzinfo=UTC)
FIRST_SEED_ANTHROPIC = "Anthropic list price as of 2025-08-15 (anthropic.com/pricing)"
ANTHROPIC = (
    f"Anthropic list price as of {AS_OF} "
    "(platform.claude.com/docs/en/about-claude/pricing, Model pricing)"
)
OPENAI = f"OpenAI list price as of {AS_OF} (developers.openai.com/api/docs/pricing)"

# (pattern, input, cached input (cache hits), 5-minute cache write or None, output),
# dollars per million tokens.
PRICES = [
    ("claude-opus-4-5*", "5.00", "0.50", "6.25", "25.00", ANTHROPIC),
    ("claude-opus-4-6*", "5.00", "0.50", "6.25", "25.00", ANTHROPIC),
    ("claude-opus-4-7*", "5.00", "0.50", "6.25", "25.00", ANTHROPIC),
    ("claude-opus-4-8*", "5.00", "0.50", "6.25", "25.00", ANTHROPIC),
    # Exact names and dated snapshots only: "claude-opus-5*" would also catch a later
    # "claude-opus-5-5", which is priced differently.
    ("claude-opus-5", "5.00", "0.50", "6.25", "25.00", ANTHROPIC),
    ("claude-opus-5-20*", "5.00", "0.50", "6.25", "25.00", ANTHROPIC),
    ("claude-sonnet-5", "2.00", "0.20", "2.50", "10.00", ANTHROPIC),
    ("claude-sonnet-5-20*", "2.00", "0.20", "2.50", "10.00", ANTHROPIC),
    ("claude-haiku-4-5*", "1.00", "0.10", "1.25", "5.00", ANTHROPIC),
    ("gpt-5.1", "1.25", "0.125", None, "10.00", OPENAI),
    ("gpt-5.1-20*", "1.25", "0.125", None, "10.00", OPENAI),
]

# The first seed's Anthropic rows (input price -> 5-minute cache-write price).
CACHE_WRITES = {
    "claude-opus-4*": "18.75",
    "claude-sonnet-4*": "3.75",
    "claude-3-7-sonnet*": "3.75",
    "claude-3-5-sonnet*": "3.75",
    "claude-3-5-haiku*": "1.00",
    "claude-3-opus*": "18.75",
    "claude-3-haiku*": "0.30",
}


def _micros(usd: str | None) -> int | None:
    return None if usd is None else int(Decimal(usd) * 1_000_000)


def seed(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    for pattern, write in CACHE_WRITES.items():
        Price.objects.filter(model_pattern=pattern, source=FIRST_SEED_ANTHROPIC).update(
            cache_write_per_mtok_micros=_micros(write)
        )
    for pattern, inp, cached, write, out, source in PRICES:
        Price.objects.get_or_create(
            model_pattern=pattern,
            effective_from=SINCE,
            defaults={
                "input_per_mtok_micros": _micros(inp),
                "cached_input_per_mtok_micros": _micros(cached),
                "cache_write_per_mtok_micros": _micros(write),
                "output_per_mtok_micros": _micros(out),
                "source": source,
            },
        )


def unseed(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    Price.objects.filter(source__in=[ANTHROPIC, OPENAI]).delete()
    Price.objects.filter(source=FIRST_SEED_ANTHROPIC).update(cache_write_per_mtok_micros=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_prompt_cache_reads_writes_and_savings")]

    operations = [migrations.RunPython(seed, unseed)]
