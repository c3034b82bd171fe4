"""The SynthLang engine as an API: compress, the lossless transport form, and translate.

Same conventions as `proxy.views`: API-key auth, OpenAI-format errors, async, thin.
"""

from __future__ import annotations

import asyncio
import json

from django.conf import settings
from django.http import HttpResponse
from django.urls import path

from common.errors import InvalidRequest
from proxy import translation
from proxy.serializers import (
    CompressRequestSerializer,
    DecompressRequestSerializer,
    TranslateRequestSerializer,
)
from proxy.synthlang import (
    DEFAULT_ROLES,
    TransportDecodeError,
    compress_messages,
    compress_text,
    pack,
    unpack,
)
from proxy.views import (
    ProxyEndpoint,
    authenticate,
    json_object,
    json_response,
    openai_errors,
    validated,
)

COMPRESS_FORMATS = ("synthlang", "transport")
# Compression runs at a few MB/s: past this size it moves off the event loop so one large
# prompt does not stall every other request of the process.
_OFF_LOOP_CHARS = 64 * 1024


def _string_field(body: dict, name: str) -> str:
    # The serializers' CharField also takes numbers; the engine takes text only.
    value = body.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f"{name}: must be a string.", param=name)
    return value


async def _run(fn, *args, size: int, **kwargs):
    if size > _OFF_LOOP_CHARS:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)


def _messages_size(messages: list[dict]) -> int:
    return sum(len(str(message.get("content") or "")) for message in messages)


def _respond(payload: dict):
    try:
        return json_response(payload)
    except UnicodeEncodeError:
        # Lone surrogates round-trip through the transport form but cannot be UTF-8
        # encoded; JSON's \uXXXX escapes carry them exactly.
        return HttpResponse(json.dumps(payload), content_type="application/json")


def _transport_text(body: dict) -> str:
    """`text` of a packing request. Checked here rather than by the serializer, whose
    CharField refuses NUL and surrogate characters: the transport form carries any str."""
    if "messages" in body:
        raise InvalidRequest("format 'transport' packs 'text' only.", param="messages")
    return _string_field(body, "text")


class SynthLangCompressView(ProxyEndpoint):
    http_method_names = ["post"]

    @openai_errors
    async def post(self, request):
        principal = await authenticate(request)
        # The transport format carries any text exactly, broken UTF-16 included.
        body = json_object(request, lone_surrogates=True)
        output_format = body.get("format", "synthlang")
        if output_format not in COMPRESS_FORMATS:
            raise InvalidRequest(
                f"format: must be one of {', '.join(COMPRESS_FORMATS)}.", param="format"
            )
        if output_format == "transport":
            text = _transport_text(body)
            return _respond({"data": await _run(pack, text, size=len(text))})
        validated(body, CompressRequestSerializer)
        level = body.get("level", "medium")
        model = body.get("model") or settings.DEFAULT_MODEL
        if "text" in body:
            text = _string_field(body, "text")
            result = await _run(compress_text, text, level=level, model=model, size=len(text))
            payload = {"text": result.text}
        else:
            messages = body["messages"]
            result_messages, result = await _run(
                compress_messages,
                messages,
                level=level,
                model=model,
                roles=principal.compression_roles or DEFAULT_ROLES,
                tool_results=principal.compression_tool_results,
                size=_messages_size(messages),
            )
            payload = {"messages": result_messages}
        return _respond(
            {
                **payload,
                "level": result.level,
                "encoding": result.encoding,
                "tokens_before": result.tokens_before,
                "tokens_after": result.tokens_after,
                "tokens_saved": result.tokens_saved,
            }
        )


class SynthLangDecompressView(ProxyEndpoint):
    http_method_names = ["post"]

    @openai_errors
    async def post(self, request):
        await authenticate(request)
        body = validated(json_object(request, lone_surrogates=True), DecompressRequestSerializer)
        data = _string_field(body, "data")
        try:
            text = await _run(unpack, data, size=len(data))
        except TransportDecodeError as error:
            raise InvalidRequest(f"data: {error}", param="data") from None
        return _respond({"text": text})


class SynthLangTranslateView(ProxyEndpoint):
    http_method_names = ["post"]

    @openai_errors
    async def post(self, request):
        principal = await authenticate(request)
        body = validated(json_object(request), TranslateRequestSerializer)
        check, row = await translation.translate_now(
            principal=principal,
            request_id=request.request_id,
            text=_string_field(body, "text"),
            model=body.get("model") or "",
        )
        return json_response(
            {
                "id": row.pk,
                "text": check.text,
                "status": check.status,
                "detail": check.detail,
                "tokens_before": check.tokens_before,
                "tokens_after": check.tokens_after,
                "tokens_saved": check.tokens_saved,
                "translator_model": row.translator_model,
            }
        )


# Included under /v1/ by proxy/urls.py: `path("", include(synthlang_urlpatterns))` or
# `urlpatterns += synthlang_urlpatterns`.
synthlang_urlpatterns = [
    path("synthlang/compress", SynthLangCompressView.as_view(), name="synthlang-compress"),
    path("synthlang/decompress", SynthLangDecompressView.as_view(), name="synthlang-decompress"),
    path("synthlang/translate", SynthLangTranslateView.as_view(), name="synthlang-translate"),
]
