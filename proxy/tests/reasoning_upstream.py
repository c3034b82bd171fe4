"""A tiny OpenAI-compatible upstream whose answers carry the model's reasoning beside the
text, as DeepSeek's and vLLM's chat APIs do (``reasoning_content``), JSON and streamed.
No such server speaks the Responses API, so the proxy translates to it."""

from __future__ import annotations

import contextlib
import json
from http.server import BaseHTTPRequestHandler

from common.testing import http_server_thread, write_sse


def _question(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def reasoning_for(question: str) -> str:
    return f"The user asks: {question}. I will answer briefly."


def answer_for(question: str) -> str:
    return f"Answer: {question}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, content_type: str, payload: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if content_type != "text/event-stream":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append(body)
        question = _question(body)
        reasoning, text = reasoning_for(question), answer_for(question)
        usage = {
            "prompt_tokens": 12,
            "completion_tokens": 20,
            "total_tokens": 32,
            "completion_tokens_details": {"reasoning_tokens": 9},
        }
        base = {"id": "chatcmpl-thinker", "created": 1, "model": body.get("model", "thinker")}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text, "reasoning_content": reasoning}
            answer = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }
            self._send(200, "application/json", json.dumps(answer).encode())
            return
        self._send(200, "text/event-stream")
        chunk = {**base, "object": "chat.completion.chunk"}
        half = len(reasoning) // 2
        deltas = [
            {"role": "assistant", "content": ""},
            {"reasoning_content": reasoning[:half]},
            {"reasoning_content": reasoning[half:]},
            *({"content": word} for word in text.split(" ")[:1]),
            {"content": text[len(text.split(" ")[0]) :]},
        ]
        events = [
            {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            for delta in deltas
        ]
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append({**chunk, "choices": [], "usage": usage})
        write_sse(self.wfile, events)


def reasoning_upstream():
    return http_server_thread(_Handler)


@contextlib.contextmanager
def routed_reasoning_upstream(organization, *, route_name: str = "thinker"):
    """The upstream, and a route of ``organization`` to it named ``route_name`` (its key
    marked ``responses_api: false``: such servers speak chat completions only)."""
    from accounts import services
    from proxy.models import Deployment, ModelRoute

    with reasoning_upstream() as upstream:
        credential = services.provider_credential_set(
            organization=organization,
            provider="openai",
            key="sk-thinker-upstream-0001",
            base_url=f"http://127.0.0.1:{upstream.server_port}/v1",
            name=route_name,
            options={"responses_api": False},
            actor=None,
        )
        route = ModelRoute.objects.create(organization=organization, public_name=route_name)
        Deployment.objects.create(
            route=route, provider="openai", credential=credential, upstream_model="thinker-r1"
        )
        yield upstream
