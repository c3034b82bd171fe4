"""Moderations, images and audio on an OpenAI-compatible upstream: passed through.

Mixed into ``OpenAICompatibleProvider``, which supplies ``_url``, ``_headers`` and
``_body``. Answers reach the client as the upstream sent them (``raw``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from proxy.providers import http
from proxy.providers.base import Target, UpstreamResult


class OpenAISurfaceMethods:
    async def _post(self, target: Target, path: str, body: dict) -> UpstreamResult:
        payload, headers, raw = await http.post_json(
            self._url(target, path), headers=self._headers(target), body=self._body(target, body)
        )
        return UpstreamResult(body=payload, headers=headers, raw=raw)

    async def moderations(self, target: Target, body: dict) -> UpstreamResult:
        return await self._post(target, "/moderations", body)

    async def images_generations(self, target: Target, body: dict) -> UpstreamResult:
        return await self._post(target, "/images/generations", body)

    async def audio_speech(self, target: Target, body: dict) -> AsyncIterator[str | bytes]:
        """Yields the content type first, then the audio's bytes."""
        async for item in http.post_bytes_stream(
            self._url(target, "/audio/speech"),
            headers=self._headers(target),
            body=self._body(target, body),
        ):
            yield item

    async def audio_transcriptions(
        self, target: Target, *, task: str, fields: list, file: tuple[str, bytes, str]
    ) -> UpstreamResult:
        """``fields``: the form's (name, value) pairs, repeated names kept
        (``timestamp_granularities[]``)."""
        path = "/audio/transcriptions" if task == "transcribe" else "/audio/translations"
        upstream_fields = [(name, value) for name, value in fields if name != "model"]
        upstream_fields.append(("model", target.upstream_model))
        raw, headers = await http.request_raw(
            "POST",
            self._url(target, path),
            headers=self._headers(target),
            form=http.form_data(upstream_fields, {"file": file}),
        )
        content_type = headers.get("Content-Type", "")
        body = http.json_of(raw) if content_type.startswith("application/json") else {}
        return UpstreamResult(body=body, raw=raw, headers={"content-type": content_type})

    # --- Files and batches: the upstream's own objects, under the upstream's ids ----------

    async def _call(self, method: str, target: Target, path: str, *, body=None, form=None):
        raw, headers = await http.request_raw(
            method, self._url(target, path), headers=self._headers(target), body=body, form=form
        )
        return UpstreamResult(body=http.json_of(raw), headers=headers, raw=raw)

    async def files_create(
        self, target: Target, *, purpose: str, file: tuple[str, bytes, str]
    ) -> UpstreamResult:
        form = http.form_data([("purpose", purpose)], {"file": file})
        return await self._call("POST", target, "/files", form=form)

    async def files_retrieve(self, target: Target, file_id: str) -> UpstreamResult:
        return await self._call("GET", target, f"/files/{file_id}")

    async def files_content(self, target: Target, file_id: str) -> UpstreamResult:
        raw, headers = await http.request_raw(
            "GET", self._url(target, f"/files/{file_id}/content"), headers=self._headers(target)
        )
        content_type = headers.get("Content-Type", "application/octet-stream")
        return UpstreamResult(body={}, raw=raw, headers={"content-type": content_type})

    async def files_delete(self, target: Target, file_id: str) -> UpstreamResult:
        return await self._call("DELETE", target, f"/files/{file_id}")

    async def batches_create(self, target: Target, body: dict) -> UpstreamResult:
        return await self._call("POST", target, "/batches", body=body)

    async def batches_retrieve(self, target: Target, batch_id: str) -> UpstreamResult:
        return await self._call("GET", target, f"/batches/{batch_id}")

    async def batches_cancel(self, target: Target, batch_id: str) -> UpstreamResult:
        return await self._call("POST", target, f"/batches/{batch_id}/cancel")
