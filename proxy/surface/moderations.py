"""``POST /v1/moderations``: text, a list of texts, or text and image parts.

Measured in the input's tokens (OpenAI bills moderation at nothing; a price row may say
otherwise); the upstream reports no usage, so the proxy counts it.
"""

from __future__ import annotations

from proxy import views
from proxy.surface import calls
from proxy.surface.accounting import surface_usage
from proxy.surface.serializers import ModerationRequestSerializer
from proxy.tokens import count_tokens

DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


def _input_tokens(value, model: str) -> int:
    items = [value] if isinstance(value, str) else value
    texts = [
        item if isinstance(item, str) else item.get("text", "")
        for item in items
        if isinstance(item, str) or item.get("type") == "text"
    ]
    return sum(count_tokens(text, model=model) for text in texts if text)


class ModerationsView(views.ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "moderations"

    @views.openai_errors
    async def post(self, request):
        principal = await views.authenticate(request)
        body = views.parse_body(request, ModerationRequestSerializer)
        body = {**body, "model": body.get("model") or DEFAULT_MODERATION_MODEL}
        call = views.new_call(request, principal, self.endpoint, body)
        call.stream = False

        async def work():
            tokens = _input_tokens(call.body["input"], call.model)
            plan = await calls.admit(call, prompt_tokens=tokens)
            result = await calls.upstream(
                call, plan, calls.provider_method("moderations", call.body)
            )
            call.usage_estimated = True  # moderation answers carry no usage
            calls.account(call, surface_usage(prompt_tokens=tokens))
            return views.upstream_response(result, call)

        return await calls.accounted(call, work)
