"""OpenAI's Responses API request, checked and translated into a chat-completions body.

Pure functions, no I/O: the view loads the previous response's conversation (if any)
and passes it in. Errors name the Responses field (``input[2].call_id``), not the chat
field it became, so the client sees its own request in them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.errors import InvalidRequest

INPUT_ROLES = ("user", "system", "developer", "assistant")
TOOL_CHOICE_MODES = ("auto", "none", "required")
METADATA_MAX_KEYS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512
# Fields with the same name and meaning in chat completions.
PASSED_THROUGH = ("prompt_cache_key", "safety_identifier", "service_tier")
# Fields of the Responses API that need a server-side feature the proxy does not have.
UNSUPPORTED_FIELDS = {
    "background": "Background responses are not supported by this proxy.",
    "conversation": "Conversations are not supported; use previous_response_id.",
}


@dataclass
class ResponsesRequest:
    """What the adapter needs besides the chat body: the fields echoed in the answer."""

    model: str
    stream: bool
    store: bool
    instructions: str | None
    previous_response_id: str | None
    metadata: dict
    tools: list
    tool_choice: str | dict
    text_format: dict
    parallel_tool_calls: bool
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    user: str | None
    prompt: dict | None  # the client's reference to a stored prompt, echoed in the answer
    # The conversation so far as chat messages (the previous response's and this input),
    # without the instructions, which do not carry over to the next turn.
    history: list[dict]
    chat_body: dict


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _optional_number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"'{name}' must be a number.", name)
    if not low <= value <= high:
        raise _invalid(f"'{name}' must be between {low:g} and {high:g}.", name)
    return value


def _optional_string(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"'{name}' must be a string.", name)
    return value


def _optional_bool(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"'{name}' must be a boolean.", name)
    return value


def _metadata(body: dict) -> dict:
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("'metadata' must be an object of strings.", "metadata")
    if len(value) > METADATA_MAX_KEYS:
        raise _invalid(f"'metadata' may have at most {METADATA_MAX_KEYS} keys.", "metadata")
    for key, item in value.items():
        if len(key) > METADATA_KEY_MAX or not isinstance(item, str):
            raise _invalid(
                f"'metadata' keys are strings of at most {METADATA_KEY_MAX} characters and "
                "values are strings.",
                "metadata",
            )
        if len(item) > METADATA_VALUE_MAX:
            raise _invalid(
                f"'metadata' values may have at most {METADATA_VALUE_MAX} characters.", "metadata"
            )
    return value


# --- Input items -> chat messages ------------------------------------------------------


def _text_of_parts(parts: list, param: str, *, allowed: tuple[str, ...]) -> str:
    texts = []
    for position, part in enumerate(parts):
        where = f"{param}[{position}]"
        if not isinstance(part, dict) or part.get("type") not in allowed:
            raise _invalid(f"Content parts here must be one of: {', '.join(allowed)}.", where)
        text = part.get("refusal") if part.get("type") == "refusal" else part.get("text")
        if not isinstance(text, str):
            raise _invalid("A text content part needs a string 'text'.", where)
        texts.append(text)
    return "".join(texts)


def _user_parts(parts: list, param: str) -> list[dict]:
    converted = []
    for position, part in enumerate(parts):
        where = f"{param}[{position}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            if not isinstance(part.get("text"), str):
                raise _invalid("An input_text part needs a string 'text'.", where)
            converted.append({"type": "text", "text": part["text"]})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise _invalid(
                    "An input_image part needs an 'image_url' (file_id is not supported).", where
                )
            image = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            converted.append({"type": "image_url", "image_url": image})
        else:
            raise _invalid("Content parts must be input_text or input_image.", where)
    return converted


def _message(item: dict, param: str) -> dict:
    role = item.get("role")
    if role not in INPUT_ROLES:
        raise _invalid(f"'role' must be one of {', '.join(INPUT_ROLES)}.", f"{param}.role")
    content = item.get("content")
    where = f"{param}.content"
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _invalid("'content' must be a string or a list of content parts.", where)
    if role == "user":
        return {"role": role, "content": _user_parts(content, where)}
    allowed = ("output_text", "refusal") if role == "assistant" else ("input_text",)
    return {"role": role, "content": _text_of_parts(content, where, allowed=allowed)}


def _string_field(item: dict, name: str, param: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"'{name}' must be a non-empty string.", f"{param}.{name}")
    return value


def _function_call(item: dict, param: str) -> dict:
    arguments = item.get("arguments")
    if not isinstance(arguments, str):
        raise _invalid("'arguments' must be a string of JSON.", f"{param}.arguments")
    return {
        "id": _string_field(item, "call_id", param),
        "type": "function",
        "function": {"name": _string_field(item, "name", param), "arguments": arguments},
    }


def _function_output(item: dict, param: str) -> dict:
    call_id = _string_field(item, "call_id", param)
    output = item.get("output")
    if isinstance(output, list):
        output = _text_of_parts(output, f"{param}.output", allowed=("input_text",))
    if not isinstance(output, str):
        raise _invalid("'output' must be a string.", f"{param}.output")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def input_messages(value) -> list[dict]:
    """``input`` (a string or a list of items) as chat messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise _invalid("'input' must be a string or a list of input items.", "input")
    messages: list[dict] = []
    for position, item in enumerate(value):
        param = f"input[{position}]"
        if not isinstance(item, dict):
            raise _invalid("Each input item must be an object.", param)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = _function_call(item, param)
            last = messages[-1] if messages else None
            # A model's turn is one assistant message with all its calls, as chat has it.
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(_function_output(item, param))
        elif kind == "reasoning":
            continue  # a model's reasoning summary: nothing a chat upstream takes back
        else:
            raise _invalid(f"Input items of type '{kind}' are not supported.", f"{param}.type")
    return messages


# --- A stored prompt -------------------------------------------------------------------


def _prompt_variable(value, param: str):
    """A variable's value as the prompt library takes it: OpenAI's ``input_text`` part is
    its text; images and files have no place in a text template."""
    if isinstance(value, dict):
        if value.get("type") == "input_text" and isinstance(value.get("text"), str):
            return value["text"]
        raise _invalid("Prompt variables must be text (a string or an input_text part).", param)
    return value  # strings, numbers, booleans; the library refuses anything else


def library_prompt(value) -> dict | None:
    """OpenAI's ``prompt`` ({"id", "version", "variables"}) as the reference the
    ``prompts`` stage reads in a chat body: a version of digits is a version number, any
    other version names a label (``label`` is accepted too). The stage finds the prompt and
    renders it, and its errors name the same fields."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("'prompt' must be an object with an 'id'.", "prompt")
    reference = dict(value)
    version = reference.get("version")
    if version is None:
        reference.pop("version", None)
    elif isinstance(version, str) and version and not version.isdigit():
        if reference.get("label") is not None:
            raise _invalid("Give prompt.version or prompt.label, not both.", "prompt.version")
        reference["label"] = reference.pop("version")
    variables = reference.get("variables")
    if variables is None:
        reference.pop("variables", None)
    elif isinstance(variables, dict):
        reference["variables"] = {
            name: _prompt_variable(item, f"prompt.variables.{name}")
            for name, item in variables.items()
        }
    return reference


# --- Tools and output format ----------------------------------------------------------


def _chat_tools(value) -> tuple[list, list]:
    """The tools as the client sent them (echoed back) and as chat takes them."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise _invalid("'tools' must be a list.", "tools")
    chat_tools = []
    for position, tool in enumerate(value):
        param = f"tools[{position}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _invalid(f"Only function tools are supported (not '{kind}').", f"{param}.type")
        function = {"name": _string_field(tool, "name", param)}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        chat_tools.append({"type": "function", "function": function})
    return value, chat_tools


def _chat_tool_choice(value, tool_names: set[str]):
    if value is None or value in TOOL_CHOICE_MODES:
        return value
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if name not in tool_names:
            raise _invalid("'tool_choice.name' must name one of the tools.", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    raise _invalid(
        "'tool_choice' must be auto, none, required or {type: function, name}.", "tool_choice"
    )


def _text_format(value) -> tuple[dict, dict | None]:
    """``text.format`` as echoed back, and the chat ``response_format`` it becomes."""
    if value is None:
        return {"type": "text"}, None
    if not isinstance(value, dict):
        raise _invalid("'text' must be an object.", "text")
    text_format = value.get("format")
    if text_format is None:
        return {"type": "text"}, None
    kind = text_format.get("type") if isinstance(text_format, dict) else None
    if kind == "text":
        return text_format, None
    if kind == "json_object":
        return text_format, {"type": "json_object"}
    if kind == "json_schema":
        schema = text_format.get("schema")
        if not isinstance(schema, dict):
            raise _invalid("'text.format.schema' must be a JSON schema.", "text.format.schema")
        json_schema = {"name": _string_field(text_format, "name", "text.format"), "schema": schema}
        for name in ("description", "strict"):
            if text_format.get(name) is not None:
                json_schema[name] = text_format[name]
        return text_format, {"type": "json_schema", "json_schema": json_schema}
    raise _invalid("'text.format.type' must be text, json_object or json_schema.", "text.format")


# --- The whole request ----------------------------------------------------------------


def responses_request(body: dict, *, default_model: str, history: list[dict]) -> ResponsesRequest:
    """Check ``body`` and build its chat body; ``history`` is the previous response's
    conversation (empty without ``previous_response_id``)."""
    for name, reason in UNSUPPORTED_FIELDS.items():
        if body.get(name):
            raise _invalid(reason, name)
    model = _optional_string(body, "model") or default_model
    prompt = library_prompt(body.get("prompt"))
    client_input = body.get("input")
    if client_input in (None, "", []):
        if prompt is None:
            raise _invalid("'input' is required.", "input")
        client_input = []  # the stored prompt's messages are the whole input
    instructions = _optional_string(body, "instructions")
    user = _optional_string(body, "user")
    temperature = _optional_number(body, "temperature", 0, 2)
    top_p = _optional_number(body, "top_p", 0, 1)
    max_output_tokens = body.get("max_output_tokens")
    if max_output_tokens is not None and (
        isinstance(max_output_tokens, bool)
        or not isinstance(max_output_tokens, int)
        or max_output_tokens < 1
    ):
        raise _invalid("'max_output_tokens' must be a positive integer.", "max_output_tokens")
    tools, chat_tools = _chat_tools(body.get("tools"))
    tool_choice = _chat_tool_choice(
        body.get("tool_choice"), {tool["function"]["name"] for tool in chat_tools}
    )
    text_format, response_format = _text_format(body.get("text"))
    parallel_tool_calls = _optional_bool(body, "parallel_tool_calls", True)
    history = [*history, *input_messages(client_input)]

    messages = ([{"role": "system", "content": instructions}] if instructions else []) + history
    chat_body: dict = {"model": model, "messages": messages}
    if prompt is not None:
        # Rendered by the prompts stage before admission, its messages before these. Not
        # part of ``history``: like the instructions, the next turn does not carry it.
        chat_body["prompt"] = prompt
        if not messages:
            del chat_body["messages"]
    if _optional_bool(body, "stream", False):
        chat_body["stream"] = True
    optional = {
        "temperature": temperature,
        "top_p": top_p,
        "max_completion_tokens": max_output_tokens,
        "user": user,
        "response_format": response_format,
    }
    chat_body.update({name: value for name, value in optional.items() if value is not None})
    if chat_tools:
        chat_body["tools"] = chat_tools
        chat_body["parallel_tool_calls"] = parallel_tool_calls
        if tool_choice is not None:
            chat_body["tool_choice"] = tool_choice
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat_body["reasoning_effort"] = reasoning["effort"]
    for name in PASSED_THROUGH:
        if _optional_string(body, name) is not None:
            chat_body[name] = body[name]
    return ResponsesRequest(
        model=model,
        stream=bool(chat_body.get("stream")),
        store=_optional_bool(body, "store", True),
        instructions=instructions,
        previous_response_id=_optional_string(body, "previous_response_id"),
        metadata=_metadata(body),
        tools=tools,
        tool_choice=body.get("tool_choice") or "auto",
        text_format=text_format,
        parallel_tool_calls=parallel_tool_calls,
        temperature=temperature,
        top_p=top_p,
        max_output_tokens=max_output_tokens,
        user=user,
        prompt=body.get("prompt"),
        history=history,
        chat_body=chat_body,
    )
