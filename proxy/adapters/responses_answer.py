"""A chat answer as a Responses API object, whole (``response_object``) or streamed
(``ResponseEvents``, which turns chat chunks into the Responses event sequence)."""

from __future__ import annotations

import copy
import secrets
import time

from proxy.adapters.responses_request import ResponsesRequest

# Why a chat answer stopped early, as the Responses API says it.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def response_usage(usage: dict | None) -> dict | None:
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": prompt_details.get("cached_tokens") or 0,
            "cache_write_tokens": prompt_details.get("cache_write_tokens") or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": completion_details.get("reasoning_tokens") or 0
        },
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def message_item(item_id: str, text: str, *, refusal: str | None = None, status="completed"):
    if refusal:
        content = [{"type": "refusal", "refusal": refusal}]
    else:
        content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status="completed"):
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def reasoning_of(message: dict) -> str:
    """The reasoning an OpenAI-compatible server puts beside a chat answer (or a delta):
    ``reasoning_content`` (DeepSeek, vLLM, SGLang) or ``reasoning`` (OpenRouter, newer
    vLLM). OpenAI's own chat API returns none."""
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def reasoning_item(item_id: str, text: str, status="completed") -> dict:
    # The model's own reasoning text (``content``), as OpenAI gives an open-weight model's;
    # a summary is something only OpenAI writes.
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content, "status": status}


def output_items(message: dict) -> list[dict]:
    """A chat answer's message as Responses output items: its reasoning, its text, then
    its calls."""
    reasoning = reasoning_of(message)
    items = [reasoning_item(new_id("rs"), reasoning)] if reasoning else []
    text, refusal = message.get("content") or "", message.get("refusal")
    if text or refusal or not message.get("tool_calls"):
        items.append(message_item(new_id("msg"), text, refusal=refusal))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(
            function_call_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name") or "",
                function.get("arguments") or "",
            )
        )
    return items


def history_message(output: list[dict]) -> dict:
    """The output items as the assistant turn of the chat conversation they continue."""
    texts, calls = [], []
    for item in output:
        if item["type"] == "message":
            texts.extend(part.get("text") or part.get("refusal") or "" for part in item["content"])
        elif item["type"] == "function_call":
            calls.append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
    message: dict = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def response_object(
    request: ResponsesRequest,
    *,
    response_id: str,
    created_at: int,
    model: str,
    output: list[dict],
    usage: dict | None,
    status: str = "completed",
    finish_reason: str | None = None,
    error: dict | None = None,
) -> dict:
    incomplete = None
    if status == "completed" and finish_reason in INCOMPLETE_REASONS:
        status = "incomplete"
        incomplete = {"reason": INCOMPLETE_REASONS[finish_reason]}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "prompt": request.prompt,
        "reasoning": {"effort": None, "summary": None},
        "store": request.store,
        "temperature": request.temperature,
        "text": {"format": request.text_format},
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_p": request.top_p,
        "truncation": "disabled",
        "usage": response_usage(usage),
        "user": request.user,
        "metadata": request.metadata,
    }


def response_from_chat(
    request: ResponsesRequest, chat: dict, *, response_id: str, created_at: int
) -> dict:
    choice = (chat.get("choices") or [{}])[0]
    return response_object(
        request,
        response_id=response_id,
        created_at=created_at,
        model=chat.get("model") or request.model,
        output=output_items(choice.get("message") or {}),
        usage=chat.get("usage"),
        finish_reason=choice.get("finish_reason"),
    )


def _part(kind: str, text: str) -> dict:
    if kind == "refusal":
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseEvents:
    """Chat chunks in, Responses stream events out, each with its ``sequence_number``.

    An item opens when its first delta arrives and closes when another item starts or
    the stream ends; ``finish`` closes what is open and gives the terminal event.
    """

    def __init__(self, request: ResponsesRequest, *, response_id: str, created_at: int):
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self.model = request.model
        self.sequence = 0
        self.output: list[dict] = []
        self.text: list[str] = []
        self.message: dict | None = None  # the open message item
        self.part_kind = "output_text"  # its one content part: output_text or refusal
        self.calls: dict[int, dict] = {}  # chat tool-call index -> its open item
        self.open_call: dict | None = None
        self.reasoning: dict | None = None  # the open reasoning item
        self.reasoning_text: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def _event(self, kind: str, **fields) -> dict:
        # A copy: the items go on changing after their event is emitted.
        event = {"type": kind, "sequence_number": self.sequence, **copy.deepcopy(fields)}
        self.sequence += 1
        return event

    def snapshot(self, status: str, **extra) -> dict:
        return response_object(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            output=list(self.output),
            usage=self.usage,
            status=status,
            **extra,
        )

    def start(self) -> list[dict]:
        response = self.snapshot("in_progress")
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def add(self, chunk: dict) -> list[dict]:
        events: list[dict] = []
        if chunk.get("model"):
            self.model = chunk["model"]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # the Responses API has one answer per request
            delta = choice.get("delta") or {}
            if reasoning_of(delta):
                events += self._reasoning(reasoning_of(delta))
            if isinstance(delta.get("content"), str) and delta["content"]:
                events += self._text(delta["content"])
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                events += self._text(delta["refusal"], kind="refusal")
            for call in delta.get("tool_calls") or ():
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _open_message(self, kind: str = "output_text") -> list[dict]:
        self.message = message_item(new_id("msg"), "", status="in_progress")
        self.message["content"] = []
        self.part_kind = kind
        self.output.append(self.message)
        index = len(self.output) - 1
        return [
            self._event("response.output_item.added", output_index=index, item=self.message),
            self._event(
                "response.content_part.added",
                item_id=self.message["id"],
                output_index=index,
                content_index=0,
                part=_part(kind, ""),
            ),
        ]

    def _reasoning(self, delta: str) -> list[dict]:
        events: list[dict] = []
        if self.reasoning is None:
            events += self._close_message() + self._close_call()
            self.reasoning = reasoning_item(new_id("rs"), "", status="in_progress")
            self.output.append(self.reasoning)
            index = len(self.output) - 1
            events += [
                self._event("response.output_item.added", output_index=index, item=self.reasoning),
                self._event(
                    "response.content_part.added",
                    item_id=self.reasoning["id"],
                    output_index=index,
                    content_index=0,
                    part={"type": "reasoning_text", "text": ""},
                ),
            ]
        self.reasoning_text.append(delta)
        events.append(
            self._event(
                "response.reasoning_text.delta",
                item_id=self.reasoning["id"],
                output_index=self.output.index(self.reasoning),
                content_index=0,
                delta=delta,
            )
        )
        return events

    def _close_reasoning(self) -> list[dict]:
        if self.reasoning is None:
            return []
        item, self.reasoning = self.reasoning, None
        text, self.reasoning_text = "".join(self.reasoning_text), []
        part = {"type": "reasoning_text", "text": text}
        item.update(content=[part], status="completed")
        index = self.output.index(item)
        common = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.reasoning_text.done", **common, text=text),
            self._event("response.content_part.done", **common, part=part),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _text(self, delta: str, kind: str = "output_text") -> list[dict]:
        events = self._close_reasoning() + self._close_call()
        if self.message is not None and self.part_kind != kind:
            events += self._close_message()  # a refusal after text (or text after one)
        if self.message is None:
            events += self._open_message(kind)
        self.text.append(delta)
        events.append(
            self._event(
                "response.output_text.delta" if kind == "output_text" else "response.refusal.delta",
                item_id=self.message["id"],
                output_index=self.output.index(self.message),
                content_index=0,
                delta=delta,
                **({"logprobs": []} if kind == "output_text" else {}),
            )
        )
        return events

    def _close_message(self) -> list[dict]:
        if self.message is None:
            return []
        message, self.message = self.message, None
        index = self.output.index(message)
        text, self.text = "".join(self.text), []
        part = _part(self.part_kind, text)
        message.update(content=[part], status="completed")
        common = {"item_id": message["id"], "output_index": index, "content_index": 0}
        if self.part_kind == "output_text":
            done = self._event("response.output_text.done", **common, text=text, logprobs=[])
        else:
            done = self._event("response.refusal.done", **common, refusal=text)
        return [
            done,
            self._event("response.content_part.done", **common, part=part),
            self._event("response.output_item.done", output_index=index, item=message),
        ]

    def _call_delta(self, call: dict) -> list[dict]:
        events: list[dict] = []
        function = call.get("function") or {}
        item = self.calls.get(call.get("index", 0))
        if item is None:
            events += self._close_reasoning() + self._close_message() + self._close_call()
            item = function_call_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name") or "",
                "",
                status="in_progress",
            )
            self.calls[call.get("index", 0)] = item
            self.open_call = item
            self.output.append(item)
            events.append(
                self._event(
                    "response.output_item.added", output_index=len(self.output) - 1, item=item
                )
            )
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self.output.index(item),
                    delta=arguments,
                )
            )
        return events

    def _close_call(self) -> list[dict]:
        if self.open_call is None:
            return []
        item, self.open_call = self.open_call, None
        item["status"] = "completed"
        index = self.output.index(item)
        return [
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def finish(self) -> tuple[list[dict], dict]:
        """Close the open items; the events and the final Response object."""
        events = self._close_reasoning() + self._close_message() + self._close_call()
        # An empty answer is still one (empty) message, as chat's is; reasoning alone too.
        if not any(item["type"] != "reasoning" for item in self.output):
            events += self._open_message() + self._close_message()
        response = response_object(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            output=list(self.output),
            usage=self.usage,
            finish_reason=self.finish_reason,
        )
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return events, self._event(kind, response=response)

    def failed(self, *, code: str, message: str) -> dict:
        response = self.snapshot("failed", error={"code": code, "message": message})
        return self._event("response.failed", response=response)
