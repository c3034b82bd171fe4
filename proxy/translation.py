"""Translate mode: a long system prompt compiled once into compact SynthLang by a cheap model.

The compiled form replaces the original on later requests only after it passed the same
protected-content check as every compression (``proxy.translation_check``, the pure pieces:
the translator's instructions and the check).

Layout: the per-process cache, then the database services, then the async orchestration
that the endpoint, the Celery task and the gateway call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction

from accounts.selectors import Principal, aprincipal_for_organization
from common.db import run_in_db_thread
from common.errors import DomainError
from proxy import accounting, gateway
from proxy.models import TranslatedPrompt
from proxy.tokens import count_tokens
from proxy.translation_check import (
    READY,
    TranslationCheck,
    check_translation,
    compiled_from_response,
    source_hash,
    system_prompt_index,
    translator_body,
)

logger = logging.getLogger(__name__)

PENDING = TranslatedPrompt.Status.PENDING.value
FAILED = TranslatedPrompt.Status.FAILED.value


def translator_model() -> str:
    return getattr(settings, "SYNTHLANG_TRANSLATOR_MODEL", "") or "gpt-4o-mini"


def translate_enabled() -> bool:
    return bool(getattr(settings, "SYNTHLANG_TRANSLATE", False))


def min_tokens() -> int:
    return int(getattr(settings, "SYNTHLANG_TRANSLATE_MIN_TOKENS", 400))


def cache_seconds() -> float:
    return float(getattr(settings, "SYNTHLANG_TRANSLATE_CACHE_SECONDS", 30))


def retry_seconds() -> float:
    return float(getattr(settings, "SYNTHLANG_TRANSLATE_RETRY_SECONDS", 3600))


# --- Per-process cache of lookups --------------------------------------------------------------

# (organization id, source hash) -> (expires at, compiled text or None). None is a negative
# entry (no row, pending, rejected, failed): the hot path must not ask the database on every
# request with a long system prompt, translated or not.
_cache: dict[tuple[int, str], tuple[float, str | None]] = {}
_MISS = object()


def _cache_get(key: tuple[int, str]):
    entry = _cache.get(key)
    if entry is None or entry[0] <= time.monotonic():
        return _MISS
    return entry[1]


def _cache_put(key: tuple[int, str], compiled: str | None) -> None:
    if len(_cache) > 10_000:
        _cache.clear()  # bound memory; every entry is cheap to look up again
    _cache[key] = (time.monotonic() + cache_seconds(), compiled)


def translation_cache_forget(*, organization_id: int | None = None, digest: str = "") -> None:
    if organization_id is None:
        _cache.clear()
    else:
        _cache.pop((organization_id, digest), None)


# --- Database services (sync; run on a DB thread from async code) -----------------------------


def translation_store(
    *, organization_id: int, source_text: str, check: TranslationCheck, translator: str
) -> TranslatedPrompt:
    """Record a verdict for the organization's prompt, replacing any earlier one."""
    row, _ = TranslatedPrompt.objects.update_or_create(
        organization_id=organization_id,
        source_hash=source_hash(source_text),
        defaults={
            "source_text": source_text,
            "source_tokens": check.tokens_before,
            "compiled_text": check.candidate,
            "compiled_tokens": count_tokens(check.candidate, model=settings.DEFAULT_MODEL),
            "translator_model": translator,
            "status": check.status,
            "detail": check.detail,
        },
    )
    return row


def translation_lookup_or_request(
    *, organization_id: int, digest: str, source_text: str, source_tokens: int
) -> str | None:
    """The ready compiled form of the organization's prompt, else None.

    A prompt seen for the first time gets a pending row and a queued compile. A row that has
    been pending or failed for longer than `SYNTHLANG_TRANSLATE_RETRY_SECONDS` is queued
    again (a lost task, an upstream outage); the compile is idempotent, so a duplicate
    is harmless.
    """
    row = (
        TranslatedPrompt.objects.filter(organization_id=organization_id, source_hash=digest)
        .only("pk", "status", "source_text", "compiled_text", "updated_at")
        .first()
    )
    if row is not None:
        if row.source_text != source_text:
            return None  # a hash collision is never worth a wrong prompt
        if row.status == READY:
            return row.compiled_text
        stale_before = datetime.now(tz=UTC) - timedelta(seconds=retry_seconds())
        if row.status in (PENDING, FAILED) and row.updated_at < stale_before:
            with transaction.atomic():
                updated = TranslatedPrompt.objects.filter(
                    pk=row.pk, status=row.status, updated_at=row.updated_at
                ).update(status=PENDING, updated_at=datetime.now(tz=UTC))
                if updated:
                    transaction.on_commit(lambda: translation_queue(row.pk))
        return None
    with transaction.atomic():
        row, created = TranslatedPrompt.objects.get_or_create(
            organization_id=organization_id,
            source_hash=digest,
            defaults={"source_text": source_text, "source_tokens": source_tokens},
        )
        if created:
            # After commit: a worker must find the row it is asked to compile.
            transaction.on_commit(lambda: translation_queue(row.pk))
    return None


def _row_to_compile(translated_prompt_id: int) -> TranslatedPrompt | None:
    return TranslatedPrompt.objects.filter(pk=translated_prompt_id).first()


def _finish_pending(*, translated_prompt_id: int, fields: dict) -> bool:
    # Only a row still pending is written: of two concurrent compiles the first wins and a
    # late duplicate cannot overwrite a newer verdict.
    return bool(
        TranslatedPrompt.objects.filter(pk=translated_prompt_id, status=PENDING).update(
            **fields, updated_at=datetime.now(tz=UTC)
        )
    )


# --- Calling the translator ---------------------------------------------------------------


async def _translator_call_background(*, organization_id: int, model: str, body: dict) -> dict:
    """One translator call for a background compile, through the request pipeline as the
    organization's own call: its model rules, rate limit and budget, retries and fallback,
    one usage event with no member. Compression and the cache are off: the translator must
    see the prompt exactly as written, and its answer is stored as a translation."""
    principal = await aprincipal_for_organization(
        organization_id=organization_id, username="translator"
    )
    call = gateway.ProxyCall(
        principal=principal,
        request_id=f"req_translate_{uuid.uuid4().hex}",
        endpoint="chat.completions",
        model=model,
        body=body,
        compression_header="off",
        cache_header="off",
    )
    try:
        plan = await gateway.admit(call)
        result = await gateway.run_json(
            call, plan, lambda provider, target: provider.chat(target, call.body)
        )
    except DomainError as error:
        await accounting.fail(call, error)
        raise
    await gateway.call_settled(call)  # accounted before the task's loop may end
    return result.body


async def translation_compile(*, translated_prompt_id: int) -> str | None:
    """Compile a pending row; any other row is left as it is (so a repeat is a no-op).

    Returns the row's status afterwards, None when the row does not exist.
    """
    row = await run_in_db_thread(_row_to_compile, translated_prompt_id)
    if row is None or row.status != PENDING:
        return row.status if row is not None else None
    model = translator_model()
    try:
        response = await _translator_call_background(
            organization_id=row.organization_id,
            model=model,
            body=translator_body(text=row.source_text, model=model),
        )
    except DomainError as error:
        # Failed upstream, or refused (the organization's budget or rate limit).
        logger.warning("translation %s failed: %s", translated_prompt_id, error.code)
        fields = {"status": FAILED, "translator_model": model, "detail": error.message[:500]}
        await run_in_db_thread(
            _finish_pending, translated_prompt_id=translated_prompt_id, fields=fields
        )
        return FAILED
    compiled, finish_reason = compiled_from_response(response)
    check = check_translation(
        original=row.source_text,
        compiled=compiled,
        model=settings.DEFAULT_MODEL,
        finish_reason=finish_reason,
    )
    fields = {
        "status": check.status,
        "source_tokens": check.tokens_before,
        "compiled_text": check.candidate,
        "compiled_tokens": count_tokens(check.candidate, model=settings.DEFAULT_MODEL),
        "translator_model": model,
        "detail": check.detail,
    }
    if await run_in_db_thread(
        _finish_pending, translated_prompt_id=translated_prompt_id, fields=fields
    ):
        translation_cache_forget(organization_id=row.organization_id, digest=row.source_hash)
        return check.status
    return await run_in_db_thread(
        lambda: (
            TranslatedPrompt.objects.filter(pk=translated_prompt_id)
            .values_list("status", flat=True)
            .first()
        )
    )


async def translate_now(
    *, principal: Principal, request_id: str, text: str, model: str = ""
) -> tuple[TranslationCheck, TranslatedPrompt]:
    """The /translate endpoint: compile `text` for the caller's organization while the
    client waits, through the whole gateway (model access, rate limits, budget, retries,
    fallback, usage), and store the verdict."""
    model = model or translator_model()
    call = gateway.ProxyCall(
        principal=principal,
        request_id=request_id,
        endpoint="chat.completions",
        model=model,
        body=translator_body(text=text, model=model),
        # The translator must see the prompt exactly as written.
        compression_header="off",
        cache_header="off",
    )
    try:
        plan = await gateway.admit(call)
        result = await gateway.run_json(
            call, plan, lambda provider, target: provider.chat(target, call.body)
        )
    except DomainError as error:
        # Refused or failed calls are accounted like any other proxied request.
        gateway.run_in_background(accounting.fail(call, error))
        raise
    compiled, finish_reason = compiled_from_response(result.body)
    check = check_translation(
        original=text, compiled=compiled, model=settings.DEFAULT_MODEL, finish_reason=finish_reason
    )
    row = await run_in_db_thread(
        translation_store,
        organization_id=principal.organization_id,
        source_text=text,
        check=check,
        translator=model,
    )
    translation_cache_forget(organization_id=principal.organization_id, digest=row.source_hash)
    return check, row


async def apply_translation(
    *, organization_id: int, messages: list[dict], model: str
) -> tuple[list[dict], int]:
    """`messages` with a long system prompt replaced by its ready compiled form, and the
    tokens that saves on `model`'s tokenizer.

    Off unless `SYNTHLANG_TRANSLATE`. A prompt without a ready translation goes upstream
    unchanged; the first time one is seen, its compile is queued. Lookups are cached per
    process for `SYNTHLANG_TRANSLATE_CACHE_SECONDS`, misses included.
    """
    if not translate_enabled():
        return messages, 0
    index = system_prompt_index(messages)
    if index is None:
        return messages, 0
    original = messages[index]["content"]
    if len(original) <= min_tokens():
        return messages, 0  # a token is at least one character: short without counting
    tokens_before = count_tokens(original, model=model)
    if tokens_before <= min_tokens():
        return messages, 0
    digest = source_hash(original)
    key = (organization_id, digest)
    compiled = _cache_get(key)
    if compiled is _MISS:
        compiled = await run_in_db_thread(
            translation_lookup_or_request,
            organization_id=organization_id,
            digest=digest,
            source_text=original,
            source_tokens=tokens_before,
        )
        _cache_put(key, compiled)
    if not compiled:
        return messages, 0
    # The stored form was checked on every supported encoding; counting again on this
    # model's keeps the reported saving exact.
    saved = tokens_before - count_tokens(compiled, model=model)
    if saved <= 0:
        return messages, 0
    translated = list(messages)
    translated[index] = {**messages[index], "content": compiled}
    return translated, saved


# --- Queueing and the process's translation loop -------------------------------------------

# Background compiles in this process run on one long-lived event loop in a daemon thread:
# the Celery worker's tasks are sync, and a fresh loop per task would leave one upstream
# connection pool behind per task (pools are bound to their loop).
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_in_flight: set[Future] = set()


def _translation_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="synthlang-translation", daemon=True
            ).start()
            _loop = loop
        return _loop


def translation_compile_blocking(*, translated_prompt_id: int, timeout: float = 300) -> str | None:
    """`translation_compile` for sync callers (the Celery task)."""
    future = asyncio.run_coroutine_threadsafe(
        translation_compile(translated_prompt_id=translated_prompt_id), _translation_loop()
    )
    return future.result(timeout=timeout)


def translation_queue(translated_prompt_id: int) -> None:
    """Have a pending row compiled, never on the caller's time.

    With a broker, a Celery worker does it. In the embedded default (tasks eager) running
    the task inline would make the request that found the prompt wait for the translator,
    so it runs on this process's translation loop instead.
    """
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        future = asyncio.run_coroutine_threadsafe(
            translation_compile(translated_prompt_id=translated_prompt_id), _translation_loop()
        )
        _in_flight.add(future)
        future.add_done_callback(_translation_done)
        return
    # Imported here: the task calls this module's compile function (a task and the
    # service it runs, each needing the other); Celery's send_task by name would skip
    # eager mode.
    from proxy.tasks import translate_system_prompt

    translate_system_prompt.delay(translated_prompt_id)


def _translation_done(future: Future) -> None:
    _in_flight.discard(future)
    if not future.cancelled() and future.exception() is not None:
        logger.error("background translation failed", exc_info=future.exception())


def translations_wait(*, timeout: float = 30) -> None:
    """Wait for this process's background compiles (tests, orderly shutdown)."""
    deadline = time.monotonic() + timeout
    for future in list(_in_flight):
        future.result(timeout=max(deadline - time.monotonic(), 0.01))
