"""Stages the pipeline tests register through ``settings.SYNTHLANG_STAGES``."""

from __future__ import annotations

from common.errors import DomainError
from proxy.pipeline.stage import Stage


class StageRefusal(DomainError):
    code = "permission_denied"
    message = "A test stage refused this request."


class Refuser(Stage):
    """Refuses any request whose last message says "refuse me"."""

    name = "refuser"

    async def on_request(self, call):
        if call.body["messages"][-1].get("content") == "refuse me":
            raise StageRefusal()
        call.annotations[self.name] = {"checked": True}
        return None


class Answerer(Stage):
    """Answers "ping" itself: no later stage and no upstream runs."""

    name = "answerer"

    async def on_request(self, call):
        if call.body["messages"][-1].get("content") != "ping":
            return None
        call.annotations[self.name] = {"answered": True}
        return {
            "id": "chatcmpl-stage",
            "object": "chat.completion",
            "created": 0,
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "pong from a stage"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5},
        }


class Shouter(Stage):
    """Upper-cases every answer; in a stream it holds each content chunk back until the
    next one arrives and releases the two as one (text held across two chunks)."""

    name = "shouter"

    async def on_request(self, call):
        call.stage_state[self.name] = {"requests": 1}
        call.annotations[self.name] = {"level": 3, "on": True}
        return None

    async def on_response(self, call, body):
        choices = [
            {
                **choice,
                "message": {**choice["message"], "content": choice["message"]["content"].upper()},
            }
            for choice in body["choices"]
        ]
        return {**body, "choices": choices}

    def stream_filter(self, call):
        return PairingFilter()


class PairingFilter:
    def __init__(self):
        self.held: dict | None = None
        self.released = 0

    def feed(self, chunk):
        choices = chunk.get("choices") or []
        content = choices[0].get("delta", {}).get("content") if choices else None
        if not content:
            return [chunk]
        upper = _with_content(chunk, content.upper())
        if self.held is None:
            self.held = upper
            return []
        held, self.held = self.held, None
        joined = _content(held) + _content(upper)
        return [_with_content(held, joined)]

    def close(self):
        held, self.held = self.held, None
        return [held] if held is not None else []


def _content(chunk):
    return chunk["choices"][0]["delta"]["content"]


def _with_content(chunk, text):
    choice = chunk["choices"][0]
    return {**chunk, "choices": [{**choice, "delta": {**choice["delta"], "content": text}}]}


class Renamer(Stage):
    """Before admission: the model alias "stage-alias" becomes gpt-4o."""

    name = "renamer"

    async def prepare(self, call):
        if call.model == "stage-alias":
            call.model = "gpt-4o"
            call.body = {**call.body, "model": "gpt-4o"}


class Nameless(Stage):
    pass


not_a_stage = object()


class RedisGone(Stage):
    """Fails as an unreachable Redis would, on a request whose last message says so."""

    name = "redis_gone"

    async def on_request(self, call):
        if call.body["messages"][-1].get("content") == "redis is down":
            import redis.exceptions  # only this test stage needs it

            raise redis.exceptions.ConnectionError("Connection refused")
        return None
