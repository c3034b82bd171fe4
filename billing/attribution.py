"""Spend per end user and per tag: the chargeback reports.

The daily rollups have no end-user or tag dimension (either would multiply their rows by
the number of a tenant's end users), so these reports sum the usage events themselves, over
the ``(organization, end_user, created_at)`` and ``(organization, created_at)`` indexes. The
rows have the same figures as the rollup reports (``reports.finish_row``).

A request with several tags counts in each tag's row: the tag rows overlap, and their sum
is not the total (which counts each request once).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Q, QuerySet, Sum

from billing.models import UsageEvent
from billing.reports import finish_row
from billing.selectors import usage_events_for_org

EVENT_GROUPS = ("end_user", "tag")

# The rollup counters, as sums over events.
_EVENT_SUMS = {
    "requests": Count("id"),
    "errors": Count("id", filter=Q(status_code__gte=400)),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "cached_tokens": Sum("cached_tokens"),
    "cache_write_tokens": Sum("cache_write_tokens"),
    "cost_micros": Sum("cost_micros"),
    "cache_hits": Count("id", filter=Q(cache="hit")),
    "avoided_cost_micros": Sum("avoided_cost_micros"),
    "tokens_saved": Sum("tokens_saved"),
    "compression_saved_micros": Sum("compression_saved_micros"),
    "prompt_cache_saved_micros": Sum("prompt_cache_saved_micros"),
    "price_unknown_requests": Count("id", filter=Q(price_unknown=True)),
    "latency_ms_sum": Sum("latency_ms"),
    "upstream_ms_sum": Sum("upstream_ms"),
    "overhead_ms_sum": Sum("overhead_ms"),
}


def tags_stored(tags) -> str:
    """The column's form: ',a,b,' (empty without tags), so ',a,' finds one tag anywhere."""
    return f",{','.join(tags)}," if tags else ""


def tags_read(stored: str) -> list[str]:
    return [tag for tag in (stored or "").split(",") if tag]


def _events(
    *,
    organization_id: int,
    start: date,
    end: date,
    user_id: int | None,
    end_user: str | None,
    tag: str | None,
) -> QuerySet[UsageEvent]:
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    events = usage_events_for_org(organization_id=organization_id).filter(
        created_at__gte=since, created_at__lt=until
    )
    if user_id is not None:
        events = events.filter(user_id=user_id)
    if end_user is not None:
        events = events.filter(end_user=end_user)
    if tag is not None:
        events = events.filter(tags__contains=f",{tag},")
    return events.order_by()


def _add(total: dict, row: dict) -> None:
    for name in _EVENT_SUMS:
        total[name] = (total.get(name) or 0) + (row.get(name) or 0)


def attributed_totals(
    *,
    organization_id: int,
    start: date,
    end: date,
    user_id: int | None = None,
    end_user: str | None = None,
    tag: str | None = None,
) -> dict:
    events = _events(
        organization_id=organization_id,
        start=start,
        end=end,
        user_id=user_id,
        end_user=end_user,
        tag=tag,
    )
    return finish_row(events.aggregate(**_EVENT_SUMS))


def attributed_grouped(
    *,
    organization_id: int,
    start: date,
    end: date,
    group_by: str,
    user_id: int | None = None,
    end_user: str | None = None,
    tag: str | None = None,
) -> list[dict]:
    """One row per end user (``"-"``: requests without one) or per tag, dearest first."""
    if group_by not in EVENT_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(EVENT_GROUPS)}")
    events = _events(
        organization_id=organization_id,
        start=start,
        end=end,
        user_id=user_id,
        end_user=end_user,
        tag=tag,
    )
    field = "end_user" if group_by == "end_user" else "tags"
    groups: dict[str, dict] = {}
    for row in events.values(field).annotate(**_EVENT_SUMS):
        value = row.pop(field)
        # A distinct set of tags is one database group; each of its tags gets its sums.
        for key in (tags_read(value) or [""]) if group_by == "tag" else [value]:
            _add(groups.setdefault(key, {}), row)
    result = []
    for key, sums in groups.items():
        row = finish_row(dict(sums))
        row["key"] = key or None
        row["label"] = key or "-"
        result.append(row)
    result.sort(key=lambda row: (-row["cost_micros"], -row["requests"], str(row["label"])))
    return result
