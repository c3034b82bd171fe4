"""Anthropic's Messages API on the chat pipeline: a Messages request becomes a chat
completions body, and the chat answer becomes a Message.

Pure functions, no I/O, on bodies that ``anthropic_validation`` passed: the view runs the
translated body through the same pipeline as ``/v1/chat/completions`` (admission,
compression, cache, upstream, accounting). What does not translate (server tools, URL
documents, the ``thinking`` budget) is listed in the README. Reasoning that the chat
upstream returns beside its answer comes back as ``thinking`` blocks when the request
asked for thinking.
"""

from __future__ import annotations

import json
import uuid

from common.errors import InvalidRequest
from proxy.adapters.responses_answer import reasoning_of

# chat finish_reason -> Messages stop_reason. A chat upstream does not say whether "stop"
# came from a stop sequence, so a translated answer reports end_turn for both.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


# --- Request: Messages -> chat ------------------------------------------------------------


def _text(value) -> str:
    """The text of a string or of the text blocks of a list."""
    if isinstance(value, str):
        return value
    return "\n\n".join(
        block.get("text", "")
        for block in value or []
        if isinstance(block, dict) and block.get("type") == "text"
    )


def _image_part(block: dict) -> dict:
    source = block["source"]
    if source["type"] == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    else:
        url = source.get("url", "")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict) -> dict:
    """A document as chat takes it: its text, or a PDF as a file part."""
    source = block["source"]
    if source["type"] == "base64":
        media_type = source.get("media_type", "application/pdf")
        return {
            "type": "file",
            "file": {
                "filename": block.get("title") or "document.pdf",
                "file_data": f"data:{media_type};base64,{source.get('data', '')}",
            },
        }
    text = source.get("data") if source["type"] == "text" else _text(source.get("content"))
    title = block.get("title")
    return {"type": "text", "text": f"{title}\n\n{text}" if title else str(text or "")}


def _tool_result_messages(block: dict) -> tuple[dict, list[dict]]:
    """A tool_result block as a chat ``tool`` message, and the images it carried (a chat
    tool message holds text only, so they follow in a user turn)."""
    content = block.get("content")
    images = []
    if isinstance(content, list):
        images = [
            _image_part(b) for b in content if isinstance(b, dict) and b.get("type") == "image"
        ]
    text = _text(content) if content is not None else ""
    if block.get("is_error"):
        # The model must know the call failed; chat has no flag for it.
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}, images


def _user_messages(content) -> list[dict]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    # Anthropic puts tool results in the user turn; chat wants each as a tool message
    # right after the assistant's calls, before any new user text.
    out: list[dict] = []
    parts: list[dict] = []
    for block in content:
        if block["type"] == "tool_result":
            message, images = _tool_result_messages(block)
            out.append(message)
            parts.extend(images)
        elif block["type"] == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif block["type"] == "image":
            parts.append(_image_part(block))
        elif block["type"] == "document":
            parts.append(_document_part(block))
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content) -> dict | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = "".join(block["text"] for block in content if block["type"] == "text")
    calls = [
        {
            "id": block["id"],
            "type": "function",
            "function": {
                "name": block["name"],
                "arguments": json.dumps(block["input"], ensure_ascii=False),
            },
        }
        for block in content
        if block["type"] == "tool_use"
    ]
    if not text and not calls:
        return None  # only thinking blocks: nothing a chat upstream can take
    message: dict = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: dict) -> dict:
    function = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: dict, chat: dict) -> None:
    kind = choice["type"]
    if kind == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") and kind != "none":
        chat["parallel_tool_calls"] = False


def chat_messages(body: dict) -> list[dict]:
    """The chat ``messages`` of a validated Messages (or count_tokens) body."""
    messages: list[dict] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for message in body["messages"]:
        if message["role"] == "user":
            messages.extend(_user_messages(message["content"]))
        else:
            translated = _assistant_message(message["content"])
            if translated is not None:
                messages.append(translated)
    if not messages:
        raise InvalidRequest("messages: there is no text to send", param="messages")
    return messages


def chat_request(body: dict) -> dict:
    """A validated Messages request as a chat completions body.

    ``top_k`` has no chat equivalent and is left out; ``metadata.user_id`` becomes chat's
    ``user``. Prompt-cache breakpoints (``cache_control``) only mean something to
    Anthropic, whose routes get the request as it is (native pass-through).
    """
    chat: dict = {
        "model": body["model"],
        "messages": chat_messages(body),
        "max_tokens": body["max_tokens"],
    }
    if body.get("stream"):
        chat["stream"] = True
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    if body.get("tools"):
        chat["tools"] = [_tool(tool) for tool in body["tools"]]
        if body.get("tool_choice"):
            _tool_choice(body["tool_choice"], chat)
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        chat["user"] = user_id
    return chat


# --- Answer: chat -> Message --------------------------------------------------------------


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def messages_usage(usage: dict | None) -> dict:
    """Chat usage in Anthropic's terms: ``input_tokens`` leaves out the tokens read from
    or written to the provider's prompt cache, which have fields of their own."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    read = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    read = _count(usage.get("cache_read_input_tokens")) or read
    write = _count(usage.get("cache_creation_input_tokens"))
    return {
        "input_tokens": max(prompt - read - write, 0),
        "output_tokens": _count(usage.get("completion_tokens")),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def tool_input(arguments) -> dict:
    """A tool call's JSON arguments as the object a tool_use block holds."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def stop_reason(finish_reason) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def thinking_requested(body: dict) -> bool:
    """Whether a Messages request asked for the model's thinking: only then does Anthropic
    answer with thinking blocks, and only then does a translated answer carry them."""
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def thinking_block(text: str) -> dict:
    # Anthropic signs its thinking so that it can check the block when it is sent back; an
    # OpenAI-compatible upstream's reasoning has no signature, and a translated turn
    # leaves earlier thinking blocks out, so nothing checks it: the field is empty.
    return {"type": "thinking", "thinking": text, "signature": ""}


def message_from_chat(
    answer: dict, *, model: str, id_: str | None = None, thinking: bool = False
) -> dict:
    """A chat.completion as a Messages ``message`` (its first choice); with ``thinking``,
    the reasoning beside the answer as a thinking block before it."""
    choices = answer.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict] = []
    reasoning = reasoning_of(message) if thinking else ""
    if reasoning:
        content.append(thinking_block(reasoning))
    if message.get("content"):
        content.append({"type": "text", "text": _text(message["content"])})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    return {
        "id": id_ or message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": messages_usage(answer.get("usage")),
    }


def _block_estimate_text(block: dict) -> str:
    if isinstance(block.get("text"), str):
        return block["text"]
    if block.get("type") in ("image", "document") and isinstance(block.get("source"), dict):
        return ""  # priced per image or page upstream, not by its encoded bytes
    if block.get("type") == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return "\n".join(_block_estimate_text(b) for b in content if isinstance(b, dict))
        return str(content or "")
    return json.dumps(block, ensure_ascii=False)


def estimate_chat_request(body: dict) -> dict:
    """A chat body with the text of any Messages request, for admission to count (the
    request itself goes to Anthropic untranslated)."""
    messages = []
    system = body.get("system")
    if system:
        text = (
            system
            if isinstance(system, str)
            else "\n\n".join(_block_estimate_text(b) for b in system if isinstance(b, dict))
        )
        messages.append({"role": "system", "content": text or "-"})
    for message in body["messages"]:
        content = message["content"]
        if not isinstance(content, str):
            content = "\n".join(_block_estimate_text(block) for block in content)
        messages.append({"role": message["role"], "content": content or "-"})
    if body.get("tools"):
        messages.append(
            {"role": "system", "content": json.dumps(body["tools"], ensure_ascii=False)}
        )
    chat = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    if body.get("stream"):
        chat["stream"] = True
    return chat
