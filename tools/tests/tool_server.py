"""A local HTTP server a test starts: a registered tool's endpoint that records what it was
sent, and an OpenAI-compatible chat upstream that records the request bodies it received."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    def __init__(self) -> None:
        self.tool_requests: list[dict] = []
        self.chat_bodies: list[dict] = []
        self.secret = ""


def _handler(recorder: Recorder):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def _answer(self, status: int, payload, content_type="application/json") -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            if self.path.endswith("/chat/completions"):
                recorder.chat_bodies.append(body)
                return self._answer(200, _completion(body))
            recorder.tool_requests.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("authorization"),
                    "body": body,
                }
            )
            if self.path == "/weather":
                city = body.get("city", "")
                return self._answer(200, {"city": city, "forecast": "sunny", "celsius": 21})
            if self.path == "/echo-secret":
                # A careless tool that repeats its credential: the proxy must not relay it.
                return self._answer(500, f"bad token {self.headers.get('authorization')}".encode())
            if self.path == "/echo-secret-ok":
                return self._answer(200, {"seen": self.headers.get("authorization")})
            if self.path == "/slow":
                time.sleep(3)
                return self._answer(200, {"late": True})
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("location", "http://169.254.169.254/latest/meta-data")
                self.send_header("content-length", "0")
                self.end_headers()
                return None
            if self.path == "/huge":
                return self._answer(200, b"x" * (3 * 1024 * 1024), "text/plain")
            return self._answer(404, {"error": "no such tool"})

    return Handler


def _completion(body: dict) -> dict:
    return {
        "id": "chatcmpl-recorded",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "recorded"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }


class ToolServer:
    """``with ToolServer() as server:`` serves on 127.0.0.1 at ``server.url``."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.recorder))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ToolServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
