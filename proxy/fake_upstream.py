"""A local OpenAI-compatible upstream over real HTTP, for tests and benchmarks.

``python -m proxy.fake_upstream --port 9100 [--require-key KEY] [--chunk-delay-ms 5]``

It answers like the in-process ``fake`` provider (same bodies, same staged
failures by model name) and adds what only a real server can show: which provider
key reached it, how many requests it saw, and whether a stream was abandoned by
its client (the proxy must close the upstream request when its own client leaves).
Model ``fake-flaky-<n>`` fails with 503 on its first n requests, then succeeds.

It serves moderations, images, audio, files and batches too (``fake_upstream_surface``).
It speaks OpenAI's Responses API (``POST /v1/responses``, JSON and streamed, answering
with the fake's chat answer in that format; it keeps nothing, as with ``store: false``).
It also speaks Anthropic's Messages API (``POST /v1/messages``, key in ``x-api-key``),
so a route with provider ``anthropic`` can point at it; both dialects report prompt
caching as the providers do (``proxy.providers.fake_cache``), per upstream key. Azure
OpenAI's chat path (``/openai/deployments/<name>/chat/completions?api-version=...``, key
in ``api-key``) answers as chat does, and its v1 Responses path
(``/openai/v1/responses``, the deployment as the body's model) as ``/v1/responses`` does,
so a route with provider ``azure`` can point at it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import time
from collections import Counter

from aiohttp import web

from proxy.fake_upstream_surface import FakeUpstreamSurface

_FLAKY = re.compile(r"fake-flaky-(\d+)")


def _fake():
    # Imported late: the module needs Django settings, set up by main().
    from proxy.providers import fake

    return fake


def _client_key(request: web.Request) -> str:
    authorization = request.headers.get("Authorization", "")
    bearer = authorization.removeprefix("Bearer ").strip()
    return bearer or request.headers.get("x-api-key") or request.headers.get("api-key", "")


# The built-in tools the fake "runs"; any other (image generation, computer use...) is
# refused with a 400, as a server without it refuses it.
FAKE_BUILT_IN_TOOLS = frozenset({"web_search", "web_search_preview", "file_search"})


def _built_in_calls(tools: list[dict]) -> list[dict]:
    """One completed call item per built-in tool offered (``web_search`` gives a
    ``web_search_call``; a dated name such as ``web_search_preview`` keeps its stem)."""
    items = []
    for number, tool in enumerate(tools):
        kind = str(tool.get("type") or "tool").removesuffix("_preview")
        items.append(
            {"type": f"{kind}_call", "id": f"{kind[:2]}_fake{number}", "status": "completed"}
        )
    return items


class FakeUpstream(FakeUpstreamSurface):
    def __init__(self, *, require_key: str = "", chunk_delay_ms: float = 0.0):
        self.require_key = require_key
        self.chunk_delay = chunk_delay_ms / 1000
        self.requests: Counter[str] = Counter()
        self.keys_seen: Counter[str] = Counter()
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_abandoned = 0
        self.flaky_seen: Counter[str] = Counter()
        self.last_bodies: dict[str, dict] = {}
        # The request id and trace context of the last request per model.
        self.last_trace: dict[str, dict] = {}

    def app(self) -> web.Application:
        # OpenAI takes request bodies of tens of MB (images); aiohttp's default is 1 MB.
        app = web.Application(client_max_size=128 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.azure_chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/openai/v1/responses", self.responses)  # Azure's v1 surface
        app.router.add_get("/v1/models", self.models)
        self.add_surface_routes(app)
        app.router.add_get("/_stats", self.stats)
        app.router.add_post("/_reset", self.reset)
        return app

    def _error(self, status: int, message: str) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": "fake_error", "param": None, "code": None}},
            status=status,
        )

    async def _check(
        self, request: web.Request, model: str, body: dict | None = None
    ) -> web.Response | None:
        self.requests[f"{request.path} {model}"] += 1
        self.last_trace[model] = {
            name: request.headers.get(name, "")
            for name in ("x-request-id", "traceparent", "tracestate")
        }
        if body is not None:
            self.last_bodies[model] = body
        key = _client_key(request)
        self.keys_seen[key[-4:] if key else ""] += 1
        if self.require_key and key != self.require_key:
            return self._error(401, "Incorrect API key provided.")
        fake = _fake()
        status = fake.staged_failure(model)
        latency = fake.staged_latency_ms(model)
        if latency:
            await asyncio.sleep(latency / 1000)
        flaky = _FLAKY.fullmatch(model)
        if flaky:
            self.flaky_seen[model] += 1
            if self.flaky_seen[model] <= int(flaky.group(1)):
                return web.json_response(
                    {"error": {"message": "flaky"}}, status=503, headers={"retry-after-ms": "10"}
                )
        if status is not None:
            return self._error(status, f"staged failure {status}")
        return None

    async def _stream(self, request: web.Request, chunks, model: str) -> web.StreamResponse:
        # A slow model is slow between chunks too (a tenth of its first-byte latency).
        delay = self.chunk_delay or _fake().staged_latency_ms(model) / 10000
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.streams_started += 1
        try:
            for chunk in chunks:
                if delay:
                    await asyncio.sleep(delay)
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            self.streams_completed += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_abandoned += 1
            raise
        return response

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return await self._chat(request, body, str(body.get("model", "")))

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        """Azure OpenAI's chat: the deployment in the path (the body has no model), the API
        version in the query string, the key in ``api-key``."""
        if not request.query.get("api-version"):
            return self._error(404, "Resource not found (no api-version).")
        body = await request.json()
        deployment = request.match_info["deployment"]
        self.last_bodies[f"azure:{deployment}"] = {
            **body,
            "_api_version": request.query["api-version"],
        }
        return await self._chat(request, body, deployment)

    async def _chat(self, request: web.Request, body: dict, model: str) -> web.StreamResponse:
        refused = await self._check(request, model, body)
        if refused is not None:
            return refused
        fake = _fake()
        scope = _client_key(request)
        try:
            if body.get("stream"):
                chunks = fake.chat_chunks(body, model=model, cache_scope=scope)
                return await self._stream(request, chunks, model)
            return web.json_response(fake.chat_body(body, model=model, cache_scope=scope))
        except fake.FakeRequestError as error:
            return web.json_response(error.body(), status=400)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API, with Anthropic's error shape."""
        from proxy.providers.fake_cache import CacheMarkerError

        body = await request.json()
        model = str(body.get("model", ""))
        refused = await self._check(request, model, body)
        if refused is not None:
            return refused
        fake = _fake()
        scope = _client_key(request)
        try:
            if not body.get("stream"):
                return web.json_response(fake.messages_body(body, cache_scope=scope))
            events = list(fake.messages_events(body, cache_scope=scope))
        except CacheMarkerError as error:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": str(error)},
                },
                status=400,
            )
        return await self._stream_events(request, events, model)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API: the fake's chat answer, in that API's format."""
        from common.errors import DomainError
        from proxy.adapters import responses_answer
        from proxy.adapters.responses_request import responses_request

        body = await request.json()
        model = str(body.get("model", ""))
        refused = await self._check(request, model, body)
        if refused is not None:
            return refused
        fake = _fake()
        scope = _client_key(request)
        # A built-in tool (web search, file search...) is "run" once per request: its call
        # item leads the output, as a provider's does, and the answer follows.
        built_in = [
            tool
            for tool in body.get("tools") or ()
            if isinstance(tool, dict) and tool.get("type") in FAKE_BUILT_IN_TOOLS
        ]
        if built_in:
            body = {**body, "tools": [tool for tool in body["tools"] if tool not in built_in]}
            if not body["tools"]:
                del body["tools"]
                body.pop("tool_choice", None)
        try:
            parsed = responses_request(body, default_model=model, history=[])
            response_id = responses_answer.new_id("resp")
            created_at = int(time.time())
            if not parsed.stream:
                answer = fake.chat_body(parsed.chat_body, model=model, cache_scope=scope)
                response = responses_answer.response_from_chat(
                    parsed, answer, response_id=response_id, created_at=created_at
                )
                response["output"][:0] = _built_in_calls(built_in)
                return web.json_response(response)
            chat_body = {**parsed.chat_body, "stream_options": {"include_usage": True}}
            chunks = list(fake.chat_chunks(chat_body, model=model, cache_scope=scope))
        except DomainError as error:
            return self._error(400, error.message)
        except fake.FakeRequestError as error:
            return web.json_response(error.body(), status=400)
        translator = responses_answer.ResponseEvents(
            parsed, response_id=response_id, created_at=created_at
        )
        events = translator.start()
        for chunk in chunks:
            events += translator.add(chunk)
        closing, final = translator.finish()
        # The tool items only in the final Response: what a client reads to know the calls.
        final["response"]["output"][:0] = _built_in_calls(built_in)
        events += [*closing, final]
        return await self._stream_events(request, [(e["type"], e) for e in events], model)

    async def _stream_events(self, request: web.Request, events, model: str):
        delay = self.chunk_delay or _fake().staged_latency_ms(model) / 10000
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.streams_started += 1
        try:
            for name, data in events:
                if delay:
                    await asyncio.sleep(delay)
                payload = f"event: {name}\ndata: {json.dumps(data)}\n\n"
                await response.write(payload.encode())
            self.streams_completed += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_abandoned += 1
            raise
        return response

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        refused = await self._check(request, model)
        if refused is not None:
            return refused
        fake = _fake()
        if body.get("stream"):
            return await self._stream(request, fake.completion_chunks(body, model=model), model)
        return web.json_response(fake.completion_body(body, model=model))

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = str(body.get("model", ""))
        refused = await self._check(request, model, body)
        if refused is not None:
            return refused
        fake = _fake()
        try:
            return web.json_response(fake.embedding_body(body, model=model))
        except fake.FakeRequestError as error:
            return web.json_response(error.body(), status=400)

    async def models(self, request: web.Request) -> web.Response:
        refused = await self._check(request, "-")
        if refused is not None:
            return refused
        return web.json_response({"object": "list", "data": _fake().model_list()})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": dict(self.requests),
                "keys_seen": dict(self.keys_seen),
                "streams_started": self.streams_started,
                "streams_completed": self.streams_completed,
                "streams_abandoned": self.streams_abandoned,
                "last_bodies": self.last_bodies,
                "last_trace": self.last_trace,
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        from proxy.providers.fake_cache import prompt_caches_clear

        self.__init__(require_key=self.require_key, chunk_delay_ms=self.chunk_delay * 1000)
        prompt_caches_clear()
        return web.json_response({"ok": True})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--require-key", default="")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()
    upstream = FakeUpstream(require_key=args.require_key, chunk_delay_ms=args.chunk_delay_ms)
    # A test server stops at once: requests still hanging on purpose (``fake-slow-*``) are
    # not waited for.
    web.run_app(
        upstream.app(),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        shutdown_timeout=0.5,
    )


if __name__ == "__main__":
    main()
