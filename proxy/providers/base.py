"""The one small interface every upstream provider implements.

Bodies in and out are OpenAI's wire format (dicts); a provider that speaks another
dialect (Anthropic) translates at its edge, so the rest of the proxy knows one format.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from common.errors import DomainError
from common.logging import redact, redact_value


@dataclass(frozen=True)
class PromptCache:
    """What the organization wants of the upstream's own prompt cache on this call.

    ``breakpoints``: mark the stable prefix for a provider whose cache is opt-in per
    request (Anthropic's ``cache_control``). ``key``: the ``prompt_cache_key`` to send a
    provider that routes by one (OpenAI), when the client sent none; "" sends none.
    """

    breakpoints: bool = False
    key: str = ""


NO_PROMPT_CACHE = PromptCache()


@dataclass(frozen=True)
class Target:
    """A resolved deployment: which provider, with which key, under which model name."""

    provider: str
    upstream_model: str
    base_url: str = ""
    api_key: str = ""  # decrypted just before the call; never logged or cached
    options: dict = field(default_factory=dict, hash=False)
    label: str = ""  # "<provider>/<upstream model>[#deployment id]" for usage and metrics
    prompt_cache: PromptCache = NO_PROMPT_CACHE

    def __repr__(self) -> str:  # keep the key out of every traceback and log line
        return f"Target({self.label or self.provider + '/' + self.upstream_model})"


@dataclass
class UpstreamResult:
    body: dict
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # The body exactly as the upstream sent it, when it is already in OpenAI's format.
    raw: bytes | None = None


class UpstreamError(DomainError):
    """An upstream call failed. ``retryable`` decides retries and fallback."""

    code = "upstream_error"
    message = "The upstream provider returned an error."

    def __init__(
        self,
        message: str | None = None,
        *,
        upstream_status: int = 0,
        retryable: bool = False,
        retry_after: float | None = None,
        upstream_body: dict | None = None,
        code: str | None = None,
        param: str | None = None,
    ):
        # Whatever an upstream wrote (an error echoing the provider key) is the only text
        # here that the proxy did not write itself: no secret-shaped string survives it.
        super().__init__(redact(message) if message else message, param=param)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_body = upstream_body
        if code:
            self.code = code


class Provider(Protocol):
    name: str

    async def chat(self, target: Target, body: dict) -> UpstreamResult: ...

    def chat_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        """Yields OpenAI ``chat.completion.chunk`` dicts; the last carries usage."""
        ...

    async def completions(self, target: Target, body: dict) -> UpstreamResult: ...

    def completions_stream(self, target: Target, body: dict) -> AsyncIterator[dict]: ...

    async def embeddings(self, target: Target, body: dict) -> UpstreamResult: ...

    async def list_models(self, target: Target) -> list[dict]: ...


def _passing_retry_after_on(error: UpstreamError) -> UpstreamError:
    # When this error reaches the client, its SDK waits the upstream's pause before it
    # retries (OpenAI's SDKs read retry-after on 429 and 5xx answers alike).
    if error.retry_after is not None:
        error.headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    return error


def classify_status(
    status: int, body: dict | None, retry_after: float | None, *, secrets: tuple[str, ...] = ()
) -> UpstreamError:
    """Turn an upstream HTTP error into the error our client should see.

    The client's key is not the upstream's key: an upstream 401/403 means *our*
    provider key was refused, which is a gateway failure (502), never a 401 that
    would tell the client its own key is wrong. ``secrets`` (the credential the call
    used) and anything secret-shaped are redacted from the upstream's text.
    """
    if body is not None:
        body = redact_value(body, secrets=secrets)
    upstream_message = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            upstream_message = str(error.get("message") or "")
        elif isinstance(error, str):
            upstream_message = error
    if status in (401, 403):
        return UpstreamError(
            "The upstream provider rejected the provider key configured for this model.",
            upstream_status=status,
            code="upstream_auth_failed",
            upstream_body=body,
        )
    if status == 429:
        return _passing_retry_after_on(
            UpstreamError(
                "The upstream provider is rate limiting requests; try again later.",
                upstream_status=status,
                retryable=True,
                retry_after=retry_after,
                code="rate_limit_exceeded",
                upstream_body=body,
            )
        )
    if status >= 500 or status in (408, 409):
        return _passing_retry_after_on(
            UpstreamError(
                f"The upstream provider failed ({status}). {upstream_message}".strip(),
                upstream_status=status,
                retryable=True,
                retry_after=retry_after,
                upstream_body=body,
            )
        )
    if status == 404:
        return UpstreamError(
            upstream_message or "The upstream provider does not know this model.",
            upstream_status=status,
            code="model_not_found",
            param="model",
            upstream_body=body,
        )
    # Other 4xx: the request itself is wrong; the client sees the upstream's reason.
    param = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        param = body["error"].get("param")
    return UpstreamError(
        upstream_message or f"The upstream provider rejected the request ({status}).",
        upstream_status=status,
        code="invalid_request_error",
        param=param,
        upstream_body=body,
    )
