"""Billing: usage events and their flushing, prices, budgets, roles and their limits."""

from synthlang_site.envconfig import env_bool, env_choice, env_float, env_int, env_list, env_str
from synthlang_site.settings.base import BASE_DIR
from synthlang_site.settings.proxy import MAX_REQUEST_BODY_MB

# --- Billing ---------------------------------------------------------------------------
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90, minimum=1)
# Price of models missing from the price table: "IN" or "IN,OUT" dollars per million
# tokens; "0" prices them at nothing (and flags them).
UNKNOWN_MODEL_PRICE_PER_MTOK_USD = env_str("UNKNOWN_MODEL_PRICE_PER_MTOK_USD", "0") or "0"
USAGE_FLUSH_BATCH = env_int("USAGE_FLUSH_BATCH", 500, minimum=1)
USAGE_FLUSH_MAX_BATCHES = env_int("USAGE_FLUSH_MAX_BATCHES", 50, minimum=1)
USAGE_FLUSH_VISIBILITY_SECONDS = env_int("USAGE_FLUSH_VISIBILITY_SECONDS", 300, minimum=10)
USAGE_FLUSH_INTERVAL = env_float("USAGE_FLUSH_INTERVAL", 1.0, minimum=0.05, maximum=60)
# The embedded default (no broker) writes usage from a thread of the web process.
USAGE_FLUSH_IN_BACKGROUND = env_bool("USAGE_FLUSH_IN_BACKGROUND", True)
# Usage events the database could not take are appended here and replayed (billing/spool.py).
USAGE_SPOOL_DIR = env_str("USAGE_SPOOL_DIR") or str(BASE_DIR / "var" / "usage-spool")
PRICE_CACHE_SECONDS = env_float("PRICE_CACHE_SECONDS", 60.0, minimum=0, maximum=3600)
BUDGET_CACHE_SECONDS = env_float("BUDGET_CACHE_SECONDS", 5.0, minimum=0, maximum=3600)
BUDGET_WEBHOOK_TIMEOUT_SECONDS = env_float(
    "BUDGET_WEBHOOK_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60
)

ROLES = ("admin", "premium", "basic")
ADMIN_USERS = env_list("ADMIN_USERS")
PREMIUM_USERS = env_list("PREMIUM_USERS")
DEFAULT_ROLE = env_choice("DEFAULT_ROLE", "basic", ROLES)
# Requests and tokens per minute by role; 0 means unlimited.
ROLE_RATE_LIMITS = {
    "basic": {
        "rpm": env_int("BASIC_RPM", 60, minimum=0),
        "tpm": env_int("BASIC_TPM", 100_000, minimum=0),
    },
    "premium": {
        "rpm": env_int("PREMIUM_RPM", 600, minimum=0),
        "tpm": env_int("PREMIUM_TPM", 1_000_000, minimum=0),
    },
    "admin": {
        "rpm": env_int("ADMIN_RPM", 0, minimum=0),
        "tpm": env_int("ADMIN_TPM", 0, minimum=0),
    },
}
# Largest /v1 request body by role, in MB (never above MAX_REQUEST_BODY_MB); refused with a
# 413 before the body is parsed.
ROLE_MAX_BODY_BYTES = {
    role: min(env_int(f"{role.upper()}_MAX_BODY_MB", default, minimum=1), MAX_REQUEST_BODY_MB)
    * 1024
    * 1024
    for role, default in (("basic", 10), ("premium", 25), ("admin", MAX_REQUEST_BODY_MB))
}
