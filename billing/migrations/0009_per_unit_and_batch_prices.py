"""Per-unit and batch prices; usage events count units and mark batch results.

Seeds OpenAI's list prices for the models billed by the unit (as of 2025-08-15): images
per image at the standard 1024x1024 size, whisper per second of audio, tts per character.
Moderation models are free; they get a zero price so a budget does not refuse them as
unpriced.
"""

from datetime import UTC, datetime

from django.db import migrations, models

SOURCE = "OpenAI list price as of 2025-08-15 (openai.com/api/pricing), per unit"
SINCE = datetime(2023, 1, 1, tzinfo=UTC)
# (pattern, micro-dollars per unit: image, second of audio, character)
UNIT_PRICES = [
    ("dall-e-3", 40_000),
    ("dall-e-2", 20_000),
    ("whisper-1", 100),  # $0.006 a minute
    ("tts-1", 15),  # $15 per million characters
    ("tts-1-hd", 30),
    ("omni-moderation-*", 0),
    ("text-moderation-*", 0),
]


def seed(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    for pattern, per_unit in UNIT_PRICES:
        Price.objects.get_or_create(
            model_pattern=pattern,
            effective_from=SINCE,
            defaults={
                "input_per_mtok_micros": 0,
                "output_per_mtok_micros": 0,
                "per_unit_micros": per_unit or None,
                "source": SOURCE,
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("billing", "Price").objects.filter(source=SOURCE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0008_usage_endpoints_responses_messages"),
    ]

    operations = [
        migrations.AddField(
            model_name="price",
            name="batch_input_per_mtok_micros",
            field=models.PositiveBigIntegerField(
                blank=True,
                help_text="Micro-dollars per million input tokens in a batch; empty = half the input price.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="price",
            name="batch_output_per_mtok_micros",
            field=models.PositiveBigIntegerField(
                blank=True,
                help_text="Micro-dollars per million output tokens in a batch; empty = half the output price.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="price",
            name="per_unit_micros",
            field=models.PositiveBigIntegerField(
                blank=True,
                help_text="Micro-dollars per unit, for models billed by the unit rather than (or beside) the token: per image (image models), per second of audio (transcription), per character of input (speech); empty = not billed per unit.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="batch",
            field=models.BooleanField(
                default=False, help_text="Results of a batch, priced at the batch rates."
            ),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="units",
            field=models.PositiveBigIntegerField(
                default=0,
                help_text="What a per-unit price applies to: images generated, seconds of audio transcribed, characters spoken.",
            ),
        ),
        migrations.AlterField(
            model_name="usageevent",
            name="endpoint",
            field=models.CharField(
                choices=[
                    ("chat.completions", "Chat completions"),
                    ("completions", "Completions"),
                    ("embeddings", "Embeddings"),
                    ("responses", "Responses"),
                    ("messages", "Messages"),
                    ("moderations", "Moderations"),
                    ("images.generations", "Image generations"),
                    ("audio.speech", "Speech"),
                    ("audio.transcriptions", "Transcriptions"),
                    ("audio.translations", "Translations"),
                    ("batches", "Batches"),
                ],
                max_length=32,
            ),
        ),
        migrations.RunPython(seed, unseed),
    ]
