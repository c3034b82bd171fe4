"""The proxy's Prometheus metrics. Every name starts with ``synthlang_``.

Label values come from bounded sets only: a series per value a client may choose (5,000
invented model names made 10,000 series) would exhaust Prometheus and this process, and
show one tenant's model names to everyone who reads the metrics. A model label is kept
when it names a route or a priced model (``known_models``), else it reads ``other``; an
endpoint label is one of ``ENDPOINTS``; a status one of the HTTP codes; an organization
label is a slug that ``METRICS_ORGANIZATIONS`` lists, or, without that list, one of the
first ``METRICS_ORGANIZATIONS_MAX`` organizations this process saw, else ``other``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

OTHER = "other"
# The proxy's endpoints (DESIGN.md's routes); any other value is counted as "other".
ENDPOINTS = frozenset(
    {
        "chat.completions",
        "completions",
        "embeddings",
        "responses",
        "messages",
        "messages.count_tokens",
        "moderations",
        "images",
        "images.generations",
        "audio",
        "audio.speech",
        "audio.transcriptions",
        "audio.translations",
        "files",
        "batches",
        "synthlang",
    }
)
KNOWN_MODELS_SECONDS = 60.0
_GLOB_CHARS = frozenset("*?[]")


class _KnownModels:
    """The model names a label may carry: every enabled route's public name, every
    literal (non-glob) name in the price table and the default model. Reloaded in the
    background after ``KNOWN_MODELS_SECONDS``, so a request never waits for it."""

    def __init__(self) -> None:
        self.names: frozenset[str] = frozenset()
        self.expires_at = 0.0
        self._lock = threading.Lock()
        self._loading = False
        self._task: asyncio.Future | None = None

    def refresh(self) -> frozenset[str]:
        from billing.models import Price
        from proxy.models import ModelRoute

        names = set(ModelRoute.objects.filter(enabled=True).values_list("public_name", flat=True))
        names.update(
            pattern
            for pattern in Price.objects.values_list("model_pattern", flat=True).distinct()
            if not _GLOB_CHARS & set(pattern)
        )
        names.add(settings.DEFAULT_MODEL)
        self.names = frozenset(names)
        self.expires_at = time.monotonic() + KNOWN_MODELS_SECONDS
        return self.names

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:
            # No database for a moment: keep the old names; the labels say "other".
            logger.warning("could not load the known model names for metrics", exc_info=True)
            self.expires_at = time.monotonic() + KNOWN_MODELS_SECONDS / 4
        finally:
            self._loading = False

    def ensure_fresh(self) -> None:
        if time.monotonic() < self.expires_at:
            return
        with self._lock:
            if self._loading:
                return
            self._loading = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._refresh_quietly()  # no event loop here: a thread may use the database
            return
        from common.db import run_in_db_thread

        self._task = asyncio.ensure_future(run_in_db_thread(self._refresh_quietly))

    def forget(self) -> None:
        self.names = frozenset()
        self.expires_at = 0.0


known_models = _KnownModels()


def model_label(model) -> str:
    if not model:
        return ""  # refused before the model could be trusted (bad key, bad body)
    known_models.ensure_fresh()
    return model if model in known_models.names else OTHER


_labelled_organizations: set[str] = set()
_organizations_lock = threading.Lock()


def organization_label(slug) -> str:
    if not slug:
        return ""
    chosen = settings.METRICS_ORGANIZATIONS
    if chosen:
        return slug if slug in chosen else OTHER
    if slug in _labelled_organizations:
        return slug
    with _organizations_lock:
        if len(_labelled_organizations) < settings.METRICS_ORGANIZATIONS_MAX:
            _labelled_organizations.add(slug)
            return slug
    return OTHER


def organization_labels_forget() -> None:
    with _organizations_lock:
        _labelled_organizations.clear()


def endpoint_label(endpoint) -> str:
    return endpoint if endpoint in ENDPOINTS or endpoint == "" else OTHER


def status_label(status) -> str:
    text = str(status)
    return text if text.isdigit() and (text == "0" or 100 <= int(text) <= 599) else OTHER


class _Bounded:
    """A metric whose ``labels()`` maps each bounded label through its function.

    The labelled children are kept here by their (bounded) values: prometheus_client's own
    ``labels()`` validates the names, converts each value and takes a lock on every call,
    some ten Python calls that a chat request paid nine times over. The children are the
    metric's own, so what is exported does not change; none is ever removed from the
    metric (nothing calls ``remove()`` or ``clear()``), so none kept here goes stale.
    """

    def __init__(self, metric, **bounds):
        self._metric = metric
        self._bounds = bounds
        self._children: dict[tuple, object] = {}

    def labels(self, **values):
        for name, bound in self._bounds.items():
            if name in values:
                values[name] = bound(values[name])
        # Sorted by label name: the same child whatever order the caller named them in.
        key = tuple(sorted(values.items()))
        child = self._children.get(key)
        if child is None:
            # A race here makes the same child twice over: prometheus_client returns the
            # one it has.
            child = self._children[key] = self._metric.labels(**values)
        return child

    def __getattr__(self, name):
        return getattr(self._metric, name)


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

REQUESTS = _Bounded(
    Counter(
        "synthlang_requests_total",
        "Proxy requests by endpoint, model and HTTP status.",
        ["endpoint", "model", "status"],
    ),
    endpoint=endpoint_label,
    model=model_label,
    status=status_label,
)
TOKENS = _Bounded(
    Counter(
        "synthlang_tokens_total",
        "Tokens by direction (prompt, completion) and model.",
        ["direction", "model"],
    ),
    model=model_label,
)
UPSTREAM_LATENCY = _Bounded(
    Histogram(
        "synthlang_upstream_latency_seconds",
        "Time spent waiting for the upstream provider.",
        ["provider"],
        buckets=LATENCY_BUCKETS,
    )
)
PROXY_OVERHEAD = _Bounded(
    Histogram(
        "synthlang_proxy_overhead_seconds",
        "Time spent in the proxy itself, upstream excluded.",
        ["endpoint"],
        buckets=OVERHEAD_BUCKETS,
    ),
    endpoint=endpoint_label,
)
UPSTREAM_ERRORS = _Bounded(
    Counter(
        "synthlang_upstream_errors_total",
        "Failed upstream attempts by provider and status.",
        ["provider", "status"],
    ),
    status=status_label,
)
FALLBACKS = _Bounded(
    Counter(
        "synthlang_fallbacks_total",
        "Requests served by a deployment other than the first tried.",
        ["model"],
    ),
    model=model_label,
)
RATE_LIMITED = Counter(
    "synthlang_rate_limited_total",
    "Requests refused by a rate limit.",
    ["scope", "kind"],
)
STREAMS_DISCONNECTED = Counter(
    "synthlang_streams_client_disconnected_total",
    "Streams the client abandoned mid-way.",
)
COMPRESSION_TOKENS_SAVED = _Bounded(
    Counter(
        "synthlang_compression_tokens_saved_total",
        "Prompt tokens removed by compression.",
        ["level"],
    )
)
COMPRESSION_SKIPPED = Counter(
    "synthlang_compression_skipped_large_total",
    "Requests sent uncompressed because their prompt exceeds LARGE_PROMPT_CHARS.",
)
CACHE_LOOKUPS = _Bounded(
    Counter(
        "synthlang_cache_lookups_total",
        "Cache lookups by result (hit, miss) and tier.",
        ["result", "tier"],
    )
)
CACHE_EVICTIONS = Counter(
    "synthlang_cache_evictions_total",
    "Entries evicted from the semantic cache by tier.",
    ["tier"],
)
CACHE_SEMANTIC_UP = Gauge(
    "synthlang_cache_semantic_up",
    "1 while the semantic cache tier's embedder works, 0 after it failed (exact tier only).",
)
CACHE_SEMANTIC_FAILURES = Counter(
    "synthlang_cache_semantic_failures_total",
    "Embeddings the semantic cache tier could not compute (model missing or failing).",
)
CACHE_VERIFIER_CALLS = Counter(
    "synthlang_cache_verifier_calls_total",
    "Borderline semantic candidates sent to the verifier model, by its answer.",
    ["result"],
)
CACHE_NOT_STORED = Counter(
    "synthlang_cache_not_stored_total",
    "Answers the cache declined to keep, by reason.",
    ["reason"],
)
COST = _Bounded(
    Counter(
        "synthlang_cost_micros_total",
        "Cost of proxied requests in micro-dollars (as billed), by organization and model.",
        ["organization", "model"],
    ),
    organization=organization_label,
    model=model_label,
)
ORGANIZATION_TOKENS = _Bounded(
    Counter(
        "synthlang_organization_tokens_total",
        "Tokens by organization and direction (prompt, completion, cached: read from the "
        "provider's prompt cache, part of prompt).",
        ["organization", "direction"],
    ),
    organization=organization_label,
)
TIME_TO_FIRST_TOKEN = _Bounded(
    Histogram(
        "synthlang_time_to_first_token_seconds",
        "Streams: from the request's arrival to its first chunk sent, by endpoint and cache "
        "result.",
        ["endpoint", "cache"],
        buckets=LATENCY_BUCKETS,
    ),
    endpoint=endpoint_label,
)
CACHE_SAVED_MICROS = _Bounded(
    Counter(
        "synthlang_cache_avoided_cost_micros_total",
        "What cache hits would have cost upstream, in micro-dollars, by organization.",
        ["organization"],
    ),
    organization=organization_label,
)
BUDGET_REFUSALS = Counter(
    "synthlang_budget_refusals_total",
    "Requests refused by a budget, by the budget's scope (organization, member, key), or "
    "'unpriced' for a model without a price under a hard budget.",
    ["scope"],
)
