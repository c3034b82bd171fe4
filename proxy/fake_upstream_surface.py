"""The HTTP fake upstream's moderations, images, audio, files and batches.

Mixed into ``FakeUpstream`` (which supplies ``_check``: the key, staged failures and
latency), answering as the in-process fake does, over OpenAI's HTTP wire format: JSON
bodies, multipart uploads, binary and text answers.
"""

from __future__ import annotations

from aiohttp import web


def _fake_modules():
    # Imported late: they need Django settings, set up by the upstream's main().
    from proxy.providers import fake, fake_files, fake_surface

    return fake, fake_files, fake_surface


def _refusal(error) -> web.Response:
    return web.json_response(error.body(), status=400)


def _upstream_error(error) -> web.Response:
    body = {"error": {"message": error.message, "type": "invalid_request_error", "param": None}}
    return web.json_response(body, status=error.upstream_status or 400)


class FakeUpstreamSurface:
    def add_surface_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_post("/v1/moderations", self.moderations)
        router.add_post("/v1/images/generations", self.images)
        router.add_post("/v1/audio/speech", self.speech)
        router.add_post("/v1/audio/transcriptions", self.transcriptions)
        router.add_post("/v1/audio/translations", self.transcriptions)
        router.add_post("/v1/files", self.file_create)
        router.add_get("/v1/files/{file_id}", self.file_retrieve)
        router.add_get("/v1/files/{file_id}/content", self.file_content)
        router.add_delete("/v1/files/{file_id}", self.file_delete)
        router.add_post("/v1/batches", self.batch_create)
        router.add_get("/v1/batches/{batch_id}", self.batch_retrieve)
        router.add_post("/v1/batches/{batch_id}/cancel", self.batch_cancel)

    async def _json_call(self, request: web.Request):
        body = await request.json()
        model = str(body.get("model", ""))
        return body, model, await self._check(request, model, body)

    async def moderations(self, request: web.Request) -> web.Response:
        body, model, refused = await self._json_call(request)
        if refused is not None:
            return refused
        fake, _, surface = _fake_modules()
        try:
            return web.json_response(surface.moderation_body(body, model=model))
        except fake.FakeRequestError as error:
            return _refusal(error)

    async def images(self, request: web.Request) -> web.Response:
        body, model, refused = await self._json_call(request)
        if refused is not None:
            return refused
        return web.json_response(_fake_modules()[2].images_body(body, model=model))

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body, model, refused = await self._json_call(request)
        if refused is not None:
            return refused
        audio = _fake_modules()[2].speech_wav(str(body.get("input") or ""))
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await response.prepare(request)
        for start in range(0, len(audio), 4096):
            await response.write(audio[start : start + 4096])
        return response

    async def _form(self, request: web.Request) -> tuple[dict, tuple[str, bytes]]:
        fields, upload = {}, ("", b"")
        reader = await request.multipart()
        async for part in reader:
            if part.filename is not None:
                upload = (part.filename, await part.read())
            else:
                fields[part.name] = await part.text()
        return fields, upload

    async def transcriptions(self, request: web.Request) -> web.Response:
        fields, (_name, content) = await self._form(request)
        model = fields.get("model", "")
        refused = await self._check(request, model, fields)
        if refused is not None:
            return refused
        task = "translate" if request.path.endswith("translations") else "transcribe"
        raw, content_type, _usage = _fake_modules()[2].transcription(
            content, task=task, response_format=fields.get("response_format") or "json"
        )
        return web.Response(body=raw, headers={"Content-Type": content_type})

    async def file_create(self, request: web.Request) -> web.Response:
        fields, (name, content) = await self._form(request)
        refused = await self._check(request, "-files", fields)
        if refused is not None:
            return refused
        files = _fake_modules()[1]
        purpose = fields.get("purpose", "")
        return web.json_response(files.file_store(purpose=purpose, filename=name, content=content))

    async def _file_answer(self, request: web.Request, operation):
        refused = await self._check(request, "-files")
        if refused is not None:
            return refused
        from proxy.providers.base import UpstreamError

        try:
            return operation(request.match_info.get("file_id") or request.match_info["batch_id"])
        except UpstreamError as error:
            return _upstream_error(error)

    async def file_retrieve(self, request: web.Request) -> web.Response:
        files = _fake_modules()[1]
        return await self._file_answer(
            request, lambda file_id: web.json_response(files.file_describe(file_id))
        )

    async def file_content(self, request: web.Request) -> web.Response:
        files = _fake_modules()[1]
        return await self._file_answer(
            request,
            lambda file_id: web.Response(
                body=files.file_content(file_id),
                headers={"Content-Type": "application/octet-stream"},
            ),
        )

    async def file_delete(self, request: web.Request) -> web.Response:
        files = _fake_modules()[1]
        return await self._file_answer(
            request, lambda file_id: web.json_response(files.file_delete(file_id))
        )

    async def batch_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        refused = await self._check(request, "-batches", body)
        if refused is not None:
            return refused
        fake, files, _ = _fake_modules()
        from proxy.providers.base import UpstreamError

        try:
            return web.json_response(files.batch_create(body))
        except fake.FakeRequestError as error:
            return _refusal(error)
        except UpstreamError as error:
            return _upstream_error(error)

    async def batch_retrieve(self, request: web.Request) -> web.Response:
        fake, files, _ = _fake_modules()
        answer = fake.FakeProvider()._answer_batch_line
        return await self._file_answer(
            request, lambda batch_id: web.json_response(files.batch_run(batch_id, answer))
        )

    async def batch_cancel(self, request: web.Request) -> web.Response:
        files = _fake_modules()[1]
        return await self._file_answer(
            request, lambda batch_id: web.json_response(files.batch_cancel(batch_id))
        )
