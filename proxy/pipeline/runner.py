"""Runs the stages' hooks on a call (the order is the contract of decision 0027).

prepare, in list order, before admission; on_request, in list order, after it, until one
answers; on_response and stream filters in reverse order, and only for the stages whose
on_request ran, so a stage that changed the request sees the answer to its own change
(a stage listed after the one that answered never saw the request, and is skipped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from proxy.pipeline.registry import stages_for
from proxy.pipeline.stage import Stage


async def run_prepare(call) -> None:
    for stage in stages_for(call.endpoint):
        await stage.prepare(call)


async def run_on_request(call) -> dict | None:
    """The answer of the stage that answered, if one did (it is named in
    ``call.answered_by``); ``None``: the upstream is to be called."""
    for stage in stages_for(call.endpoint):
        call.stages_ran.append(stage)
        answer = await stage.on_request(call)
        if answer is not None:
            call.answered_by = stage.name
            return answer
    return None


async def run_on_response(call, body: dict) -> dict:
    for stage in reversed(call.stages_ran):
        body = await stage.on_response(call, body)
    return body


def wants_complete(call) -> bool:
    """Whether a stage that ran takes the complete answer (so a stream is assembled)."""
    return any(type(stage).on_complete is not Stage.on_complete for stage in call.stages_ran)


async def run_on_complete(call, body: dict) -> None:
    for stage in call.stages_ran:
        await stage.on_complete(call, body)


def stream_filters(call) -> list:
    """Fresh filters for one stream, outermost (last stage) first."""
    filters = []
    for stage in reversed(call.stages_ran):
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
