"""A local OTLP/HTTP trace receiver for tests: decodes each ``ExportTraceServiceRequest``
(protobuf, as the SDK's exporter sends it) into plain span records."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def free_port() -> int:
    # Not common.testing's: the benchmark runs this module as a process without Django.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(items) -> dict:
    return {item.key: _value(item.value) for item in items}


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict
    events: list[tuple[str, dict]]
    status: int  # 0 unset, 1 ok, 2 error
    service: str


@dataclass
class OtlpReceiver:
    port: int = field(default_factory=free_port)
    spans: list[ReceivedSpan] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def record(self, payload: bytes, headers: dict) -> None:
        request = ExportTraceServiceRequest.FromString(payload)
        self.headers.append(headers)
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=KINDS.get(span.kind, str(span.kind)),
                            attributes=_attributes(span.attributes),
                            events=[(e.name, _attributes(e.attributes)) for e in span.events],
                            status=span.status.code,
                            service=resource.get("service.name", ""),
                        )
                    )

    def wait_for(self, predicate, *, timeout: float = 15.0) -> list[ReceivedSpan]:
        """The spans once ``predicate(spans)`` holds (spans arrive in batches)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"spans never matched; received {[s.name for s in self.spans]}")

    def trace(self, trace_id: str, *, names: set[str], timeout: float = 15.0):
        """The spans of ``trace_id``, once one of each name in ``names`` arrived."""

        def complete(spans):
            seen = {s.name for s in spans if s.trace_id == trace_id}
            return names <= seen

        return [s for s in self.wait_for(complete, timeout=timeout) if s.trace_id == trace_id]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(payload, {k.lower(): v for k, v in self.headers.items()})
                body = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _CountingHandler(BaseHTTPRequestHandler):
    """The benchmark's receiver: decodes every export as a collector would, counts spans."""

    spans = 0

    def do_POST(self):
        payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = ExportTraceServiceRequest.FromString(payload)
        type(self).spans += sum(
            len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
        )
        body = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        body = str(type(self).spans).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="OTLP/HTTP receiver counting spans")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    ThreadingHTTPServer(("127.0.0.1", port), _CountingHandler).serve_forever()


if __name__ == "__main__":
    main()
