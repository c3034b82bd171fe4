"""The Content-Type fast path gives Twisted's own answer for every header."""

from __future__ import annotations

import pytest
from twisted.web import http

from synthlang_site import daphne_tuning

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
