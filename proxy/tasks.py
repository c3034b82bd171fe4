"""Celery tasks of the proxy: thin, idempotent, taking ids."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from celery import shared_task

from proxy import translation
from proxy.adapters import responses_store
from proxy.response_cache import services as cache_services

# --- SynthLang translate mode -------------------------------------------------------------


@shared_task(ignore_result=True)
def translate_system_prompt(translated_prompt_id: int) -> str | None:
    """Compile a pending `TranslatedPrompt`; a row that is not pending is left alone, so a
    duplicate or repeated delivery does nothing. Returns the row's status."""
    return translation.translation_compile_blocking(translated_prompt_id=translated_prompt_id)


# --- Cache warming ------------------------------------------------------------------------


@shared_task(ignore_result=True)
def cache_refresh_popular(organization_id: int) -> dict:
    """Re-ask upstream for the organization's most hit entries before they expire, within
    ``CACHE_WARM_MAX_USD_PER_DAY`` (0, the default, turns it off). Safe to repeat: an entry
    refreshed once is no longer close to expiring."""
    return async_to_sync(cache_services.cache_refresh_popular)(organization_id=organization_id)


@shared_task(ignore_result=True)
def cache_refresh_due() -> list[int]:
    """Beat's hourly entry: queue a refresh for each organization that caches and has hit
    entries about to expire. Nothing while ``CACHE_WARM_MAX_USD_PER_DAY`` is 0. Returns the
    organizations queued."""
    organization_ids = cache_services.cache_refresh_due_organization_ids()
    for organization_id in organization_ids:
        cache_refresh_popular.delay(organization_id)
    return organization_ids


# --- Stored Responses API answers ---------------------------------------------------------


@shared_task(ignore_result=True)
def stored_responses_delete_expired() -> int:
    """Beat's hourly entry: delete stored responses past ``RESPONSES_RETENTION_DAYS``.
    Idempotent: a second run finds nothing. Returns how many were deleted."""
    return responses_store.stored_responses_delete_expired()
