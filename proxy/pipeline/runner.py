"""Runs the stages' hooks on a call (the order is the contract of decision 0027).

prepare, in list order, before admission; on_request, in list order, after it, until one
answers; on_response and stream filters in reverse order, and only for the stages whose
on_request ran, so a stage that changed the request sees the answer to its own change
(a stage listed after the one that answered never saw the request, and is skipped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from common import tracing
from proxy.pipeline.registry import defining_among, stages_for

# Each hook runs in one of two loops: with a span per stage when tracing is on, and bare
# when it is off. The bare loop is the common case; a do-nothing span per stage and hook
# would cost it a few Python calls each, on every request.


def _span(call, stage, hook: str):
    """A stage hook's span (tracing is on). Stream filters, fed per chunk, get none."""
    return tracing.span(
        f"stage {stage.name} {hook}",
        attributes={"synthlang.stage": stage.name, "synthlang.request_id": call.request_id},
    )


async def run_prepare(call) -> None:
    stages = defining_among(stages_for(call.endpoint), "prepare")
    if not tracing.enabled():
        for stage in stages:
            await stage.prepare(call)
        return
    for stage in stages:
        with _span(call, stage, "prepare"):
            await stage.prepare(call)


async def run_on_request(call) -> dict | None:
    """The answer of the stage that answered, if one did (it is named in
    ``call.answered_by``); ``None``: the upstream is to be called.

    Every stage up to the one that answered takes part in the call (``call.stages_ran``):
    one that leaves on_request at the default still sees the answer. Those after it never
    saw the request and are skipped."""
    stages = stages_for(call.endpoint)
    traced = tracing.enabled()
    for stage in defining_among(stages, "on_request"):
        if traced:
            with _span(call, stage, "on_request") as span:
                answer = await stage.on_request(call)
                span.set_attribute("synthlang.stage.answered", answer is not None)
        else:
            answer = await stage.on_request(call)
        if answer is not None:
            call.stages_ran = stages[: stages.index(stage) + 1]
            call.answered_by = stage.name
            return answer
    call.stages_ran = stages
    return None


def _ran_defining(call, hook: str) -> tuple:
    """The stages that took part in the call and define ``hook``, in list order."""
    return defining_among(call.stages_ran, hook)


async def run_on_response(call, body: dict) -> dict:
    stages = reversed(_ran_defining(call, "on_response"))
    if not tracing.enabled():
        for stage in stages:
            body = await stage.on_response(call, body)
        return body
    for stage in stages:
        with _span(call, stage, "on_response"):
            body = await stage.on_response(call, body)
    return body


def wants_complete(call) -> bool:
    """Whether a stage that ran takes the complete answer (so a stream is assembled)."""
    return bool(_ran_defining(call, "on_complete"))


async def run_on_complete(call, body: dict) -> None:
    stages = _ran_defining(call, "on_complete")
    if not tracing.enabled():
        for stage in stages:
            await stage.on_complete(call, body)
        return
    for stage in stages:
        with _span(call, stage, "on_complete"):
            await stage.on_complete(call, body)


def stream_filters(call) -> list:
    """Fresh filters for one stream, outermost (last stage) first."""
    filters = []
    for stage in reversed(_ran_defining(call, "stream_filter")):
        stream_filter = stage.stream_filter(call)
        if stream_filter is not None:
            filters.append(stream_filter)
    return filters


def _through(filters: list, start: int, chunks: Iterable[dict]) -> list[dict]:
    out = list(chunks)
    for stream_filter in filters[start:]:
        passed: list[dict] = []
        for chunk in out:
            passed.extend(stream_filter.feed(chunk))
        out = passed
    return out


def _closing(filters: list) -> list[dict]:
    # What filter i releases on closing enters filter i + 1, which then closes in turn.
    pending: list[dict] = []
    for stream_filter in filters:
        passed: list[dict] = []
        for chunk in pending:
            passed.extend(stream_filter.feed(chunk))
        passed.extend(stream_filter.close())
        pending = passed
    return pending


def filter_stream(call, chunks: AsyncIterator[dict]) -> AsyncIterator[dict]:
    """``chunks`` through the call's stream filters; ``chunks`` itself when none applies
    (the common case costs no extra generator). Closing the result closes ``chunks``."""
    filters = stream_filters(call)
    if not filters:
        return chunks

    async def filtered():
        try:
            async for chunk in chunks:
                for out in _through(filters, 0, [chunk]):
                    yield out
            for out in _closing(filters):
                yield out
        finally:
            await chunks.aclose()

    return filtered()
