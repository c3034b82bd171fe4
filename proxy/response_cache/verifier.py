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

from proxy import metrics

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
    """Ask the verifier model; True only on a clear YES. Accounted to the organization."""
    from accounts.selectors import Principal
    from billing.usage import ausage_record, background_usage_event
    from proxy import gateway, routing
    from proxy.providers.base import UpstreamError

    model = settings.CACHE_VERIFIER_MODEL
    body = verifier_body(stored=stored, incoming=incoming)
    principal = Principal(
        key_id=0,
        key_prefix="",
        organization_id=organization_id,
        organization_slug="",
        user_id=0,
        username="cache-verifier",
        role="admin",
        expires_at=None,
    )
    call = gateway.ProxyCall(
        principal=principal,
        request_id=f"req_cache_verify_{uuid.uuid4().hex}",
        endpoint="chat.completions",
        model=model,
        body=body,
    )
    try:
        plan = await routing.resolve_route(organization_id, model)
        answer = await gateway.call_upstream(
            call, plan, lambda provider, target: provider.chat(target, body)
        )
    except (UpstreamError, OSError, TimeoutError):
        metrics.CACHE_VERIFIER_CALLS.labels(result="error").inc()
        logger.warning("cache verifier: the call to %s failed; treated as a miss", model)
        return False
    try:
        await ausage_record(
            background_usage_event(
                request_id=call.request_id,
                organization_id=organization_id,
                model=model,
                upstream_model=call.upstream_model,
                provider=call.provider,
                deployment=call.deployment,
                usage=answer.body.get("usage"),
                upstream_ms=call.upstream_seconds * 1000,
            )
        )
    except Exception:
        logger.exception("cache verifier: could not record the usage of %s", call.request_id)
    confirmed = _says_yes(answer.body)
    metrics.CACHE_VERIFIER_CALLS.labels(result="yes" if confirmed else "no").inc()
    return confirmed
