"""An optional second opinion from a cheap model on borderline semantic candidates.

Off by default (``CACHE_VERIFIER_MODEL`` empty). When set, a candidate that passed every
precise check but whose cosine is below the paraphrase bar (``Verdict.borderline``) is shown
to that model with the new question; the cached answer is served only on a clear "YES". At
most ``CACHE_VERIFIER_MAX_CALLS`` calls per lookup. Each call goes through the organization's
route for that model and is accounted as a usage event of the organization, like any other
upstream call the proxy makes on its behalf. Any failure is a "no": the request then goes
upstream as a miss.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings

from accounts.selectors import aprincipal_for_organization
from common.errors import DomainError
from common.outages import DATABASE_ERRORS
from proxy import accounting, gateway, metrics

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You decide whether two requests to an AI assistant can be given the same answer. "
    "They can only if they ask for the same thing: the same entities in the same roles, the "
    "same numbers and signs, the same direction (from/to), the same polarity (for/against, "
    "with/without), the same scope (neither asks for more or less) and the same format. "
    "Reply with exactly one word: YES or NO."
)


def verifier_enabled() -> bool:
    return bool(settings.CACHE_VERIFIER_MODEL)


def verifier_body(*, stored: str, incoming: str) -> dict:
    return {
        "model": settings.CACHE_VERIFIER_MODEL,
        "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": f"Request A:\n{stored}\n\nRequest B:\n{incoming}"},
        ],
        "temperature": 0,
        "max_tokens": 2,
    }


def _says_yes(body: dict) -> bool:
    try:
        text = body["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return False
    return text.strip().strip(".!").upper() == "YES"


async def verifier_confirms(*, organization_id: int, stored: str, incoming: str) -> bool:
    """Ask the verifier model; True only on a clear YES. The call goes through the request
    pipeline as the organization's own (its model rules, rate limit and budget, retries and
    fallback, one usage event with no member), with the cache and compression off."""
    model = settings.CACHE_VERIFIER_MODEL
    call = None
    try:
        principal = await aprincipal_for_organization(
            organization_id=organization_id, username="cache-verifier"
        )
        call = gateway.ProxyCall(
            principal=principal,
            request_id=f"req_cache_verify_{uuid.uuid4().hex}",
            endpoint="chat.completions",
            model=model,
            body=verifier_body(stored=stored, incoming=incoming),
            compression_header="off",
            cache_header="off",
        )
        plan = await gateway.admit(call)
        answer = await gateway.run_json(
            call, plan, lambda provider, target: provider.chat(target, call.body)
        )
    except (DomainError, OSError, TimeoutError, *DATABASE_ERRORS) as error:
        if call is not None and isinstance(error, DomainError):
            await accounting.fail(call, error)
        metrics.CACHE_VERIFIER_CALLS.labels(result="error").inc()
        logger.warning("cache verifier: the call to %s failed; treated as a miss", model)
        return False
    await gateway.call_settled(call)  # its usage handed over, as a call no client made
    confirmed = _says_yes(answer.body)
    metrics.CACHE_VERIFIER_CALLS.labels(result="yes" if confirmed else "no").inc()
    return confirmed
