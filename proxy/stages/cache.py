"""The response cache as a stage: a hit answers (no later stage, no upstream); a complete
upstream answer is stored once the client has it.

First in the default list: a hit costs one request and no budget, so the budget stage
after it never runs on one, and the lookup sees the prompt as the client wrote it.
"""

from __future__ import annotations

import logging

from proxy import metrics, response_cache
from proxy.pipeline.stage import Stage

logger = logging.getLogger("proxy.gateway")


class ResponseCacheStage(Stage):
    name = "cache"

    async def on_request(self, call) -> dict | None:
        lookup = await response_cache.cache_lookup(
            principal=call.principal, body=call.body, control=call.cache_header
        )
        # What the store needs (the key, the question's embedding) stays with the call.
        call.stage_state[self.name] = {"lookup": lookup}
        call.cache, call.cache_tier = lookup.status, lookup.tier
        metrics.CACHE_LOOKUPS.labels(result=call.cache, tier=call.cache_tier or "-").inc()
        return lookup.response if call.cache == "hit" else None

    async def on_complete(self, call, body: dict) -> None:
        lookup = call.stage_state[self.name]["lookup"]
        try:
            await response_cache.cache_store(lookup, response=body)
        except Exception:
            logger.exception("storing %s in the cache failed", call.request_id)
