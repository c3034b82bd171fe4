"""Any OpenAI-compatible upstream: OpenAI, Azure OpenAI, vLLM, Ollama, OpenRouter, Groq."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from proxy.providers import http
from proxy.providers.base import Target, UpstreamResult
from proxy.providers.openai_surface import OpenAISurfaceMethods

AZURE_DEFAULT_API_VERSION = "2024-10-21"
# The hosts known to accept prompt_cache_key. Other OpenAI-compatible servers may refuse
# a field they do not know (a 400 would be worse than no key), so they get it only when
# their provider key's options say {"prompt_cache_key": true}.
PROMPT_CACHE_KEY_HOSTS = frozenset({"api.openai.com"})


class OpenAICompatibleProvider(OpenAISurfaceMethods):
    name = "openai"

    def _url(self, target: Target, path: str) -> str:
        return f"{target.base_url.rstrip('/')}{path}"

    def _headers(self, target: Target) -> dict[str, str]:
        return {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}

    def _body(self, target: Target, body: dict) -> dict:
        return {**body, "model": target.upstream_model}

    def _takes_prompt_cache_key(self, target: Target) -> bool:
        option = target.options.get("prompt_cache_key")
        if isinstance(option, bool):
            return option
        return (urlsplit(target.base_url).hostname or "") in PROMPT_CACHE_KEY_HOSTS

    def _chat_body(self, target: Target, body: dict) -> dict:
        """The chat request, with the organization's ``prompt_cache_key`` when the client
        sent none: OpenAI then routes requests that share a prefix to the same cache."""
        payload = self._body(target, body)
        key = target.prompt_cache.key
        if key and "prompt_cache_key" not in body and self._takes_prompt_cache_key(target):
            payload["prompt_cache_key"] = key
        return payload

    async def chat(self, target: Target, body: dict) -> UpstreamResult:
        payload, headers, raw = await http.post_json(
            self._url(target, "/chat/completions"),
            headers=self._headers(target),
            body=self._chat_body(target, body),
        )
        return UpstreamResult(body=payload, headers=headers, raw=raw)

    async def chat_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        async for _event, chunk in http.post_sse(
            self._url(target, "/chat/completions"),
            headers=self._headers(target),
            body=self._chat_body(target, body),
        ):
            yield chunk

    async def completions(self, target: Target, body: dict) -> UpstreamResult:
        payload, headers, raw = await http.post_json(
            self._url(target, "/completions"),
            headers=self._headers(target),
            body=self._body(target, body),
        )
        return UpstreamResult(body=payload, headers=headers, raw=raw)

    async def completions_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        async for _event, chunk in http.post_sse(
            self._url(target, "/completions"),
            headers=self._headers(target),
            body=self._body(target, body),
        ):
            yield chunk

    async def embeddings(self, target: Target, body: dict) -> UpstreamResult:
        payload, headers, raw = await http.post_json(
            self._url(target, "/embeddings"),
            headers=self._headers(target),
            body=self._body(target, body),
        )
        return UpstreamResult(body=payload, headers=headers, raw=raw)

    # --- OpenAI's Responses API, for requests that arrive in its format -----------------

    def speaks_responses(self, options: dict) -> bool:
        """Whether ``/responses`` is there: OpenAI has it, and so do most servers that copy
        its API; one that does not is marked by its provider key's options
        ``{"responses_api": false}`` and gets translated requests instead."""
        return options.get("responses_api") is not False

    def _responses_url(self, target: Target) -> str:
        return self._url(target, "/responses")

    def _responses_body(self, target: Target, body: dict) -> dict:
        return self._body(target, body)

    async def responses(self, target: Target, body: dict) -> UpstreamResult:
        payload, headers, raw = await http.post_json(
            self._responses_url(target),
            headers=self._headers(target),
            body=self._responses_body(target, body),
        )
        return UpstreamResult(body=payload, headers=headers, raw=raw)

    async def responses_stream(self, target: Target, body: dict) -> AsyncIterator[dict]:
        """The Responses API's stream events as they come (each names its ``type``)."""
        async for event, data in http.post_sse(
            self._responses_url(target),
            headers=self._headers(target),
            body={**self._responses_body(target, body), "stream": True},
        ):
            if "type" not in data and event:
                data = {**data, "type": event}
            yield data

    async def list_models(self, target: Target) -> list[dict]:
        payload = await http.get_json(self._url(target, "/models"), headers=self._headers(target))
        data = payload.get("data")
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


class AzureOpenAIProvider(OpenAICompatibleProvider):
    """Azure puts the deployment in the path and the version in the query string.

    ``base_url`` is ``https://<resource>.openai.azure.com``; the deployment name is the
    target's upstream model, and ``options["api_version"]`` picks the API version.
    Azure's Responses API is on its versionless v1 surface instead,
    ``<resource>/openai/v1/responses``, with the deployment name as the body's model; a
    deployment whose model Azure serves only through chat is marked by its key's options
    ``{"responses_api": false}`` and gets translated requests.
    """

    name = "azure"

    def _url(self, target: Target, path: str) -> str:
        version = target.options.get("api_version") or AZURE_DEFAULT_API_VERSION
        base = target.base_url.rstrip("/")
        if "/openai/deployments/" not in base:
            base = f"{base}/openai/deployments/{target.upstream_model}"
        return f"{base}{path}?api-version={version}"

    def _headers(self, target: Target) -> dict[str, str]:
        return {"api-key": target.api_key} if target.api_key else {}

    def _responses_url(self, target: Target) -> str:
        # The resource's root: base_url may name a deployment or Azure's /openai prefix.
        base = target.base_url.rstrip("/")
        root = base.split("/openai/", 1)[0].removesuffix("/openai")
        return f"{root}/openai/v1/responses"

    def _responses_body(self, target: Target, body: dict) -> dict:
        # The v1 surface routes by the body's model: the deployment's name.
        return {**body, "model": target.upstream_model}

    def _takes_prompt_cache_key(self, target: Target) -> bool:
        # Whether an Azure deployment accepts it depends on its API version: opt-in only.
        return target.options.get("prompt_cache_key") is True

    def _body(self, target: Target, body: dict) -> dict:
        # Azure routes by deployment; a "model" field is ignored, so drop it.
        return {key: value for key, value in body.items() if key != "model"}

    async def list_models(self, target: Target) -> list[dict]:
        return [{"id": target.upstream_model, "object": "model", "owned_by": "azure"}]
