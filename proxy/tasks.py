"""Celery tasks of the proxy: thin, idempotent, taking ids."""

from __future__ import annotations

from celery import shared_task

from proxy import translation

# --- SynthLang translate mode -------------------------------------------------------------


@shared_task(ignore_result=True)
def translate_system_prompt(translated_prompt_id: int) -> str | None:
    """Compile a pending `TranslatedPrompt`; a row that is not pending is left alone, so a
    duplicate or repeated delivery does nothing. Returns the row's status."""
    return translation.translation_compile_blocking(translated_prompt_id=translated_prompt_id)
