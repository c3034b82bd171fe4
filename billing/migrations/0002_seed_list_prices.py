"""Seed the price table with public list prices.

These are the providers' published list prices per million tokens (input, cached input,
output) as of 2025-08-15, entered as integer micro-dollars. They are a starting point,
not a contract: operators edit them in the admin (add a row with a later
``effective_from`` to change a price without rewriting past costs). Negotiated or
regional prices, batch discounts and Anthropic's cache-write surcharge are not modelled.
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations

AS_OF = "2025-08-15"
# Early enough that every event the proxy has recorded finds a price.
SINCE = datetime(2023, 1, 1, tzinfo=UTC)

OPENAI = f"OpenAI list price as of {AS_OF} (openai.com/api/pricing)"
ANTHROPIC = f"Anthropic list price as of {AS_OF} (anthropic.com/pricing)"

# (pattern, input, cached input or None, output) in dollars per million tokens.
PRICES = [
    # OpenAI
    ("gpt-5", "1.25", "0.125", "10.00", OPENAI),
    ("gpt-5-20*", "1.25", "0.125", "10.00", OPENAI),
    ("gpt-5-mini*", "0.25", "0.025", "2.00", OPENAI),
    ("gpt-5-nano*", "0.05", "0.005", "0.40", OPENAI),
    ("gpt-4.1", "2.00", "0.50", "8.00", OPENAI),
    ("gpt-4.1-20*", "2.00", "0.50", "8.00", OPENAI),
    ("gpt-4.1-mini*", "0.40", "0.10", "1.60", OPENAI),
    ("gpt-4.1-nano*", "0.10", "0.025", "0.40", OPENAI),
    ("gpt-4o", "2.50", "1.25", "10.00", OPENAI),
    ("gpt-4o-20*", "2.50", "1.25", "10.00", OPENAI),
    ("gpt-4o-2024-05-13", "5.00", None, "15.00", OPENAI),
    ("chatgpt-4o-latest", "5.00", None, "15.00", OPENAI),
    ("gpt-4o-mini*", "0.15", "0.075", "0.60", OPENAI),
    ("o1", "15.00", "7.50", "60.00", OPENAI),
    ("o1-20*", "15.00", "7.50", "60.00", OPENAI),
    ("o1-mini*", "1.10", "0.55", "4.40", OPENAI),
    ("o3-mini*", "1.10", "0.55", "4.40", OPENAI),
    ("o4-mini*", "1.10", "0.275", "4.40", OPENAI),
    ("gpt-4-turbo*", "10.00", None, "30.00", OPENAI),
    ("gpt-4", "30.00", None, "60.00", OPENAI),
    ("gpt-4-0613", "30.00", None, "60.00", OPENAI),
    ("gpt-3.5-turbo*", "0.50", None, "1.50", OPENAI),
    ("text-embedding-3-small", "0.02", None, "0", OPENAI),
    ("text-embedding-3-large", "0.13", None, "0", OPENAI),
    ("text-embedding-ada-002", "0.10", None, "0", OPENAI),
    # Anthropic (cached input = cache reads, a tenth of the input price)
    ("claude-opus-4*", "15.00", "1.50", "75.00", ANTHROPIC),
    ("claude-sonnet-4*", "3.00", "0.30", "15.00", ANTHROPIC),
    ("claude-3-7-sonnet*", "3.00", "0.30", "15.00", ANTHROPIC),
    ("claude-3-5-sonnet*", "3.00", "0.30", "15.00", ANTHROPIC),
    ("claude-3-5-haiku*", "0.80", "0.08", "4.00", ANTHROPIC),
    ("claude-3-opus*", "15.00", "1.50", "75.00", ANTHROPIC),
    ("claude-3-haiku*", "0.25", "0.03", "1.25", ANTHROPIC),
]

# o3 launched at one price and was cut on 2025-06-10: two rows, so requests made before
# the cut keep their original cost.
DATED = [
    ("o3", SINCE, "10.00", "2.50", "40.00", OPENAI),
    ("o3", datetime(2025, 6, 10, tzinfo=UTC), "2.00", "0.50", "8.00", OPENAI),
    ("o3-20*", SINCE, "10.00", "2.50", "40.00", OPENAI),
    ("o3-20*", datetime(2025, 6, 10, tzinfo=UTC), "2.00", "0.50", "8.00", OPENAI),
]


def _micros(usd: str | None) -> int | None:
    return None if usd is None else int(Decimal(usd) * 1_000_000)


def seed(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    rows = [(pattern, SINCE, inp, cached, out, src) for pattern, inp, cached, out, src in PRICES]
    rows += DATED
    for pattern, effective_from, inp, cached, out, src in rows:
        Price.objects.get_or_create(
            model_pattern=pattern,
            effective_from=effective_from,
            defaults={
                "input_per_mtok_micros": _micros(inp),
                "cached_input_per_mtok_micros": _micros(cached),
                "output_per_mtok_micros": _micros(out),
                "source": src,
            },
        )


def unseed(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    Price.objects.filter(source__in=[OPENAI, ANTHROPIC]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
