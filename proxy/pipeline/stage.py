"""The contract every pipeline stage implements (docs/decisions/0027).

A stage is one module's worth of request or response work (compression, the response
cache, a guardrail). Stages are listed in ``settings.SYNTHLANG_STAGES``; the runner
(``proxy.pipeline.runner``) calls their hooks. Every hook is optional: the base class does
nothing, so a stage overrides only what it acts on.
"""

from __future__ import annotations

from typing import Protocol


class StreamFilter(Protocol):
    """Sees every chat.completion.chunk of one stream, in order.

    ``feed`` returns the chunks to pass on now (none, to hold text back; several, to
    release what it held); ``close`` returns what is still held when the stream ends.
    """

    def feed(self, chunk: dict) -> list[dict]: ...

    def close(self) -> list[dict]: ...


class Stage:
    name: str = ""  # short label: metrics, usage events, access line ("pii", "cache")
    endpoints: frozenset[str] = frozenset({"chat.completions"})  # call.endpoint values it acts on

    async def prepare(self, call) -> None:
        """Before admission (model access, rate limits, budget). May replace call.body (assign a
        new dict, never mutate the client's) and call.model. Example: render a stored prompt."""

    async def on_request(self, call) -> dict | None:
        """After admission, before the upstream, in list order. May replace call.body, refuse by
        raising a common.errors.DomainError subclass (the client gets it in its own wire format),
        or answer by returning a chat.completion body (no later stage and no upstream runs)."""
        return None

    async def on_response(self, call, body: dict) -> dict:
        """A whole chat.completion answer, in reverse list order; returns what the client gets."""
        return body

    async def requires_translation(self, call) -> bool:
        """Whether this stage must read this call's request as chat. A Responses request to
        a route that speaks Responses, or a Messages request to an Anthropic route, is passed
        through untranslated, and the stages then see only an estimate of it (they may refuse
        it, but their rewrites and answer hooks do not apply): True makes it translated, so
        the stage reads (and may change) the real request and its answer. Example: a PII
        mask the call's organization turned on."""
        return False

    async def on_complete(self, call, body: dict) -> None:
        """A complete answer from the upstream (a JSON answer, or a stream that finished,
        assembled into a chat.completion), as the upstream gave it, before any
        on_response; after the client has it, in the background, in list order. Example:
        the cache stores it. Never called for an answer a stage gave."""

    def stream_filter(self, call) -> StreamFilter | None:
        """For a stream: a fresh object with feed(chunk: dict) -> list[dict] and
        close() -> list[dict], seeing every chat.completion.chunk in order; it may hold text back
        (a placeholder split across two chunks) and release it later. None: not involved."""
        return None
