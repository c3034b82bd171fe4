"""Multipart uploads (audio, files): the form's fields and its one file, size-limited."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig

from common.errors import InvalidRequest, RequestTooLarge

# Room for the form's other fields and the multipart boundaries around the file.
_FORM_OVERHEAD_BYTES = 64 * 1024


def _too_large(size: int, *, limit_mb: int, setting: str) -> RequestTooLarge:
    limit = limit_mb * 1024 * 1024
    return RequestTooLarge(
        f"Maximum content size limit ({limit}) exceeded ({size} bytes read): the file may be "
        f"at most {limit_mb} MB ({setting})."
    )


async def multipart_upload(
    request, *, limit_mb: int, setting: str
) -> tuple[list[tuple[str, str]], tuple[str, bytes, str]]:
    """The form's text fields as (name, value) pairs, repeated names kept, and its
    ``file`` as (name, bytes, content type).

    The declared length is checked before the body is parsed, so an oversized upload is
    refused without being parsed into a file first."""
    declared = request.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit_mb * 1024 * 1024 + _FORM_OVERHEAD_BYTES:
        raise _too_large(int(declared), limit_mb=limit_mb, setting=setting)
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("This endpoint takes a multipart/form-data upload with a 'file'.")
    try:
        # Parsing a large upload is blocking work on a spooled file: off the event loop.
        form, files = await sync_to_async(_parsed, thread_sensitive=False)(request)
    except RequestDataTooBig:
        raise RequestTooLarge(
            "The request's form fields are too large (MAX_REQUEST_BODY_MB)."
        ) from None
    upload = files.get("file")
    if upload is None:
        raise InvalidRequest("The upload has no 'file' field.", param="file")
    if upload.size > limit_mb * 1024 * 1024:
        raise _too_large(upload.size, limit_mb=limit_mb, setting=setting)
    fields = [(name, value) for name in form for value in form.getlist(name)]
    content_type = upload.content_type or "application/octet-stream"
    content = await sync_to_async(upload.read, thread_sensitive=False)()
    return fields, (upload.name or "upload", content, content_type)


def _parsed(request):
    return request.POST, request.FILES
