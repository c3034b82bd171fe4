"""How a call ends when it fails, on every endpoint: chat and completions (views.py), the
chat bridge (Responses and Messages run as chat) and the pass-throughs (Messages to
Anthropic, Responses to OpenAI) alike.

Each failure is accounted once, whatever went wrong: a refusal or an upstream error
(accounted, then re-raised for the endpoint to render in its own format), a client that hung
up (accounted as 499), Redis or the database unreachable (a 503 the client may retry), or a
bug (logged, accounted, and raised as a plain 500 in the endpoint's format, never a
traceback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from common.errors import DomainError
from common.outages import is_outage_error, unavailable_for
from proxy import accounting, gateway

logger = logging.getLogger(__name__)


def account_failure(call: gateway.ProxyCall, error: DomainError) -> None:
    """The failed call's usage event (after the response), its count (so the error
    wrapper does not count it again) and its headers on the error."""
    error.synthlang_accounted = True
    gateway.run_in_background(accounting.fail(call, error))
    error.headers = {**call.response_headers(), **error.headers}


@contextmanager
def failures_accounted(call: gateway.ProxyCall, what: str) -> Iterator[None]:
    """Every failure inside the block is accounted once; ``what`` names the call in the log."""
    try:
        yield
    except DomainError as error:
        account_failure(call, error)
        raise
    except asyncio.CancelledError:
        call.client_disconnected = True
        call.status_code, call.error_code = 499, "client_closed_request"
        gateway.run_in_background(accounting.finish(call, None))
        raise
    except Exception as exc:
        if is_outage_error(exc):
            failure = unavailable_for(exc)
        else:
            logger.exception("unexpected error in %s", what)
            failure = DomainError()
        account_failure(call, failure)
        raise failure from exc
