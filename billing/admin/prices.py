"""Prices per model: edited in dollars per million tokens, stored in micro-dollars."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin

from billing.admin.common import usd_display
from billing.models import Price
from billing.pricing import usd_to_micros
from billing.selectors import price_cache_forget

_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write", "batch_input", "batch_output")


def _dollars(label: str, empty_means: str = "") -> forms.DecimalField:
    """A price in dollars (six decimals: the micro-dollar). Required, unless ``empty_means``
    tells the admin what leaving it empty charges."""
    return forms.DecimalField(
        label=label,
        min_value=0,
        decimal_places=6,
        required=not empty_means,
        help_text=empty_means,
    )


class PriceForm(forms.ModelForm):
    input_usd = _dollars("Input $/Mtok")
    output_usd = _dollars("Output $/Mtok")
    cached_input_usd = _dollars("Cached input $/Mtok", "Empty: cached tokens cost the input price.")
    cache_write_usd = _dollars(
        "Cache write $/Mtok",
        "Input written to the provider's prompt cache (Anthropic's 5-minute cache: "
        "1.25 times the input price). Empty: the input price.",
    )
    batch_input_usd = _dollars(
        "Batch input $/Mtok", "Input in a batch. Empty: half the input price."
    )
    batch_output_usd = _dollars(
        "Batch output $/Mtok", "Output in a batch. Empty: half the output price."
    )
    per_unit_usd = _dollars(
        "$ per unit",
        "For models billed by the unit: per image, per second of audio (transcription), "
        "per character (speech); for a row named tool:<tool> (tool:web_search), per call "
        "of that built-in tool. Empty: not billed per unit.",
    )

    class Meta:
        model = Price
        fields = ["model_pattern", "effective_from", "source"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in _PRICE_FIELDS:
                micros = getattr(self.instance, f"{name}_per_mtok_micros")
                if micros is not None:
                    self.initial[f"{name}_usd"] = Decimal(micros) / 1_000_000
            if self.instance.per_unit_micros is not None:
                self.initial["per_unit_usd"] = Decimal(self.instance.per_unit_micros) / 1_000_000

    def clean(self):
        cleaned = super().clean()
        for name in _PRICE_FIELDS:
            value = cleaned.get(f"{name}_usd")
            setattr(
                self.instance,
                f"{name}_per_mtok_micros",
                None if value is None else usd_to_micros(value),
            )
        per_unit = cleaned.get("per_unit_usd")
        self.instance.per_unit_micros = None if per_unit is None else usd_to_micros(per_unit)
        cached = self.instance.cached_input_per_mtok_micros
        if cached is not None and cached > (self.instance.input_per_mtok_micros or 0):
            raise forms.ValidationError("The cached-input price cannot exceed the input price.")
        return cleaned


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """Platform-wide list prices. To change a price, add a row with a later date."""

    form = PriceForm
    list_display = (
        "model_pattern",
        "effective_from",
        "input",
        "cached_input",
        "cache_write",
        "output",
        "per_unit",
        "source",
    )
    search_fields = ("model_pattern", "source")
    list_filter = ("effective_from",)
    ordering = ("model_pattern", "-effective_from")

    @admin.display(description="Input $/Mtok")
    def input(self, obj):
        return usd_display(obj.input_per_mtok_micros)

    @admin.display(description="Cached $/Mtok")
    def cached_input(self, obj):
        return usd_display(obj.cached_input_per_mtok_micros)

    @admin.display(description="Cache write $/Mtok")
    def cache_write(self, obj):
        return usd_display(obj.cache_write_per_mtok_micros)

    @admin.display(description="Output $/Mtok")
    def output(self, obj):
        return usd_display(obj.output_per_mtok_micros)

    @admin.display(description="$ per unit")
    def per_unit(self, obj):
        return usd_display(obj.per_unit_micros)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        price_cache_forget()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        price_cache_forget()
