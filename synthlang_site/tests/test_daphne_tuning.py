"""Daphne tuning: Content-Type parsing as Twisted does it, the access line, the prompt flush."""

from __future__ import annotations

import sys

import pytest
from twisted.web import http

from synthlang_site import daphne_tuning


@pytest.fixture(autouse=True)
def _fast_paths_on(settings):
    # These tests are about the fast paths themselves: they run in both CI passes.
    settings.SYNTHLANG_FAST_PATHS = True


HEADERS = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"Application/JSON;charset=UTF-8",
    b"  application/x-www-form-urlencoded  ",
    b"application/x-www-form-urlencoded; charset=utf-8",
    b"multipart/form-data; boundary=----abc123",
    b'MULTIPART/FORM-DATA;boundary="quoted;boundary"',
    b"multipart/form-data (a comment); boundary=x",
    b"text/plain",
    b"application/vnd.api+json",
    b"application/json ; charset=utf-8",
    b"",
    b"json",
    b"application/",
    b"/json",
    b"application/json/extra",
    b"application /json",
    b"appli\xe9cation/json",
    b"application/json\x00",
    b";",
    b"a/b;c=d;e=f",
    # Characters Twisted lets through to the parser, which the e-mail parser may refuse.
    b"application/json\x0c",
    b"\x0bapplication/json",
    b"application/json\x1c",
    b"application/json-;{*",
    b"application/json; charset=\x85",
    b"application/json;",
    b"application/json; charset",
]


def original_parser():
    current = http._parseContentType
    return getattr(current, "original", current)


def outcome(parse, header):
    try:
        return parse(header)
    except Exception as error:  # Twisted's parser raises on some malformed headers
        return type(error)


@pytest.mark.parametrize("header", HEADERS)
def test_fast_path_agrees_with_twisted(header):
    original = original_parser()

    def fast(line):
        return daphne_tuning.fast_parse_content_type(line, fallback=original)

    assert outcome(fast, header) == outcome(original, header)


def test_common_json_header_does_not_reach_the_email_parser():
    def refuse(line):
        raise AssertionError("the fallback was used")

    assert (
        daphne_tuning.fast_parse_content_type(b"application/json", fallback=refuse)
        == b"application/json"
    )


def test_install_replaces_the_parser_once(monkeypatch):
    original = original_parser()
    monkeypatch.setattr(http, "_parseContentType", original)
    assert daphne_tuning.install() is True
    assert http._parseContentType.synthlang_fast_path
    assert http._parseContentType(b"application/json; charset=utf-8") == b"application/json"
    assert daphne_tuning.install() is False  # already installed: not wrapped twice


class _Server:
    def __init__(self, verbosity):
        self.verbosity = verbosity


class _LogFile:
    def __init__(self):
        self.lines = []

    def write(self, line):
        self.lines.append(line)


def _factory_logging_one_request(verbosity, monkeypatch):
    from daphne import http_protocol

    original = http_protocol.HTTPFactory.log
    monkeypatch.setattr(http_protocol.HTTPFactory, "log", getattr(original, "original", original))
    assert daphne_tuning.install() is True
    factory = http_protocol.HTTPFactory(_Server(verbosity))
    factory._logFile = _LogFile()
    factory._logFormatter = lambda timestamp, request: f"line for {request}"
    factory.log("GET /v1/models")
    return factory._logFile.lines


def test_twisted_access_line_is_not_made_when_daphne_discards_it(monkeypatch):
    assert _factory_logging_one_request(1, monkeypatch) == []
    assert _factory_logging_one_request(0, monkeypatch) == []


def test_twisted_access_line_is_kept_when_daphne_logs_twisted(monkeypatch):
    assert _factory_logging_one_request(2, monkeypatch) == ["line for GET /v1/models\n"]


def _tcp_transport(*, tls=False, connected=True, disconnecting=False):
    from twisted.internet import tcp

    transport = tcp.Connection.__new__(tcp.Connection)
    transport.TLS = tls
    transport.connected = connected
    transport.disconnecting = disconnecting
    transport.flushes = 0

    def do_write():
        transport.flushes += 1

    transport.doWrite = do_write
    return transport


@pytest.mark.parametrize(
    ("options", "flushed"),
    [
        ({}, 1),
        ({"tls": True}, 0),  # TLS writes go through its own buffer: left to Twisted
        ({"connected": False}, 0),
        ({"disconnecting": True}, 0),  # closing: the reactor's write also closes it
    ],
)
def test_flush_now_writes_only_open_plain_tcp_connections(options, flushed):
    transport = _tcp_transport(**options)
    daphne_tuning.flush_now(transport)
    assert transport.flushes == flushed


def test_flush_now_leaves_other_transports_alone():
    daphne_tuning.flush_now(object())  # neither fails nor writes


def test_response_body_is_flushed_when_daphne_writes_it(monkeypatch):
    import types

    handled = []

    class WebRequest:
        def __init__(self, transport):
            self.channel = types.SimpleNamespace(transport=transport)

        def handle_reply(self, message):
            handled.append(message["type"])
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.channel = None  # as Twisted does when the request finishes

    module = types.ModuleType("daphne.http_protocol")
    module.WebRequest = WebRequest
    monkeypatch.setitem(sys.modules, "daphne.http_protocol", module)
    assert daphne_tuning._install_prompt_flush() is True
    assert daphne_tuning._install_prompt_flush() is False

    transport = _tcp_transport()
    request = WebRequest(transport)
    request.handle_reply({"type": "http.response.start", "status": 200})
    assert transport.flushes == 0  # Twisted holds the headers until the first body write
    request.handle_reply({"type": "http.response.body", "body": b"data: 1", "more_body": True})
    request.handle_reply({"type": "http.response.body", "body": b""})
    assert transport.flushes == 2
    assert handled == ["http.response.start", "http.response.body", "http.response.body"]


def test_daphnes_plain_text_access_line_is_never_written(monkeypatch):
    import io

    from daphne.access import AccessLogGenerator

    original = AccessLogGenerator.__call__
    monkeypatch.setattr(AccessLogGenerator, "__call__", getattr(original, "original", original))
    assert daphne_tuning._install_no_plain_access_log() is True
    stream = io.StringIO()
    generator = AccessLogGenerator(stream)
    generator(None, "complete", {"path": "/v1/models", "status": 200, "client": "1.2.3.4:5"})
    assert stream.getvalue() == ""


class _RecordingTransport:
    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(("write", data))

    def writeSequence(self, pieces):  # Twisted's name
        self.written.append(("sequence", b"".join(pieces)))


def _headers_written(write_headers, headers):
    channel = http.HTTPChannel()
    channel.transport = _RecordingTransport()
    write_headers(channel, b"HTTP/1.1", b"200", b"OK", headers)
    return channel.transport.written


def _unusual_headers():
    from twisted.web.http_headers import Headers

    headers = Headers()
    headers.addRawHeader(b"content-type", b"application/json")
    headers.addRawHeader("x-synthlang-cache", "off")  # str names and values: encoded
    headers.addRawHeader(b"set-cookie", b"a=1")
    headers.addRawHeader(b"set-cookie", b"b=2")  # one name, two values: two lines
    headers.addRawHeader(b"x-note", b"line one\r\nline two")  # folded: one line
    headers.addRawHeader(b"x-empty", b"")
    return headers


def test_joined_header_block_is_the_bytes_twisted_writes(monkeypatch):
    original = http.HTTPChannel.writeHeaders
    original = getattr(original, "original", original)
    monkeypatch.setattr(http.HTTPChannel, "writeHeaders", original)
    [(_, expected)] = _headers_written(original, _unusual_headers())
    assert daphne_tuning.install() is True
    joined = http.HTTPChannel.writeHeaders
    assert joined.synthlang_joined
    assert _headers_written(joined, _unusual_headers()) == [("write", expected)]
    assert expected.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    assert b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n" in expected
    assert expected.endswith(b"X-Empty: \r\n\r\n")
    # Pairs rather than Headers (no caller in Twisted does this) take Twisted's own way.
    assert _headers_written(joined, [(b"x-a", b"1")])[0][0] == "sequence"
    assert daphne_tuning.install() is False  # already installed: not wrapped twice
