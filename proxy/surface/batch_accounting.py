"""A batch's usage, recorded when its results are first fetched, at the batch prices.

Why then: the results file is where the upstream reports each request's tokens, and a
batch can run for a day; recording at creation would need a guess, and recording at
completion would need someone to look. The claim on the batch row (``accounted_at``)
makes it once, however many times and from however many processes the file is read.
The usage belongs to whoever created the batch, and its cost is added to the budgets
that apply to them even if they are full by now: the work is done, and hiding it would
only make the next bill a surprise.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from accounts.selectors import Principal
from billing import budgets
from billing.selectors import aprice_for_models
from proxy import accounting, gateway
from proxy.models import UpstreamFile
from proxy.surface import objects
from proxy.surface.accounting import BATCH_KEY
from proxy.surface.batch_input import batch_results_usage


async def batch_account(principal: Principal, output_file: UpstreamFile, content: bytes) -> None:
    batch = await objects.batch_to_account(output_file)
    if batch is None:
        return
    usage, upstream_model = batch_results_usage(content)
    creator = dataclasses.replace(
        principal,
        user_id=batch.user_id or principal.user_id,
        key_id=batch.api_key_id or principal.key_id,
    )
    call = gateway.ProxyCall(
        principal=creator,
        # One event per batch: the usage table's unique request id keeps it once too.
        request_id=f"batch:{batch.public_id}",
        endpoint="batches",
        model=batch.model,
        body={},
    )
    call.provider = batch.provider
    call.upstream_model = upstream_model or batch.model
    call.deployment = f"{batch.provider}/{call.upstream_model}"
    call.price = await aprice_for_models([batch.model, call.upstream_model], datetime.now(tz=UTC))
    call.reservation = await budgets.abudget_hold_for_done_work(
        organization_id=creator.organization_id,
        user_id=creator.user_id,
        api_key_id=creator.key_id,
    )
    gateway.run_in_background(accounting.finish(call, {**usage, BATCH_KEY: True}))
