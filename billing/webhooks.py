"""Budget alert webhooks: one POST to a URL an organization chose, under the outbound policy.

The URL was checked when it was saved (``common.outbound.url_problem``); it is checked
again here, and the address actually dialled is checked at connect time, so a name that
now resolves to an internal address is refused. Redirects are not followed (``http.client``
never follows them; a 3xx is a failed delivery). What the admin shows of a failure is one
generic sentence per kind, never the connection's own error text, which would tell an
organization admin whether a port on some host is open.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
from urllib.parse import urlsplit

from common import outbound

logger = logging.getLogger(__name__)

UNREACHABLE = "Could not deliver the alert to the webhook URL."


class WebhookFailed(Exception):
    """A delivery that did not get a 2xx answer; ``str()`` is safe to show."""


def webhook_post(url: str, payload: dict, *, timeout: float) -> int:
    """POST ``payload`` as JSON; returns the status, or raises ``WebhookFailed``."""
    problem = outbound.url_problem(url, resolve=False)
    if problem:
        raise WebhookFailed(f"The webhook URL is not allowed: {problem}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    if not outbound.host_allowed(host):
        # The address dialled, not the one the name had when the URL was saved.
        connection._create_connection = outbound.guarded_create_connection
    body = json.dumps(payload).encode()
    try:
        connection.request(
            "POST",
            parts.path or "/",
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "synthlang-proxy"},
        )
        response = connection.getresponse()
        response.read(1024)
        status = response.status
    except (TimeoutError, OSError, http.client.HTTPException) as error:
        logger.warning("budget webhook delivery failed: %s: %s", type(error).__name__, error)
        raise WebhookFailed(UNREACHABLE) from error
    finally:
        connection.close()
    if not 200 <= status < 300:
        # Redirects included: following one could lead anywhere, past the policy.
        raise WebhookFailed(f"The webhook answered HTTP {status}.")
    return status
