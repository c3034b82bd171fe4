"""The proxy's Prometheus metrics. Every name starts with ``synthlang_``."""

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

REQUESTS = Counter(
    "synthlang_requests_total",
    "Proxy requests by endpoint, model and HTTP status.",
    ["endpoint", "model", "status"],
)
TOKENS = Counter(
    "synthlang_tokens_total",
    "Tokens by direction (prompt, completion) and model.",
    ["direction", "model"],
)
UPSTREAM_LATENCY = Histogram(
    "synthlang_upstream_latency_seconds",
    "Time spent waiting for the upstream provider.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
PROXY_OVERHEAD = Histogram(
    "synthlang_proxy_overhead_seconds",
    "Time spent in the proxy itself, upstream excluded.",
    ["endpoint"],
    buckets=OVERHEAD_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "synthlang_upstream_errors_total",
    "Failed upstream attempts by provider and status.",
    ["provider", "status"],
)
FALLBACKS = Counter(
    "synthlang_fallbacks_total",
    "Requests served by a deployment other than the first tried.",
    ["model"],
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
COMPRESSION_TOKENS_SAVED = Counter(
    "synthlang_compression_tokens_saved_total",
    "Prompt tokens removed by compression.",
    ["level"],
)
CACHE_LOOKUPS = Counter(
    "synthlang_cache_lookups_total",
    "Cache lookups by result (hit, miss) and tier.",
    ["result", "tier"],
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
