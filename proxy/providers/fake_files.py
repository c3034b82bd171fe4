"""The fake provider's Files and Batch APIs: files on local disk, batches run by the fake.

Files live in ``FAKE_FILES_DIR`` (each as its bytes and a JSON description), so every
process of one machine sees the same ones. A batch starts ``validating``; the first time
it is retrieved the fake runs it, each line through the fake chat completions or
embeddings, writes the output file (and an error file for the lines it refused) and
reports it ``completed``. Cancelling a batch that has not run yet cancels it.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path

from django.conf import settings

from proxy.providers.base import Target, UpstreamError, UpstreamResult
from proxy.providers.fake_chat import FakeRequestError

BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
_TERMINAL = ("completed", "failed", "cancelled", "expired")
_DAY = 24 * 3600


def _root() -> Path:
    configured = getattr(settings, "FAKE_FILES_DIR", "")
    root = Path(configured or Path(tempfile.gettempdir()) / "synthlang-fake-files")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _not_found(kind: str, object_id: str) -> UpstreamError:
    return UpstreamError(
        f"No such {kind}: '{object_id}'.", upstream_status=404, code="not_found", param="id"
    )


def _safe(object_id: str) -> str:
    # Ids become file names: nothing but the characters the fake's own ids use.
    if not object_id or not all(char.isalnum() or char in "-_" for char in object_id):
        raise _not_found("object", object_id)
    return object_id


def _write_json(path: Path, payload: dict) -> None:
    # Written aside and renamed: a reader in another process never sees half a file.
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload))
    os.replace(temporary, path)


def _read_json(path: Path, kind: str, object_id: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise _not_found(kind, object_id) from None


def file_store(*, purpose: str, filename: str, content: bytes) -> dict:
    file_id = f"file-fake{secrets.token_hex(12)}"
    description = {
        "id": file_id,
        "object": "file",
        "bytes": len(content),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }
    (_root() / f"{file_id}.bin").write_bytes(content)
    _write_json(_root() / f"{file_id}.json", description)
    return description


def file_describe(file_id: str) -> dict:
    return _read_json(_root() / f"{_safe(file_id)}.json", "file", file_id)


def file_content(file_id: str) -> bytes:
    file_describe(file_id)
    return (_root() / f"{_safe(file_id)}.bin").read_bytes()


def file_delete(file_id: str) -> dict:
    file_describe(file_id)
    for suffix in (".json", ".bin"):
        (_root() / f"{_safe(file_id)}{suffix}").unlink(missing_ok=True)
    return {"id": file_id, "object": "file", "deleted": True}


def _batch_path(batch_id: str) -> Path:
    return _root() / f"{_safe(batch_id)}.batch.json"


def batch_create(body: dict) -> dict:
    endpoint = body.get("endpoint")
    if endpoint not in BATCH_ENDPOINTS:
        raise FakeRequestError(
            f"The fake runs batches for {', '.join(BATCH_ENDPOINTS)} only.", param="endpoint"
        )
    input_file = file_describe(str(body.get("input_file_id") or ""))
    now = int(time.time())
    batch = {
        "id": f"batch_fake{secrets.token_hex(12)}",
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": input_file["id"],
        "completion_window": body.get("completion_window") or "24h",
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + _DAY,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": body.get("metadata"),
    }
    _write_json(_batch_path(batch["id"]), batch)
    return batch


def batch_cancel(batch_id: str) -> dict:
    batch = _read_json(_batch_path(batch_id), "batch", batch_id)
    if batch["status"] in _TERMINAL:
        raise UpstreamError(
            f"Cannot cancel a batch with status '{batch['status']}'.",
            upstream_status=409,
            code="invalid_request_error",
        )
    now = int(time.time())
    batch.update(status="cancelled", cancelling_at=now, cancelled_at=now)
    _write_json(_batch_path(batch_id), batch)
    return batch


def _line_result(number: int, line: bytes, answer) -> tuple[dict | None, dict | None]:
    """One input line's (output line, error line): ``answer(body, url)`` answers it."""
    try:
        request = json.loads(line)
        custom_id = str(request["custom_id"])
        body, url = request["body"], request["url"]
    except (ValueError, KeyError, TypeError):
        error = {"code": "invalid_json_line", "message": f"Line {number} is not a request."}
        return None, {"id": f"batch_req_{number}", "custom_id": None, "error": error}
    request_id = f"batch_req_fake{number}"
    try:
        response = {"status_code": 200, "request_id": request_id, "body": answer(body, url)}
    except FakeRequestError as refusal:
        response = {"status_code": 400, "request_id": request_id, "body": refusal.body()}
    return {"id": request_id, "custom_id": custom_id, "response": response, "error": None}, None


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def batch_run(batch_id: str, answer) -> dict:
    """The batch as it stands; one not run yet is run now (``answer(body, url)``)."""
    path = _batch_path(batch_id)
    batch = _read_json(path, "batch", batch_id)
    if batch["status"] in _TERMINAL:
        return batch
    lines = [line for line in file_content(batch["input_file_id"]).splitlines() if line.strip()]
    outputs, errors, failed = [], [], 0
    for number, line in enumerate(lines, start=1):
        output, error = _line_result(number, line, answer)
        if output is not None:
            outputs.append(output)
            failed += output["response"]["status_code"] != 200
        if error is not None:
            errors.append(error)
    now = int(time.time())
    batch.update(
        status="completed",
        in_progress_at=now,
        finalizing_at=now,
        completed_at=now,
        request_counts={
            "total": len(lines),
            "completed": len(outputs) - failed,
            "failed": failed + len(errors),
        },
    )
    if outputs:
        name = f"{batch_id}_output.jsonl"
        batch["output_file_id"] = file_store(
            purpose="batch_output", filename=name, content=_jsonl(outputs)
        )["id"]
    if errors:
        name = f"{batch_id}_error.jsonl"
        batch["error_file_id"] = file_store(
            purpose="batch_output", filename=name, content=_jsonl(errors)
        )["id"]
    _write_json(path, batch)
    return batch


class FakeFilesMethods:
    """Mixed into ``FakeProvider``, which supplies ``_before``, ``_refused`` and
    ``_answer_batch_line`` (a line through the fake chat or embeddings)."""

    async def files_create(
        self, target: Target, *, purpose: str, file: tuple[str, bytes, str]
    ) -> UpstreamResult:
        await self._before(target)
        return UpstreamResult(body=file_store(purpose=purpose, filename=file[0], content=file[1]))

    async def files_retrieve(self, target: Target, file_id: str) -> UpstreamResult:
        return UpstreamResult(body=file_describe(file_id))

    async def files_content(self, target: Target, file_id: str) -> UpstreamResult:
        return UpstreamResult(
            body={},
            raw=file_content(file_id),
            headers={"content-type": "application/octet-stream"},
        )

    async def files_delete(self, target: Target, file_id: str) -> UpstreamResult:
        return UpstreamResult(body=file_delete(file_id))

    async def batches_create(self, target: Target, body: dict) -> UpstreamResult:
        await self._before(target)
        try:
            return UpstreamResult(body=batch_create(body))
        except FakeRequestError as error:
            raise self._refused(error) from None

    async def batches_retrieve(self, target: Target, batch_id: str) -> UpstreamResult:
        return UpstreamResult(body=batch_run(batch_id, self._answer_batch_line))

    async def batches_cancel(self, target: Target, batch_id: str) -> UpstreamResult:
        return UpstreamResult(body=batch_cancel(batch_id))
