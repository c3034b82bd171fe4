"""``/v1/files``: upload (multipart, with ``purpose``), list, retrieve, content, delete.

A file goes to the provider that will use it: a batch input file to the deployment its
model routes to (so the batch runs where its file is), any other file to the
organization's default provider. Each file is the organization's: the proxy answers
under its own ids and another organization's id is a 404. Fetching a batch's output
file is when the batch is accounted (``proxy.surface.batch_accounting``).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from accounts.selectors import Principal
from common.errors import InvalidRequest, NotFound
from proxy import metrics, ratelimit, routing, views
from proxy.models import UpstreamFile
from proxy.providers import provider_for
from proxy.providers.base import UpstreamError
from proxy.surface import objects
from proxy.surface.batch_accounting import batch_account
from proxy.surface.batch_input import batch_input_read
from proxy.surface.uploads import multipart_upload

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Files and batches live on an upstream that implements OpenAI's Files and Batch APIs.
HOLDING_PROVIDERS = ("openai", "fake")


async def rate_limited(principal: Principal) -> dict[str, str]:
    """A request against the caller's rate limits (no tokens); its headers."""
    admission = await ratelimit.admit(principal, tokens=0)
    return admission.headers


def page_options(request, *, default_limit: int) -> dict:
    raw = request.GET.get("limit", "")
    if raw and not raw.isdigit():
        raise InvalidRequest("limit must be a whole number.", param="limit")
    limit = int(raw) if raw else default_limit
    if not 1 <= limit <= 10_000:
        raise InvalidRequest("limit must be between 1 and 10000.", param="limit")
    return {"limit": limit, "after": request.GET.get("after", "")}


def holder_method(provider_name: str, name: str):
    """``provider.<name>``, with the upstream's 404 as ours: an object deleted upstream
    (or expired there) is gone, not a missing model."""
    provider = provider_for(provider_name)
    method = getattr(provider, name, None)
    if method is None:
        raise InvalidRequest(
            f"The '{provider_name}' provider has no Files or Batch API; route the model to "
            "an OpenAI-compatible provider.",
            param="model",
        )

    async def call(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except UpstreamError as error:
            if error.upstream_status == 404:
                raise NotFound(error.message, param="id") from None
            raise

    return call


def count_served(endpoint: str, status: int = 200) -> None:
    # These calls leave no usage event (nothing is billed until a batch's results are
    # fetched), so they are counted here.
    metrics.REQUESTS.labels(endpoint=endpoint, model="", status=str(status)).inc()


async def _batch_holder(principal: Principal, model: str) -> routing.DeploymentPlan:
    principal.check_model(model)
    plan = await routing.resolve_route(principal.organization_id, model)
    for deployment in routing.attempt_order(plan):
        if deployment.provider in HOLDING_PROVIDERS:
            return deployment
    raise InvalidRequest(
        f"The model '{model}' routes to no OpenAI-compatible provider, which batches need.",
        param="model",
    )


class FilesView(views.ProxyEndpoint):
    http_method_names = ["get", "post"]
    endpoint = "files"

    @views.openai_errors
    async def post(self, request):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        fields, file = await multipart_upload(
            request, limit_mb=settings.FILE_UPLOAD_MAX_MB, setting="FILE_UPLOAD_MAX_MB"
        )
        purpose = dict(fields).get("purpose", "")
        if purpose not in FILE_PURPOSES:
            raise InvalidRequest(
                f"purpose must be one of {', '.join(FILE_PURPOSES)}.", param="purpose"
            )
        batch_fields = {}
        if purpose == "batch":
            batch = batch_input_read(file[1])
            holder = await _batch_holder(principal, batch.model)
            content = batch.for_upstream(holder.upstream_model)
            file = (file[0], content, file[2])
            batch_fields = {
                "batch_model": batch.model,
                "batch_endpoint": batch.url,
                "batch_lines": len(batch.lines),
                "batch_prompt_tokens": batch.prompt_tokens,
            }
        else:
            holder = await objects.default_holder(principal.organization_id)
        create = holder_method(holder.provider, "files_create")
        result = await create(holder.target(), purpose=purpose, file=file)
        record = await objects.file_record(
            principal=principal,
            plan=holder,
            upstream=result.body,
            purpose=purpose,
            filename=file[0],
            bytes=len(file[1]),
            **batch_fields,
        )
        count_served(self.endpoint)
        return views.json_response(record.snapshot, headers=headers)

    @views.openai_errors
    async def get(self, request):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        options = page_options(request, default_limit=10_000)
        page = await objects.page_of(
            UpstreamFile, principal, purpose=request.GET.get("purpose", ""), **options
        )
        count_served(self.endpoint)
        return views.json_response(page, headers=headers)


class FileDetailView(views.ProxyEndpoint):
    http_method_names = ["get", "delete"]
    endpoint = "files"

    @views.openai_errors
    async def get(self, request, file_id: str):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        record = await objects.access_file(principal, file_id)
        retrieve = holder_method(record.provider, "files_retrieve")
        result = await retrieve(await objects.target_of(record), record.upstream_id)
        snapshot = objects.file_snapshot(record, result.body)
        await objects.snapshot_save(record, snapshot)
        count_served(self.endpoint)
        return views.json_response(snapshot, headers=headers)

    @views.openai_errors
    async def delete(self, request, file_id: str):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        record = await objects.access_file(principal, file_id)
        delete = holder_method(record.provider, "files_delete")
        await delete(await objects.target_of(record), record.upstream_id)
        await objects.file_forget(record)
        count_served(self.endpoint)
        return views.json_response(
            {"id": file_id, "object": "file", "deleted": True}, headers=headers
        )


class FileContentView(views.ProxyEndpoint):
    http_method_names = ["get"]
    endpoint = "files"

    @views.openai_errors
    async def get(self, request, file_id: str):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        record = await objects.access_file(principal, file_id)
        content = holder_method(record.provider, "files_content")
        result = await content(await objects.target_of(record), record.upstream_id)
        if record.purpose == "batch_output":
            await batch_account(principal, record, result.raw or b"")
        response = HttpResponse(result.raw or b"", content_type=result.headers.get("content-type"))
        for name, value in headers.items():
            response[name] = value
        count_served(self.endpoint)
        return response
