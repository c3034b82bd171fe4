"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API.

Same conventions as `proxy.views` (API-key auth, async, thin), with Anthropic's error
format. A request is translated to chat completions and runs the chat pipeline
(``chat_bridge``), whatever the route's provider; routes served by Anthropic alone get
the request as it is (``anthropic_native``).
"""

from __future__ import annotations

import functools
import json
import logging

from django.http import StreamingHttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError

from common.errors import DomainError, NotFound, domain_error_from_drf
from proxy import metrics
from proxy.adapters import anthropic_native, chat_bridge
from proxy.adapters.anthropic_errors import (
    anthropic_error_response,
    anthropic_status,
    error_type_for,
)
from proxy.adapters.anthropic_messages import (
    chat_messages,
    chat_request,
    estimate_chat_request,
    message_from_chat,
    message_id,
    thinking_requested,
)
from proxy.adapters.anthropic_stream import MessageStreamTranslator, encode_event, error_event
from proxy.adapters.anthropic_validation import (
    CountTokensRequestSerializer,
    MessagesRequestSerializer,
    NativeCountTokensRequestSerializer,
    NativeMessagesRequestSerializer,
)
from proxy.serializers import validate_request
from proxy.tokens import count_message_tokens, count_tokens
from proxy.views import ProxyEndpoint, authenticate, json_object, json_response

logger = logging.getLogger(__name__)


def anthropic_errors(handler):
    """Every failure leaves in Anthropic's error format, so its SDK raises the typed
    exception (and Claude Code retries what is worth retrying)."""

    @functools.wraps(handler)
    async def wrapper(self, request, *args, **kwargs):
        try:
            return await handler(self, request, *args, **kwargs)
        except DomainError as error:
            _count_refusal(self, error, error.status)
            return _error_response(request, error)
        except Exception as exc:
            logger.exception("unexpected error in %s", request.path)
            _count_refusal(self, exc, 500)
            return _error_response(request, DomainError())

    return wrapper


def _error_response(request, error: DomainError):
    request_id = getattr(request, "request_id", None)
    response = anthropic_error_response(error, request_id=request_id)
    if request_id:
        response["request-id"] = request_id  # where Anthropic's SDKs read it
    return response


def _count_refusal(view, exc: Exception, status: int) -> None:
    # A call's own failures were counted when it finished; a request refused before it
    # became one (bad key, bad body) is counted here.
    if not getattr(exc, "synthlang_accounted", False):
        metrics.REQUESTS.labels(endpoint=view.endpoint, model="", status=str(status)).inc()


def _validated(body: dict, serializer_class) -> dict:
    try:
        # The chat path's validator: built once per shape of request, not per request.
        validate_request(serializer_class, body)
    except ValidationError as error:
        raise domain_error_from_drf(error) from None
    return body


def _with_request_id(response, request):
    response["request-id"] = request.request_id
    return response


def _stream_response(events, headers: dict[str, str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # reverse proxies pass each event on at once
    for name, value in headers.items():
        response[name] = value
    return response


async def _translated_events(run: chat_bridge.ChatRun, *, model: str, thinking: bool = False):
    """The chat stream (a cached answer's replay too) as Messages events. Closing the chat
    iterator, however this ends, is what accounts the call."""
    translator = MessageStreamTranslator(
        model=model,
        message_id=message_id(),
        input_tokens=run.call.prompt_tokens_estimate,
        thinking=thinking,
    )
    try:
        # Read before anything is sent: a started iterator is one whose closing accounts
        # the call, even if the client leaves at the first event. (The first chunk is
        # already in hand: waiting for it let the call retry or fall back.)
        chunk = await anext(run.chunks, None)
        for name, data in translator.start():
            yield encode_event(name, data)
        while chunk is not None:
            for name, data in translator.feed(chunk):
                yield encode_event(name, data)
            chunk = await anext(run.chunks, None)
        for name, data in translator.finish():
            yield encode_event(name, data)
    except DomainError as error:
        # Headers are sent already: the error travels as a stream event, as Anthropic's do.
        yield encode_event(*error_event(error_type_for(anthropic_status(error)), error.message))
    finally:
        await run.chunks.aclose()


class AnthropicEndpoint(ProxyEndpoint):
    http_method_names = ["post"]

    def http_method_not_allowed(self, request, *args, **kwargs):
        error = DomainError(f"{request.method} is not allowed on {request.path}.")
        error.code = "method_not_allowed"
        response = _error_response(request, error)
        response["Allow"] = "POST"

        async def respond():
            return response

        return respond()


@csrf_exempt  # key-authenticated like the API: Django's CSRF check would answer a 403 first
async def messages_not_found(request, *args, **kwargs):
    """Unknown paths under /v1/messages (batches, for one) in Anthropic's format."""
    return _error_response(request, NotFound(f"There is no endpoint {request.path} here."))


class MessagesView(AnthropicEndpoint):
    endpoint = "messages"

    @anthropic_errors
    async def post(self, request):
        principal = await authenticate(request)
        body = json_object(request)
        model = body.get("model")
        if isinstance(model, str) and await anthropic_native.native_plan(principal, model):
            _validated(body, NativeMessagesRequestSerializer)
            if not await anthropic_native.stages_require_translation(request, principal, body):
                response = await anthropic_native.native_run(request, principal, body)
                return _with_request_id(response, request)
        _validated(body, MessagesRequestSerializer)
        run = await chat_bridge.chat_run(
            request, principal, chat_request(body), endpoint=self.endpoint
        )
        thinking = thinking_requested(body)
        if body.get("stream"):
            events = _translated_events(run, model=body["model"], thinking=thinking)
            return _with_request_id(_stream_response(events, run.headers), request)
        message = message_from_chat(run.body, model=body["model"], thinking=thinking)
        return _with_request_id(json_response(message, headers=run.headers), request)


class MessageCountTokensView(AnthropicEndpoint):
    """The prompt's tokens by the project's tokenizer: close to the upstream's count for
    OpenAI models, an estimate for the others (Claude's tokenizer is not published)."""

    endpoint = "messages.count_tokens"

    @anthropic_errors
    async def post(self, request):
        principal = await authenticate(request)
        body = json_object(request)
        model = body.get("model")
        if isinstance(model, str) and await anthropic_native.native_plan(principal, model):
            # What an Anthropic route takes, counted as admission counts it there.
            _validated(body, NativeCountTokensRequestSerializer)
            principal.check_model(model)
            messages = estimate_chat_request({**body, "max_tokens": 1})["messages"]
            total = count_message_tokens(messages, model=model)
        else:
            _validated(body, CountTokensRequestSerializer)
            principal.check_model(model)
            total = count_message_tokens(chat_messages(body), model=model)
            if body.get("tools"):
                # Tools reach the model as their JSON definitions: their text is close.
                total += count_tokens(json.dumps(body["tools"], ensure_ascii=False), model=model)
        metrics.REQUESTS.labels(endpoint=self.endpoint, model=model, status="200").inc()
        return _with_request_id(json_response({"input_tokens": total}), request)


messages_urlpatterns = [
    path("messages", MessagesView.as_view(), name="messages"),
    path("messages/count_tokens", MessageCountTokensView.as_view(), name="messages-count-tokens"),
    re_path(r"^messages/", messages_not_found),
]
