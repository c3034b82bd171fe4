"""The proxy's Celery beat entries, for ``CELERY_BEAT_SCHEDULE`` in the settings.

Plain data with no Django imports, so the settings module can import it.
"""

# The cache's refresh looks this far ahead at least, so the schedule and the horizon move
# together (``proxy.response_cache.services.cache_refresh_horizon_seconds``).
CACHE_REFRESH_EVERY_SECONDS = 3600.0

BEAT_SCHEDULE = {
    # Queues a refresh per organization with popular entries about to expire; does nothing
    # while CACHE_WARM_MAX_USD_PER_DAY is 0 (the default).
    "proxy-cache-refresh-due": {
        "task": "proxy.tasks.cache_refresh_due",
        "schedule": CACHE_REFRESH_EVERY_SECONDS,
    },
    # Stored Responses API answers past RESPONSES_RETENTION_DAYS.
    "proxy-stored-responses-expire": {
        "task": "proxy.tasks.stored_responses_delete_expired",
        "schedule": 3600.0,
    },
}
