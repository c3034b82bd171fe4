"""Daphne's HTTP layer (Twisted) made cheaper for an API whose bodies are JSON.

For every request with a body, Twisted reads the Content-Type header through the standard
library's e-mail header machinery (``email.message.EmailMessage``), only to learn whether the
body is a form it should decode. On the proxy's hot path that took 4.7% of the event loop's
time per request (sampled at one connection), more than parsing the JSON body itself.

The replacement answers the plain ``type/subtype[; parameters]`` headers clients send with a
split, and hands anything else (comments, quoting, stray characters) to Twisted's own
function, so both always give the same answer (checked by a test over unusual headers).

Twisted also formats a combined-log-format line for every finished request and publishes it
on its own log, which Daphne (at verbosity 1 or less, our setting) sends nowhere: 1.6% of the
loop's time per request for a line nobody reads. At those verbosities the line is no longer
made. Daphne's own plain-text access log (on stdout at verbosity 1, Daphne's default when it
is started directly) is never written either: the proxy writes one JSON access line per
request through its logging configuration (common/access_log.py), and a second, plain-text
line interleaved with the JSON records would break every log shipper that parses them.

Twisted does not write a response when the application hands it over: it buffers the bytes
and asks the event loop to say when the socket is writable, one loop iteration later. Work
scheduled meanwhile (a request's accounting after its response) ran first, so the client
waited for it, plus two epoll registrations. The response is now written to a plain TCP
socket as soon as Daphne has it; whatever the socket does not take stays buffered and goes
the usual way. TLS connections and connections being closed are left to Twisted.

Twisted hands a response's status line and headers to the transport as a list of some
seventy pieces (each name, ": ", value and line end apart), and the transport checks each
piece with a Python call before buffering it. They are joined into one block first, the
same bytes, checked and buffered once.
"""

from __future__ import annotations

import re
import sys

# "type/subtype" and "; name=value" parameters made of RFC 9110 token characters, with spaces
# around them: what clients send. Anything else (quoting, comments, control characters, stray
# separators) goes to Twisted's own parser.
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PLAIN_CONTENT_TYPE_RE = re.compile(
    rb" *(" + _TOKEN + rb"/" + _TOKEN + rb") *(?:; *" + _TOKEN + rb"=" + _TOKEN + rb" *)*"
)


def fast_parse_content_type(line: bytes, *, fallback) -> bytes:
    match = _PLAIN_CONTENT_TYPE_RE.fullmatch(line)
    if match:
        return match.group(1).lower()
    return fallback(line)


def install() -> bool:
    """Apply the changes, once each; False when none applied (already installed, the fast
    paths are off (SYNTHLANG_FAST_PATHS=false), or Twisted's HTTP server and Daphne are not
    loaded: another ASGI server, serverless)."""
    from django.conf import settings

    if not settings.SYNTHLANG_FAST_PATHS:
        return False
    parser = _install_content_type_parser()
    quiet_log = _install_quiet_twisted_log()
    flush = _install_prompt_flush()
    access_log = _install_no_plain_access_log()
    headers = _install_joined_headers()
    return parser or quiet_log or flush or access_log or headers


def _replace(owner, name: str, original, replacement, flag: str) -> bool:
    """Put ``replacement`` in ``owner.name``, where ``original`` is, once: False when there
    is nothing to replace (the module is not loaded) or it is replaced already (``original``
    carries ``flag``). The replacement carries ``flag``, and ``original`` for the tests."""
    if original is None or getattr(original, flag, False):
        return False
    setattr(replacement, flag, True)
    replacement.original = original
    setattr(owner, name, replacement)
    return True


def header_block(version: bytes, code: bytes, reason: bytes, headers) -> bytes:
    """The status line and header lines Twisted writes for ``headers`` (a ``Headers``), as
    one block. A value that is not bytes raises TypeError, as Twisted's transport does."""
    lines = [b"%s %s %s\r\n" % (version, code, reason)]
    for name, values in headers.getAllRawHeaders():
        for value in values:
            lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)


def _install_joined_headers() -> bool:
    http = sys.modules.get("twisted.web.http")
    channel_class = getattr(http, "HTTPChannel", None)
    original = getattr(channel_class, "writeHeaders", None)
    # Read once: twisted.web.http is a deprecation proxy, each attribute read a Python call.
    headers_class = getattr(http, "Headers", None)

    def write_headers(self, version, code, reason, headers) -> None:
        if not isinstance(headers, headers_class):
            # Pairs instead of Headers: Twisted sanitises those itself first.
            return original(self, version, code, reason, headers)
        self.transport.write(header_block(version, code, reason, headers))

    return _replace(channel_class, "writeHeaders", original, write_headers, "synthlang_joined")


def _install_no_plain_access_log() -> bool:
    module = sys.modules.get("daphne.access")
    generator_class = getattr(module, "AccessLogGenerator", None)
    original = vars(generator_class).get("__call__") if generator_class is not None else None

    def call(self, protocol, action, details) -> None:
        return None  # the JSON access line (common/access_log.py) replaces this one

    return _replace(generator_class, "__call__", original, call, "synthlang_silenced")


def _install_content_type_parser() -> bool:
    http = sys.modules.get("twisted.web.http")
    original = getattr(http, "_parseContentType", None)

    def parse_content_type(line: bytes) -> bytes:
        return fast_parse_content_type(line, fallback=original)

    return _replace(http, "_parseContentType", original, parse_content_type, "synthlang_fast_path")


def _install_quiet_twisted_log() -> bool:
    module = sys.modules.get("daphne.http_protocol")
    factory_class = getattr(module, "HTTPFactory", None)
    original = getattr(factory_class, "log", None)

    def log(self, request) -> None:
        # Daphne's Server begins Twisted's logging with a discarding observer at these
        # verbosities (daphne.server.Server.run); above them the line reaches Python logging.
        if self.server.verbosity <= 1:
            return
        original(self, request)

    return _replace(factory_class, "log", original, log, "synthlang_quiet")


def flush_now(transport) -> None:
    """Write what ``transport`` has buffered, if it is a plain TCP connection still open."""
    from twisted.internet import tcp

    if (
        isinstance(transport, tcp.Connection)
        and not transport.TLS
        and transport.connected
        and not transport.disconnecting
    ):
        # What the reactor calls when the socket is writable. A partial write keeps the rest
        # buffered and the socket registered; an error is returned and found again by the
        # reactor on its own call, which then closes the connection as usual.
        transport.doWrite()


def _install_prompt_flush() -> bool:
    module = sys.modules.get("daphne.http_protocol")
    request_class = getattr(module, "WebRequest", None)
    original = getattr(request_class, "handle_reply", None)

    def handle_reply(self, message) -> None:
        channel = self.channel  # gone once the request has finished
        original(self, message)
        if channel is not None and message.get("type") == "http.response.body":
            flush_now(channel.transport)

    return _replace(request_class, "handle_reply", original, handle_reply, "synthlang_flush")
