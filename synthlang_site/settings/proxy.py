"""The proxy: fast paths, the request pipeline's stages, the cache, compression, upstream
calls and their limits."""

from synthlang_site.envconfig import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
)

# The hand-written fast paths (the pipelined Redis client and write batcher, the Daphne and
# Twisted tuning, the API's own ASGI handler); false restores the stock libraries throughout.
SYNTHLANG_FAST_PATHS = env_bool("SYNTHLANG_FAST_PATHS", True)

# The request pipeline's stages (proxy/pipeline, docs/decisions/0027): dotted paths of
# proxy.pipeline.stage.Stage subclasses, run in this order on a request and in reverse on
# its answer. SYNTHLANG_STAGES (comma-separated) replaces the whole list, so keep the
# built-ins (leaving out budget turns budgets off). The prompt library comes first: it
# renders a stored prompt in prepare, before admission, so every later stage (the cache key
# included) sees the rendered request; the tools it attaches are part of what the cache keys
# and the budget estimates.
SYNTHLANG_STAGES = env_list("SYNTHLANG_STAGES") or [  # empty or unset: the built-ins
    "prompts.stage.PromptStage",
    "tools.stage.ToolsStage",
    # Then the guardrails, so every later stage (the cache above all) sees masked text
    # only: docs/decisions/0031.
    "guardrails.stages.RulesStage",
    "guardrails.stages.PIIStage",
    "guardrails.stages.ModerationStage",
    "proxy.stages.cache.ResponseCacheStage",
    "proxy.stages.budget.BudgetStage",
    "proxy.stages.translation.TranslateStage",
    "proxy.stages.compression.CompressionStage",
]

# --- The proxy -----------------------------------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_url("OPENAI_BASE_URL", "https://api.openai.com/v1")
DEFAULT_MODEL = env_str("DEFAULT_MODEL", "gpt-4o") or "gpt-4o"
USE_SYNTHLANG = env_bool("USE_SYNTHLANG", True)
ENABLE_CACHE = env_bool("ENABLE_CACHE", True)
# The cosine a reworded question needs once every check passed; empty: the embedder's own
# bar (docs/decisions/0004). Calibrate another value with `manage.py cache_eval` first.
CACHE_SIMILARITY_THRESHOLD = (
    env_float("CACHE_SIMILARITY_THRESHOLD", 0.0, minimum=0.0, maximum=1.0) or None
)
CACHE_MAX_ITEMS = env_int("CACHE_MAX_ITEMS", 1000, minimum=1)
CACHE_TTL_SECONDS = env_int("CACHE_TTL_SECONDS", 86_400, minimum=1)
# Above this temperature only exact repeats are served from the cache: a request for
# varied answers should not get a neighbour's answer.
CACHE_SEMANTIC_MAX_TEMPERATURE = env_float(
    "CACHE_SEMANTIC_MAX_TEMPERATURE", 1.0, minimum=0.0, maximum=2.0
)
# Embeddings for the semantic tier: the offline static WordLlama model (static; "local" is
# its former name), all-MiniLM-L6-v2 run offline (minilm: more recall, a little less
# precision on unseen pairs, docs/decisions/0004), or the upstream's OpenAI-compatible
# embeddings API (OPENAI_BASE_URL, OPENAI_API_KEY) with this model.
CACHE_EMBEDDER = env_choice("CACHE_EMBEDDER", "static", ("static", "local", "minilm", "upstream"))
CACHE_EMBEDDING_MODEL = (
    env_str("CACHE_EMBEDDING_MODEL", "text-embedding-3-small") or "text-embedding-3-small"
)
CACHE_EMBEDDING_DIMENSIONS = env_int("CACHE_EMBEDDING_DIMENSIONS", 512, minimum=8, maximum=8192)
# Prompts (text of all messages) and answers (JSON) longer than this are neither looked up
# nor stored: a document this size is rarely repeated and would weigh on Redis and the
# database (one 42 MB prompt became an 84 MB Redis value).
CACHE_MAX_ENTRY_CHARS = env_int(
    "CACHE_MAX_ENTRY_CHARS", 262_144, minimum=1_024, maximum=16 * 1024 * 1024
)
# Optional second opinion on borderline semantic candidates, by a cheap model through the
# organization's route, accounted as its usage. Empty: off.
CACHE_VERIFIER_MODEL = env_str("CACHE_VERIFIER_MODEL", "")
CACHE_VERIFIER_MAX_CALLS = env_int("CACHE_VERIFIER_MAX_CALLS", 1, minimum=1, maximum=5)
# Opt-in refresh of popular entries before they expire; 0 turns it off.
CACHE_WARM_MAX_USD_PER_DAY = env_float(
    "CACHE_WARM_MAX_USD_PER_DAY", 0.0, minimum=0.0, maximum=1_000_000
)

# Compression level used when USE_SYNTHLANG is on and neither the organization nor the
# request's x-synthlang-compression header says otherwise. `low` is the level that is safe on
# any text (lossless); organizations opt into medium or high in the admin.
SYNTHLANG_DEFAULT_LEVEL = env_choice(
    "SYNTHLANG_DEFAULT_LEVEL", "low", ("off", "low", "medium", "high")
)

# Translate mode: long system prompts compiled once into compact SynthLang by a cheap
# upstream model, used only when the result keeps every protected span.
SYNTHLANG_TRANSLATE = env_bool("SYNTHLANG_TRANSLATE", False)
SYNTHLANG_TRANSLATOR_MODEL = env_str("SYNTHLANG_TRANSLATOR_MODEL", "gpt-4o-mini") or "gpt-4o-mini"
SYNTHLANG_TRANSLATE_MIN_TOKENS = env_int("SYNTHLANG_TRANSLATE_MIN_TOKENS", 400, minimum=1)
SYNTHLANG_TRANSLATE_CACHE_SECONDS = env_float(
    "SYNTHLANG_TRANSLATE_CACHE_SECONDS", 30.0, minimum=0, maximum=3600
)
SYNTHLANG_TRANSLATE_RETRY_SECONDS = env_float(
    "SYNTHLANG_TRANSLATE_RETRY_SECONDS", 3600.0, minimum=1, maximum=7 * 86400
)
SYNTHLANG_TRANSLATE_MIN_RATIO = env_float(
    "SYNTHLANG_TRANSLATE_MIN_RATIO", 0.1, minimum=0.0, maximum=1.0
)

# Upstream calls: timeouts in seconds, retries with exponential backoff and jitter,
# and a cool-down for a deployment that keeps failing.
# Per attempt: a hung upstream (connected, silent) fails within a minute by default, and
# a read timeout moves on to the next deployment rather than waiting again on the same one.
# Raise UPSTREAM_READ_TIMEOUT for models that think for longer before a non-streamed answer.
UPSTREAM_CONNECT_TIMEOUT = env_float("UPSTREAM_CONNECT_TIMEOUT", 5.0, minimum=0.1, maximum=120)
# Non-streamed: the longest silence while waiting for (and reading) the answer.
UPSTREAM_READ_TIMEOUT = env_float("UPSTREAM_READ_TIMEOUT", 45.0, minimum=0.1, maximum=3600)
# Streamed: the longest silence before the first chunk and between two chunks.
UPSTREAM_STREAM_IDLE_TIMEOUT = env_float(
    "UPSTREAM_STREAM_IDLE_TIMEOUT", 30.0, minimum=0.1, maximum=3600
)
# The whole of one attempt, a long stream included.
UPSTREAM_TOTAL_TIMEOUT = env_float("UPSTREAM_TOTAL_TIMEOUT", 600.0, minimum=1, maximum=7200)
# The whole of one request's upstream work, across retries, backoff and fallbacks (for a
# stream: until its first chunk); then the client gets a 504 (request_timeout).
REQUEST_DEADLINE_SECONDS = env_float("REQUEST_DEADLINE_SECONDS", 60.0, minimum=0.1, maximum=7200)
UPSTREAM_MAX_RETRIES = env_int("UPSTREAM_MAX_RETRIES", 2, minimum=0, maximum=10)
UPSTREAM_BACKOFF_BASE = env_float("UPSTREAM_BACKOFF_BASE", 0.25, minimum=0, maximum=10)
UPSTREAM_BACKOFF_MAX = env_float("UPSTREAM_BACKOFF_MAX", 8.0, minimum=0, maximum=120)
UPSTREAM_POOL_SIZE = env_int("UPSTREAM_POOL_SIZE", 200, minimum=1)
# URLs an organization sets (its provider keys' base URLs, budget webhooks) must be https
# and reach public addresses only (common/outbound.py). Platform staff allow-list internal
# hosts here (names, addresses or networks such as 10.0.0.0/8; http is allowed to them
# too); OUTBOUND_ALLOW_HTTP allows plain http to any public host. OPENAI_BASE_URL, the
# operator's own choice, is never restricted.
OUTBOUND_ALLOWED_HOSTS = env_list("OUTBOUND_ALLOWED_HOSTS")
OUTBOUND_ALLOW_HTTP = env_bool("OUTBOUND_ALLOW_HTTP", False)

# Registered tools (tools/): how long a process keeps an organization's tools and rules
# before reading them again, and the largest tool answer the proxy relays.
TOOLS_CACHE_SECONDS = env_float("TOOLS_CACHE_SECONDS", 5.0, minimum=0.0, maximum=3600.0)
TOOLS_MAX_RESPONSE_BYTES = env_int("TOOLS_MAX_RESPONSE_BYTES", 1024 * 1024, minimum=1024)
# Largest API request body. Django's default (2.5 MB) refuses chat requests with a few
# images in base64; OpenAI takes up to 50 MB of images per request.
MAX_REQUEST_BODY_MB = env_int("MAX_REQUEST_BODY_MB", 50, minimum=1, maximum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_MB * 1024 * 1024
# Prompts with more characters of text than this are sent upstream as they are: neither
# compressed nor counted by the tokenizer on the request path (admission's character estimate
# stands until the upstream's usage settles it). Either would hold a core for seconds.
LARGE_PROMPT_CHARS = env_int("LARGE_PROMPT_CHARS", 1_000_000, minimum=10_000, maximum=1 << 30)
# Largest audio file for transcriptions and translations (OpenAI's limit: 25 MB) and
# largest file for /v1/files (OpenAI's: 512 MB); larger uploads are OpenAI's 413.
AUDIO_UPLOAD_MAX_MB = env_int("AUDIO_UPLOAD_MAX_MB", 25, minimum=1, maximum=1024)
FILE_UPLOAD_MAX_MB = env_int("FILE_UPLOAD_MAX_MB", 512, minimum=1, maximum=8192)
DEPLOYMENT_FAILURE_THRESHOLD = env_int("DEPLOYMENT_FAILURE_THRESHOLD", 3, minimum=1)
DEPLOYMENT_COOLDOWN_SECONDS = env_float(
    "DEPLOYMENT_COOLDOWN_SECONDS", 30.0, minimum=0, maximum=3600
)
ROUTE_CACHE_SECONDS = env_float("ROUTE_CACHE_SECONDS", 10.0, minimum=0, maximum=3600)
MODELS_CACHE_SECONDS = env_float("MODELS_CACHE_SECONDS", 300.0, minimum=0, maximum=86400)
# Completion tokens assumed for rate limits and budget reservations when a request
# sets no max_tokens; settled to the real count afterwards.
DEFAULT_COMPLETION_ESTIMATE = env_int("DEFAULT_COMPLETION_ESTIMATE", 256, minimum=0)
# The offline fake provider's simulated latency.
FAKE_LATENCY_MS = env_float("FAKE_LATENCY_MS", 0.0, minimum=0, maximum=60000)
# Where the fake provider keeps uploaded files and its batches ("": the system's temp dir).
FAKE_FILES_DIR = env_str("FAKE_FILES_DIR", "")

# Responses API answers stored with ``store: true`` are kept this many days (OpenAI: 30).
RESPONSES_RETENTION_DAYS = env_int("RESPONSES_RETENTION_DAYS", 30, minimum=1, maximum=3650)
