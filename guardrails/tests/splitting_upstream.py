"""A tiny OpenAI-style upstream for the guardrail tests: it echoes the last user message
and streams it a few characters per chunk, so a placeholder is cut across chunks (the
project's fake upstream streams whole words). It keeps the bodies it received."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from common.testing import http_server_thread, write_sse

CHUNK_CHARS = 4


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


class _Handler(BaseHTTPRequestHandler):
    received: list[dict]

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append(body)
        text = "Echo: " + _last_user_text(body)
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        base = {"id": "chatcmpl-split", "created": 1, "model": body.get("model", "split")}
        if not body.get("stream"):
            answer = {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {**base, "object": "chat.completion.chunk"}
        pieces = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
        events = [
            {**chunk, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            for p in pieces
        ]
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append({**chunk, "choices": [], "usage": usage})
        write_sse(self.wfile, events)


def splitting_upstream():
    return http_server_thread(_Handler)
