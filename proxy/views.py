"""The OpenAI-compatible endpoints. Async end to end: parse, run the gateway, respond."""

from __future__ import annotations

import functools
import json
import logging
import math
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, StreamingHttpResponse
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ValidationError

from accounts.selectors import Principal, aprincipal_for_key, raw_key_from_headers
from common.access_log import call_started
from common.errors import (
    DomainError,
    InvalidJson,
    RequestTooLarge,
    domain_error_from_drf,
    error_response,
)
from common.outages import is_outage_error, unavailable_for
from proxy import accounting, attribution, gateway, metrics, models_catalog
from proxy.call_failures import failures_accounted
from proxy.serializers import (
    ChatCompletionRequestSerializer,
    CompletionRequestSerializer,
    EmbeddingRequestSerializer,
    validate_request,
)

logger = logging.getLogger(__name__)


def _dumps(payload) -> bytes:
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate (JSON may escape one, e.g. half an emoji cut off by an
        # upstream) has no UTF-8 form; ASCII escapes carry it through unchanged.
        return json.dumps(payload, separators=(",", ":")).encode()


def json_response(payload, *, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(_dumps(payload), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def openai_errors(handler):
    """Every failure leaves as OpenAI's error body with OpenAI's status code."""

    @functools.wraps(handler)
    async def wrapper(self, request, *args, **kwargs):
        try:
            return await handler(self, request, *args, **kwargs)
        except DomainError as error:
            _count_refusal(self, error, error.status)
            return error_response(error)
        except Exception as exc:
            if is_outage_error(exc):
                # Redis or the database is unreachable: a 503 the client may retry.
                error = unavailable_for(exc)
                _count_refusal(self, exc, error.status)
                return error_response(error)
            logger.exception("unexpected error in %s", request.path)
            _count_refusal(self, exc, 500)
            return error_response(DomainError())

    return wrapper


def _count_refusal(view, exc: Exception, status: int) -> None:
    # A request refused before it became a call (bad key, bad body) has no usage event and
    # no trustworthy model, but operators still see it in the request count. A call's own
    # failures were counted when it finished (``accounted``).
    if view.endpoint and not getattr(exc, "synthlang_accounted", False):
        metrics.REQUESTS.labels(endpoint=view.endpoint, model="", status=str(status)).inc()


def _refuse_constant(name: str):
    # NaN and Infinity are not JSON (RFC 8259), though Python's parser reads them; OpenAI
    # answers them with a 400, and no upstream would take them.
    raise ValueError(f"{name} is not a valid JSON value")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON but no float: Python reads it as inf, which goes upstream as null.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the range of a number")
    return value


# Built once: json.loads with hooks builds a decoder per call.
_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def json_object(request, *, lone_surrogates: bool = False) -> dict:
    """The request's body, which must be one JSON object in UTF-8; errors in OpenAI's format.

    Text with a lone UTF-16 surrogate (JSON can escape one) cannot be written as UTF-8, so
    the cache key, the database or the upstream request would fail on it later: it is a
    400 unless the endpoint carries such text on purpose (``lone_surrogates``).
    """
    try:
        raw = request.body
    except RequestDataTooBig:
        limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
        raise RequestTooLarge(
            f"The request body is larger than {limit_mb} MB (MAX_REQUEST_BODY_MB)."
        ) from None
    try:
        # Python's parser would read encoded surrogates (and UTF-16) from bytes; the strict
        # codec refuses them.
        document = raw.decode("utf-8-sig", "surrogatepass" if lone_surrogates else "strict")
        body = _STRICT_JSON.decode(document or "null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(f"We could not parse the JSON body of your request. ({exc})") from None
    except RecursionError:
        raise InvalidJson("The JSON body of your request is nested too deeply.") from None
    if not isinstance(body, dict):
        raise InvalidJson("The request body must be a JSON object.")
    if not lone_surrogates and ("\\ud" in document or "\\uD" in document):
        # Only a body with such an escape is checked, so most pay nothing.
        try:
            json.dumps(body, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidJson(
                "The request body contains an unpaired UTF-16 surrogate escape (such as "
                "\\ud83d without its second half, often an emoji cut in two): text must be "
                "valid Unicode."
            ) from None
    return body


def validated(body: dict, serializer_class) -> dict:
    """``body`` itself, once the fields the proxy acts on have passed ``serializer_class``."""
    try:
        validate_request(serializer_class, body)
    except ValidationError as error:
        raise domain_error_from_drf(error) from None
    return body


def parse_body(request, serializer_class) -> dict:
    return validated(json_object(request), serializer_class)


def check_body_size(request, principal: Principal) -> None:
    """Refuse a body larger than the caller's role allows (``<ROLE>_MAX_BODY_MB``), before
    anything parses it: a basic key's 40 MB body costs no JSON decoding and no validation."""
    limit = settings.ROLE_MAX_BODY_BYTES.get(principal.role, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise RequestTooLarge(
            f"The request body is {declared / (1024 * 1024):.1f} MB; the {principal.role} role "
            f"allows at most {limit // (1024 * 1024)} MB."
        )


async def authenticate(request) -> Principal:
    return await aprincipal_for_key(raw_key_from_headers(request.headers))


async def authenticate_sized(request) -> Principal:
    """The caller, once its body is known to be within its role's size limit."""
    principal = await authenticate(request)
    check_body_size(request, principal)
    return principal


def new_call(request, principal: Principal, endpoint: str, body: dict) -> gateway.ProxyCall:
    model = body.get("model") or settings.DEFAULT_MODEL
    stream = bool(body.get("stream"))
    stream_options = body.get("stream_options")
    if not isinstance(stream_options, dict):
        stream_options = {}  # validated where it is used; embeddings never stream
    # The client's x-synthlang-* headers, read once, names lower-cased: the controls below
    # and the stages'. From META: request.headers would build every header's name anew.
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in request.META.items()
        if key.startswith("HTTP_X_SYNTHLANG_")
    }
    return gateway.ProxyCall(
        principal=principal,
        request_id=request.request_id,
        endpoint=endpoint,
        model=model,
        body=attribution.without_recorded_metadata({**body, "model": model}),
        stream=stream,
        client_wants_usage=stream and bool(stream_options.get("include_usage")),
        compression_header=headers.get("x-synthlang-compression", ""),
        cache_header=gateway.cache_control_for(headers.get("x-synthlang-cache", "")),
        end_user=attribution.end_user_from(body),
        metadata=attribution.metadata_from(body),
        tags=attribution.tags_from(headers.get("x-synthlang-tags", "")),
        access=call_started(),
        headers=headers,
    )


def upstream_response(result, call: gateway.ProxyCall) -> HttpResponse:
    """The upstream's answer for the client: its own bytes when it sent OpenAI's format."""
    if result.raw is None:
        return json_response(result.body, headers=call.response_headers())
    response = HttpResponse(result.raw, content_type="application/json")
    for name, value in call.response_headers().items():
        response[name] = value
    return response


def sse_response(call: gateway.ProxyCall, first: dict, iterator) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        gateway.relay_stream(call, first, iterator, _dumps), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    # Reverse proxies such as nginx must pass each event on at once.
    response["X-Accel-Buffering"] = "no"
    for name, value in call.response_headers().items():
        response[name] = value
    return response


async def serve_answer(call: gateway.ProxyCall) -> HttpResponse:
    """An answer given without the upstream: a cache hit or a stage's answer."""
    if call.stream:
        response = StreamingHttpResponse(
            gateway.replay_answer(call, _dumps), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        for name, value in call.response_headers().items():
            response[name] = value
        return response
    body = {**call.answer, "created": int(time.time())}
    call.cost_micros = 0  # no upstream call to pay for
    body = await gateway.response_through_stages(call, body, body.get("usage"))
    gateway.run_in_background(accounting.finish(call, body.get("usage")))
    return json_response(body, headers=call.response_headers())


async def run_call(call: gateway.ProxyCall, kind: str):
    """Chat, legacy completions and embeddings: admission, the cache, the upstream (``kind``
    names the provider method). However the call ends, it leaves one usage event."""
    with failures_accounted(call, call.endpoint):
        plan = await gateway.admit(call)
        if call.answer is not None:
            return await serve_answer(call)
        if call.stream:
            # Always ask for usage, so streamed requests are accounted exactly.
            call.body = {
                **call.body,
                "stream_options": {
                    **(call.body.get("stream_options") or {}),
                    "include_usage": True,
                },
            }
            first, iterator = await gateway.open_stream(call, plan, kind)
            await accounting.resolve_usage_price(call)  # for the cost in the usage chunk
            return sse_response(call, first, iterator)

        async def operation(provider, target):
            return await getattr(provider, kind)(target, call.body)

        result = await gateway.run_json(call, plan, operation)
        return upstream_response(result, call)


class ProxyEndpoint(View):
    """Base of the API views: no CSRF (key-authenticated), errors in OpenAI's format."""

    # The endpoint label of the request metrics; empty for views that proxy nothing.
    endpoint = ""

    @classmethod
    def as_view(cls, **initkwargs):
        # Exempted once, here: ``method_decorator`` on ``dispatch`` would decorate anew on
        # every request (2% of a request's time on the event loop).
        return csrf_exempt(super().as_view(**initkwargs))

    def setup(self, request, *args, **kwargs):
        # Not View.setup, which aliases ``head`` to ``get`` on the instance: a reference
        # cycle (view, bound method, view) holding the request until the garbage collector
        # runs. The API serves no HEAD; ``http_method_names`` says which methods it does.
        if not settings.SYNTHLANG_FAST_PATHS:
            super().setup(request, *args, **kwargs)
            return
        self.request = request
        self.args = args
        self.kwargs = kwargs

    def http_method_not_allowed(self, request, *args, **kwargs):
        error = DomainError(f"{request.method} is not allowed on {request.path}.")
        error.code = "method_not_allowed"
        response = error_response(error)
        response["Allow"] = ", ".join(m.upper() for m in self._allowed_methods())

        async def respond():
            return response

        return respond()


class ChatCompletionsView(ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "chat.completions"

    @openai_errors
    async def post(self, request):
        principal = await authenticate_sized(request)
        body = parse_body(request, ChatCompletionRequestSerializer)
        call = new_call(request, principal, self.endpoint, body)
        return await run_call(call, "chat")


class CompletionsView(ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "completions"

    @openai_errors
    async def post(self, request):
        principal = await authenticate_sized(request)
        body = parse_body(request, CompletionRequestSerializer)
        call = new_call(request, principal, self.endpoint, body)
        return await run_call(call, "completions")


class EmbeddingsView(ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "embeddings"

    @openai_errors
    async def post(self, request):
        principal = await authenticate_sized(request)
        body = parse_body(request, EmbeddingRequestSerializer)
        call = new_call(request, principal, self.endpoint, body)
        call.stream = False
        return await run_call(call, "embeddings")


class ModelsView(ProxyEndpoint):
    http_method_names = ["get"]

    @openai_errors
    async def get(self, request):
        principal = await authenticate(request)
        models = await models_catalog.models_for(principal)
        return json_response({"object": "list", "data": models})


class ModelDetailView(ProxyEndpoint):
    http_method_names = ["get"]

    @openai_errors
    async def get(self, request, model_id: str):
        principal = await authenticate(request)
        for model in await models_catalog.models_for(principal):
            if model["id"] == model_id:
                return json_response(model)
        error = DomainError(
            f"The model '{model_id}' does not exist or you do not have access to it.", param="model"
        )
        error.code = "model_not_found"
        raise error
