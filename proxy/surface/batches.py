"""``/v1/batches``: create from an uploaded batch file, retrieve, list, cancel.

A batch runs where its input file is (the same provider and key). Creating one checks
the key's access to the file's model and that the batch, priced at the batch rates,
fits the budgets now; its usage is recorded when its results are fetched
(``proxy.surface.batch_accounting``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings

from billing import budgets, pricing
from billing.selectors import aprice_for_models
from common.errors import InvalidRequest, NotFound
from proxy import views
from proxy.models import UpstreamBatch
from proxy.surface import objects
from proxy.surface.files import count_served, holder_method, page_options, rate_limited
from proxy.surface.serializers import BatchCreateRequestSerializer


async def _check_budget(principal, source) -> None:
    """Reserve the batch's estimate at the batch rates and give it back: a batch that
    would not fit the budgets now is refused before the upstream runs it."""
    price = await aprice_for_models([source.batch_model], datetime.now(tz=UTC))
    allowance = (
        0
        if source.batch_endpoint == "/v1/embeddings"
        else (settings.DEFAULT_COMPLETION_ESTIMATE * source.batch_lines)
    )
    estimate = pricing.estimate_cost_micros(
        price=pricing.batch_rates(price),
        prompt_tokens=source.batch_prompt_tokens,
        max_tokens=allowance,
    )
    reservation = await budgets.abudget_reserve(
        organization_id=principal.organization_id,
        user_id=principal.user_id,
        api_key_id=principal.key_id,
        estimate_micros=estimate,
        price=price,
        model=source.batch_model,
    )
    await budgets.abudget_release(reservation)


class BatchesView(views.ProxyEndpoint):
    http_method_names = ["get", "post"]
    endpoint = "batches"

    @views.openai_errors
    async def post(self, request):
        principal = await views.authenticate(request)
        body = views.parse_body(request, BatchCreateRequestSerializer)
        try:
            source = await objects.access_file(principal, body["input_file_id"])
        except NotFound:
            raise NotFound(
                f"No such file: '{body['input_file_id']}'.", param="input_file_id"
            ) from None
        if source.purpose != "batch" or not source.batch_model:
            raise InvalidRequest(
                "The input file was not uploaded with purpose 'batch'.", param="input_file_id"
            )
        if source.batch_endpoint != body["endpoint"]:
            raise InvalidRequest(
                f"The input file's requests go to {source.batch_endpoint}, not {body['endpoint']}.",
                param="endpoint",
            )
        principal.check_model(source.batch_model)
        headers = await rate_limited(principal)
        await _check_budget(principal, source)
        create = holder_method(source.provider, "batches_create")
        upstream_body = {**body, "input_file_id": source.upstream_id}
        result = await create(await objects.target_of(source), upstream_body)
        record = await objects.batch_record(
            principal=principal, source=source, upstream=result.body
        )
        count_served(self.endpoint)
        return views.json_response(record.snapshot, headers=headers)

    @views.openai_errors
    async def get(self, request):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        page = await objects.page_of(
            UpstreamBatch, principal, **page_options(request, default_limit=20)
        )
        count_served(self.endpoint)
        return views.json_response(page, headers=headers)


async def _refreshed(record: UpstreamBatch, method_name: str) -> dict:
    method = holder_method(record.provider, method_name)
    result = await method(await objects.target_of(record), record.upstream_id)
    record = await objects.batch_refresh(record, result.body)
    return record.snapshot


class BatchDetailView(views.ProxyEndpoint):
    http_method_names = ["get"]
    endpoint = "batches"

    @views.openai_errors
    async def get(self, request, batch_id: str):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        record = await objects.access_batch(principal, batch_id)
        snapshot = await _refreshed(record, "batches_retrieve")
        count_served(self.endpoint)
        return views.json_response(snapshot, headers=headers)


class BatchCancelView(views.ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "batches"

    @views.openai_errors
    async def post(self, request, batch_id: str):
        principal = await views.authenticate(request)
        headers = await rate_limited(principal)
        record = await objects.access_batch(principal, batch_id)
        snapshot = await _refreshed(record, "batches_cancel")
        count_served(self.endpoint)
        return views.json_response(snapshot, headers=headers)
