"""The management API's wire format for usage."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from rest_framework import serializers

from billing.attribution import EVENT_GROUPS
from billing.reports import GROUPS

# A report spans at most this many days: a year of daily rows is still a small answer.
MAX_RANGE_DAYS = 366


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First UTC day (default: 29 days ago).")
    end = serializers.DateField(
        required=False, help_text="Last UTC day, inclusive (default: today)."
    )
    group_by = serializers.ChoiceField(
        choices=(*GROUPS, *EVENT_GROUPS),
        default="day",
        help_text="end_user: OpenAI's `user` field; tag: the x-synthlang-tags header (a "
        "request with several tags counts in each).",
    )
    end_user = serializers.CharField(
        required=False, max_length=256, help_text="Only requests of this end user."
    )
    tag = serializers.RegexField(
        r"^[A-Za-z0-9_.:/@=+\-]{1,64}$", required=False, help_text="Only requests with this tag."
    )

    def validate(self, attrs):
        today = datetime.now(UTC).date()
        end = attrs.get("end") or today
        # Day one of year one has no 29 days before it (OverflowError): the range starts there.
        start = attrs.get("start") or max(end, date.min + timedelta(days=29)) - timedelta(days=29)
        if start > end:
            raise serializers.ValidationError({"start": "start must not be after end."})
        if (end - start).days >= MAX_RANGE_DAYS:
            raise serializers.ValidationError({"start": f"at most {MAX_RANGE_DAYS} days at once."})
        return {**attrs, "start": start, "end": end}


class UsageRowSerializer(serializers.Serializer):
    key = serializers.CharField(allow_null=True)
    label = serializers.CharField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField(help_text="Input tokens read from the prompt cache.")
    cache_write_tokens = serializers.IntegerField(
        help_text="Input tokens written to the provider's prompt cache."
    )
    prompt_cache_read_rate = serializers.FloatField(
        help_text="Share of input tokens read from the provider's prompt cache."
    )
    total_tokens = serializers.IntegerField()
    cost_micros = serializers.IntegerField()
    cost_usd = serializers.CharField()
    cache_hits = serializers.IntegerField()
    cache_hit_rate = serializers.FloatField()
    avoided_cost_micros = serializers.IntegerField()
    tokens_saved = serializers.IntegerField()
    compression_saved_micros = serializers.IntegerField()
    prompt_cache_saved_micros = serializers.IntegerField(
        help_text="Input as if uncached minus input as billed (the provider's prompt cache)."
    )
    savings_micros = serializers.IntegerField()
    savings_usd = serializers.CharField()
    price_unknown_requests = serializers.IntegerField()
    avg_latency_ms = serializers.FloatField()


class UsageTotalsSerializer(UsageRowSerializer):
    key = None
    label = None


class UsageResponseSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    organization = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.CharField()
    totals = UsageTotalsSerializer()
    data = UsageRowSerializer(many=True)
