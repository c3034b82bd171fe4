"""Translate mode as a stage (``SYNTHLANG_TRANSLATE``): a long system prompt the
organization has had compiled into SynthLang, and whose compilation passed its check, is
sent in its compiled form (proxy/translation.py compiles it, proxy/translation_check.py
checks it)."""

from __future__ import annotations

from django.conf import settings

from proxy import translation
from proxy.pipeline.stage import Stage


class TranslateStage(Stage):
    name = "translate"

    async def on_request(self, call) -> None:
        if not settings.SYNTHLANG_TRANSLATE:
            return
        messages, saved = await translation.apply_translation(
            organization_id=call.principal.organization_id,
            messages=call.body["messages"],
            model=call.model,
        )
        if saved > 0:
            call.body = {**call.body, "messages": messages}
            call.tokens_saved += saved
