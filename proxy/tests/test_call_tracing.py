"""The call's spans in-process, with an in-memory exporter: the stream wrapper closes the
upstream however the relay ends, and tracing off costs no span at all."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common import tracing
from proxy import call_tracing


@pytest.fixture
def exported(monkeypatch):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "_propagator", TraceContextTextMapPropagator())
    monkeypatch.setattr(
        tracing,
        "_kinds",
        {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT},
    )
    return exporter


def _call(trace_content=False):
    return SimpleNamespace(
        principal=SimpleNamespace(trace_content=trace_content),
        upstream_model="gpt-4o-mini",
        model="team-model",
        endpoint="chat.completions",
    )


class Upstream:
    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.closed = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.chunks:
            raise StopAsyncIteration
        return self.chunks.pop(0)

    async def aclose(self):
        self.closed = True


def _chunk(text):
    return {"model": "gpt-4o-mini-2024", "choices": [{"delta": {"content": text}}]}


def test_a_stream_closed_before_its_second_chunk_still_closes_the_upstream(exported):
    upstream = Upstream([_chunk(" world")])
    stream = call_tracing.traced_stream(_call(), _chunk("hello"), upstream)
    asyncio.run(stream.aclose())  # the client hung up after the first chunk
    assert upstream.closed
    (span,) = exported.get_finished_spans()
    assert span.name == "stream gpt-4o-mini"
    assert span.attributes["synthlang.stream.chunks"] == 1


def test_a_relayed_stream_records_its_text_only_when_the_organization_opted_in(exported):
    async def relay(call):
        stream = call_tracing.traced_stream(
            call, _chunk("hello"), Upstream([_chunk(" world"), {"usage": {"completion_tokens": 2}}])
        )
        chunks = [chunk async for chunk in stream]
        await stream.aclose()
        return chunks

    assert len(asyncio.run(relay(_call(trace_content=True)))) == 2
    asyncio.run(relay(_call(trace_content=False)))
    opted_in, opted_out = exported.get_finished_spans()
    assert dict(opted_in.events[0].attributes) == {"gen_ai.output.messages": "hello world"}
    assert opted_in.attributes["gen_ai.usage.output_tokens"] == 2
    assert opted_in.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024"
    assert not opted_out.events


def test_with_tracing_off_nothing_is_wrapped_or_recorded():
    assert not tracing.enabled()
    upstream = Upstream([])
    assert call_tracing.traced_stream(_call(), _chunk("hi"), upstream) is upstream
    with tracing.span("anything") as span:
        span.set_attribute("ignored", 1)
    assert span is tracing.NO_SPAN
    headers = {}
    assert tracing.inject(headers) is False and headers == {}


def test_a_grpc_protocol_stops_start_up_naming_the_variable(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ImproperlyConfigured, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        tracing.tracing_setup()
    assert not tracing.enabled()
