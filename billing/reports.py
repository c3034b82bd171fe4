"""Usage reports over the daily rollups (never the raw events): totals, groupings, CSV.

Every function takes an ``organization_id`` (``None`` = the whole platform, for staff
only) and an inclusive range of UTC days, and returns plain dicts and lists.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from django.db.models import Sum

from accounts.models import ApiKey, Organization, User
from billing.models import ROLLUP_SUMS
from billing.pricing import micros_to_usd
from billing.selectors import rollups_for_org
from common.progress import Progress, silent

GROUPS = ("model", "user", "key", "day")

SUMS = ROLLUP_SUMS  # reports sum the same counters the flush adds up

CSV_COLUMNS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "cost_usd",
    "cache_hits",
    "avoided_cost_usd",
    "tokens_saved",
    "compression_saved_usd",
    "prompt_cache_saved_usd",
    "savings_usd",
    "avg_latency_ms",
)

_GROUP_FIELD = {"model": "model", "user": "user_id", "key": "api_key_id", "day": "day"}


def _rollups(*, organization_id: int | None, start: date, end: date, user_id: int | None = None):
    rows = rollups_for_org(organization_id=organization_id).filter(day__gte=start, day__lte=end)
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    return rows


def finish_row(row: dict) -> dict:
    """Derived figures: dollars as exact strings, averages, the total saving."""
    for name in SUMS:
        row[name] = row.get(name) or 0
    for name in SUMS:
        if name.endswith("_micros"):
            row[name] = int(row[name])
    requests = row["requests"]
    # Three savings that never overlap: a response-cache hit made no upstream call (so
    # neither of the others is counted on it), compression removed tokens before the
    # call, and the provider's prompt cache priced the tokens that were sent.
    row["savings_micros"] = (
        row["avoided_cost_micros"]
        + row["compression_saved_micros"]
        + row["prompt_cache_saved_micros"]
    )
    row["cost_usd"] = micros_to_usd(row["cost_micros"])
    row["avoided_cost_usd"] = micros_to_usd(row["avoided_cost_micros"])
    row["compression_saved_usd"] = micros_to_usd(row["compression_saved_micros"])
    row["prompt_cache_saved_usd"] = micros_to_usd(row["prompt_cache_saved_micros"])
    row["savings_usd"] = micros_to_usd(row["savings_micros"])
    row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"]
    row["prompt_cache_read_rate"] = (
        round(row["cached_tokens"] / row["prompt_tokens"], 4) if row["prompt_tokens"] else 0.0
    )
    row["cache_hit_rate"] = round(row["cache_hits"] / requests, 4) if requests else 0.0
    row["error_rate"] = round(row["errors"] / requests, 4) if requests else 0.0
    row["avg_latency_ms"] = round(row["latency_ms_sum"] / requests, 2) if requests else 0.0
    row["avg_overhead_ms"] = round(row["overhead_ms_sum"] / requests, 2) if requests else 0.0
    for name in ("latency_ms_sum", "upstream_ms_sum", "overhead_ms_sum"):
        row.pop(name, None)
    return row


def usage_totals(
    *, organization_id: int | None, start: date, end: date, user_id: int | None = None
) -> dict:
    rows = _rollups(organization_id=organization_id, start=start, end=end, user_id=user_id)
    return finish_row(rows.aggregate(**{name: Sum(name) for name in SUMS}))


def _labels(group_by: str, values) -> dict:
    ids = [value for value in values if value]
    if group_by == "user":
        names = dict(User.objects.filter(pk__in=ids).values_list("pk", "username"))
        return {
            value: names.get(value, f"user #{value} (deleted)") if value else "-"
            for value in values
        }
    if group_by == "key":
        labels = {
            key.pk: f"{key.name or 'key'} ({key.masked})"
            for key in ApiKey.objects.filter(pk__in=ids).only("pk", "name", "prefix", "last_four")
        }
        return {
            value: labels.get(value, f"key #{value} (deleted)") if value else "-"
            for value in values
        }
    return {value: str(value) for value in values}


def usage_grouped(
    *,
    organization_id: int | None,
    start: date,
    end: date,
    group_by: str,
    user_id: int | None = None,
) -> list[dict]:
    """One row per model, member, key or day. Days without usage are included (charts)."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    field = _GROUP_FIELD[group_by]
    rows = (
        _rollups(organization_id=organization_id, start=start, end=end, user_id=user_id)
        .values(field)
        .annotate(**{name: Sum(name) for name in SUMS})
        .order_by(field)
    )
    by_value = {row.pop(field): row for row in rows}
    if group_by == "day":
        days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
        by_value = {day: by_value.get(day, {}) for day in days}
    labels = _labels(group_by, list(by_value))
    result = []
    for value, row in by_value.items():
        row = finish_row(dict(row))
        row["key"] = value.isoformat() if isinstance(value, date) else value
        row["label"] = labels[value]
        result.append(row)
    if group_by != "day":
        result.sort(key=lambda row: (-row["cost_micros"], -row["requests"], str(row["label"])))
    return result


def rows_csv(rows: list[dict], *, group_by: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([group_by, *CSV_COLUMNS])
    for row in rows:
        writer.writerow([row["label"], *(row[name] for name in CSV_COLUMNS)])
    return out.getvalue()


# --- The monthly report ---------------------------------------------------------------------


def month_bounds(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def month_report(*, organization_id: int, month: date, progress: Progress = silent) -> dict:
    start, end = month_bounds(month)
    organization = Organization.objects.get(pk=organization_id)
    with progress(f"{organization.slug} {start:%Y-%m}", total=len(GROUPS) + 2) as bar:
        summary = usage_totals(organization_id=organization_id, start=start, end=end)
        summary.update({"organization": organization.slug, "month": f"{start:%Y-%m}"})
        report = {"summary": summary}
        bar.update(1)
        for group_by in GROUPS:
            report[f"by_{group_by}"] = usage_grouped(
                organization_id=organization_id, start=start, end=end, group_by=group_by
            )
            bar.update(1)
        report["lines"] = month_lines(organization_id=organization_id, start=start, end=end)
        bar.update(1)
    return report


def month_lines(*, organization_id: int, start: date, end: date) -> list[dict]:
    """The month's rollups line by line: day, member, key, model."""
    rows = list(
        _rollups(organization_id=organization_id, start=start, end=end)
        .order_by("day", "user_id", "api_key_id", "model")
        .values("day", "user_id", "api_key_id", "model", *SUMS)
    )
    users = _labels("user", list({row["user_id"] for row in rows}))
    keys = _labels("key", list({row["api_key_id"] for row in rows}))
    lines = []
    for row in rows:
        line = finish_row(dict(row))
        line["day"] = row["day"].isoformat()
        line["user"] = users[row["user_id"]]
        line["api_key"] = keys[row["api_key_id"]]
        lines.append(line)
    return lines


def month_report_csv(report: dict) -> str:
    """Line items (day, member, key, model) and a closing total row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "user", "api_key", "model", *CSV_COLUMNS])
    for line in report["lines"]:
        writer.writerow(
            [line["day"], line["user"], line["api_key"], line["model"]]
            + [line[name] for name in CSV_COLUMNS]
        )
    summary = report["summary"]
    writer.writerow(["TOTAL", "", "", ""] + [summary[name] for name in CSV_COLUMNS])
    return out.getvalue()
