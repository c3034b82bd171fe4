"""The optional moderation check: the request's text through ``/v1/moderations`` of the
organization's configured model, as a call of its own (admitted, priced and accounted as
a ``moderations`` usage event, like a client's call to that endpoint)."""

from __future__ import annotations

from proxy import gateway
from proxy.surface import calls
from proxy.surface.accounting import surface_usage
from proxy.tokens import count_tokens


async def flagged_categories(call, *, model: str, texts: list[str]) -> list[str]:
    """The categories the moderation model flags in ``texts`` (empty: nothing flagged).
    A failure of the moderation upstream is the client's 502/503: the organization
    asked for every request to be checked, so none goes out unchecked."""
    texts = [text for text in texts if text.strip()]
    if not texts:
        return []
    body = {"model": model, "input": texts}
    moderation_call = gateway.ProxyCall(
        principal=call.principal,
        request_id=f"{call.request_id}-moderation"[:100],
        endpoint="moderations",
        model=model,
        body=body,
    )
    tokens = sum(count_tokens(text, model=model) for text in texts)

    async def work():
        plan = await calls.admit(moderation_call, prompt_tokens=tokens)
        result = await calls.upstream(
            moderation_call, plan, calls.provider_method("moderations", body)
        )
        moderation_call.usage_estimated = True  # moderation answers carry no usage
        calls.account(moderation_call, surface_usage(prompt_tokens=tokens))
        return result.body

    answer = await calls.accounted(moderation_call, work)
    categories: set[str] = set()
    for result in answer.get("results") or ():
        if result.get("flagged"):
            named = {name for name, on in (result.get("categories") or {}).items() if on}
            categories.update(named or {"flagged"})
    return sorted(categories)
