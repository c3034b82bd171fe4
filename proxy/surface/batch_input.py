"""A batch input file (JSONL), read at upload: checked, measured, and its model mapped.

OpenAI's rules: one request per line, each with a unique ``custom_id``, ``method``
POST, one ``url`` and one model for the whole file. The proxy also needs the model (for
model access, the route and the price) and the prompt tokens (for the budget check when
the batch is created), and it writes the deployment's upstream model name into each line
so a public alias reaches the upstream under the name the upstream knows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.errors import InvalidRequest
from proxy.tokens import count_message_tokens, count_tokens

BATCH_URLS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/responses")
MAX_BATCH_LINES = 50_000  # OpenAI's limit per batch


@dataclass(frozen=True)
class BatchInput:
    model: str
    url: str
    lines: list[dict]
    prompt_tokens: int

    def for_upstream(self, upstream_model: str) -> bytes:
        rows = [{**line, "body": {**line["body"], "model": upstream_model}} for line in self.lines]
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _refuse(number: int, problem: str) -> InvalidRequest:
    return InvalidRequest(f"Line {number} of the batch file {problem}.", param="file")


def _prompt_tokens(body: dict, url: str, model: str) -> int:
    if url == "/v1/chat/completions" and isinstance(body.get("messages"), list):
        return count_message_tokens(body["messages"], model=model)
    value = body.get("input") if url != "/v1/completions" else body.get("prompt")
    if isinstance(value, str):
        return count_tokens(value, model=model)
    if isinstance(value, list):
        return sum(count_tokens(item, model=model) for item in value if isinstance(item, str))
    return 0


def batch_input_read(content: bytes) -> BatchInput:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("The batch file is not UTF-8 text.", param="file") from None
    lines, seen, model, url = [], set(), None, None
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            raise _refuse(number, "is not JSON") from None
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            raise _refuse(number, "has no 'body' object")
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id or custom_id in seen:
            raise _refuse(number, "needs a 'custom_id' string unique in the file")
        seen.add(custom_id)
        if line.get("method") != "POST":
            raise _refuse(number, "must have 'method': 'POST'")
        if line.get("url") not in BATCH_URLS:
            raise _refuse(number, f"must have a 'url' among {', '.join(BATCH_URLS)}")
        line_model = line["body"].get("model")
        if not isinstance(line_model, str) or not line_model:
            raise _refuse(number, "names no 'model' in its body")
        if model is not None and (line_model, line["url"]) != (model, url):
            raise _refuse(number, "differs from the first line's model or url (one per batch)")
        model, url = line_model, line["url"]
        lines.append(line)
    if not lines:
        raise InvalidRequest("The batch file holds no request.", param="file")
    if len(lines) > MAX_BATCH_LINES:
        raise InvalidRequest(
            f"A batch file holds at most {MAX_BATCH_LINES} requests.", param="file"
        )
    tokens = sum(_prompt_tokens(line["body"], url, model) for line in lines)
    return BatchInput(model=model, url=url, lines=lines, prompt_tokens=tokens)


def batch_results_usage(content: bytes) -> tuple[dict, str]:
    """The summed usage of a batch's output file (successful lines only, as billed) and
    the upstream model that answered."""
    prompt = completion = cached = 0
    upstream_model = ""
    for raw in content.decode("utf-8", "replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        response = line.get("response") if isinstance(line, dict) else None
        if not isinstance(response, dict) or response.get("status_code") != 200:
            continue
        body = response.get("body") if isinstance(response.get("body"), dict) else {}
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        upstream_model = upstream_model or str(body.get("model") or "")
        prompt += _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        completion += _int(usage.get("completion_tokens", usage.get("output_tokens")))
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
        if isinstance(details, dict):
            cached += _int(details.get("cached_tokens"))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return usage, upstream_model


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value
