"""``/v1/audio/speech`` (a binary answer, streamed) and ``/v1/audio/transcriptions`` and
``/v1/audio/translations`` (a multipart upload, limited to ``AUDIO_UPLOAD_MAX_MB``).

Speech is measured in characters of input (tts-1's unit) beside its tokens (the unit of
the token-priced speech models); transcriptions in seconds of audio, as the upstream
reports them (whisper's ``usage.seconds``) or, when it reports none, as the proxy reads
them from the file.
"""

from __future__ import annotations

import asyncio
import logging
import math

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from billing import pricing
from common.errors import InvalidRequest
from proxy import accounting, gateway, metrics, views
from proxy.providers.base import UpstreamError
from proxy.surface import calls
from proxy.surface.accounting import surface_usage
from proxy.surface.serializers import SpeechRequestSerializer, TranscriptionRequestSerializer
from proxy.surface.uploads import multipart_upload
from proxy.tokens import count_tokens
from proxy.wav import audio_seconds

logger = logging.getLogger(__name__)

# --- Speech -------------------------------------------------------------------------------


def _open_speech(call: gateway.ProxyCall):
    """The operation that starts the upstream's audio and waits for its content type, so
    a failure before any byte reaches the client can still be retried or fall back."""

    async def operation(provider, target):
        method = getattr(provider, "audio_speech", None)
        if method is None:
            raise InvalidRequest(
                f"The model is served by the '{provider.name}' provider, which has no "
                "speech endpoint.",
                param="model",
            )
        iterator = method(target, call.body)
        try:
            content_type = await anext(iterator)
        except StopAsyncIteration:
            raise UpstreamError("The upstream provider sent no audio.", retryable=True) from None
        except BaseException:
            await iterator.aclose()
            raise
        return content_type, iterator

    return operation


async def _relay_audio(call: gateway.ProxyCall, iterator, usage: dict):
    """The audio as it comes; however the stream ends, the call is accounted once."""
    try:
        async for chunk in iterator:
            yield chunk
    except asyncio.CancelledError:
        call.client_disconnected = True
        metrics.STREAMS_DISCONNECTED.inc()
        raise
    except UpstreamError as error:
        # The status line is gone already: the client sees a short body, the usage event
        # the failure.
        call.status_code, call.error_code = error.status, error.code
        logger.warning("speech stream of %s failed: %s", call.request_id, error.message)
    finally:
        gateway.run_in_background(_close_and_account(call, iterator, usage))


async def _close_and_account(call: gateway.ProxyCall, iterator, usage: dict) -> None:
    try:
        await iterator.aclose()
    except Exception:
        logger.warning("closing the upstream audio of %s failed", call.request_id)
    await accounting.finish(call, usage)


class SpeechView(views.ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "audio.speech"

    @views.openai_errors
    async def post(self, request):
        principal = await views.authenticate(request)
        body = views.parse_body(request, SpeechRequestSerializer)
        call = views.new_call(request, principal, self.endpoint, body)
        call.stream = True

        async def work():
            text = call.body["input"]
            tokens = count_tokens(text, model=call.model)
            plan = await calls.admit(call, prompt_tokens=tokens, units=len(text))
            content_type, iterator = await calls.upstream(call, plan, _open_speech(call))
            # The upstream reports no usage for speech: the proxy counts what it sent.
            call.usage_estimated = True
            usage = surface_usage(prompt_tokens=tokens, units=len(text))
            response = StreamingHttpResponse(
                _relay_audio(call, iterator, usage), content_type=content_type
            )
            response["X-Accel-Buffering"] = "no"
            for name, value in call.response_headers().items():
                response[name] = value
            return response

        return await calls.accounted(call, work)


# --- Transcriptions and translations -------------------------------------------------------


async def audio_upload(request):
    return await multipart_upload(
        request, limit_mb=settings.AUDIO_UPLOAD_MAX_MB, setting="AUDIO_UPLOAD_MAX_MB"
    )


def _seconds_of(result, file_bytes: bytes) -> tuple[dict, bool]:
    """The usage to account and whether it was counted here rather than reported."""
    reported = result.body.get("usage") if isinstance(result.body, dict) else None
    if isinstance(reported, dict) and reported.get("type") == "duration":
        seconds = reported.get("seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            return surface_usage(units=math.ceil(seconds)), False
    if isinstance(reported, dict) and reported.get("type") == "tokens":
        tokens = pricing.usage_tokens(reported)
        usage = surface_usage(
            prompt_tokens=tokens.prompt_tokens, completion_tokens=tokens.completion_tokens
        )
        return usage, False
    return surface_usage(units=math.ceil(audio_seconds(file_bytes))), True


class _AudioTextView(views.ProxyEndpoint):
    http_method_names = ["post"]
    task = ""

    @views.openai_errors
    async def post(self, request):
        principal = await views.authenticate(request)
        fields, file = await audio_upload(request)
        single = dict(fields)
        views.validated(single, TranscriptionRequestSerializer)
        call = views.new_call(request, principal, self.endpoint, {"model": single["model"]})
        call.stream = False

        async def work():
            seconds = math.ceil(audio_seconds(file[1]))
            plan = await calls.admit(call, prompt_tokens=0, units=seconds)
            result = await calls.upstream(
                call,
                plan,
                calls.provider_method(
                    "audio_transcriptions", task=self.task, fields=fields, file=file
                ),
            )
            usage, counted = _seconds_of(result, file[1])
            call.usage_estimated = counted
            calls.account(call, usage)
            content_type = result.headers.get("content-type") or "application/json"
            response = HttpResponse(result.raw, content_type=content_type)
            for name, value in call.response_headers().items():
                response[name] = value
            return response

        return await calls.accounted(call, work)


class TranscriptionsView(_AudioTextView):
    endpoint = "audio.transcriptions"
    task = "transcribe"


class TranslationsView(_AudioTextView):
    endpoint = "audio.translations"
    task = "translate"
