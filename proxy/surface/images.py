"""``POST /v1/images/generations``: ``b64_json`` and ``url`` answers.

Measured in images: ``n`` at the model's per-image price (``Price.per_unit_micros``)
when one is set, plus tokens for the models that report them (gpt-image-1's usage).
"""

from __future__ import annotations

from billing import pricing
from proxy import views
from proxy.surface import calls
from proxy.surface.accounting import surface_usage
from proxy.surface.serializers import ImageGenerationRequestSerializer
from proxy.tokens import count_tokens

DEFAULT_IMAGE_MODEL = "dall-e-2"  # OpenAI's default when a request names none


def _usage(result_body: dict, *, asked: int, prompt_tokens: int) -> tuple[dict, bool]:
    """The usage to account and whether it was counted here rather than reported."""
    data = result_body.get("data")
    images = len(data) if isinstance(data, list) else asked
    reported = result_body.get("usage")
    if isinstance(reported, dict):
        tokens = pricing.usage_tokens(reported)
        usage = surface_usage(
            prompt_tokens=tokens.prompt_tokens,
            completion_tokens=tokens.completion_tokens,
            units=images,
        )
        return usage, False
    return surface_usage(prompt_tokens=prompt_tokens, units=images), True


class ImageGenerationsView(views.ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "images.generations"

    @views.openai_errors
    async def post(self, request):
        principal = await views.authenticate(request)
        body = views.parse_body(request, ImageGenerationRequestSerializer)
        body = {**body, "model": body.get("model") or DEFAULT_IMAGE_MODEL}
        call = views.new_call(request, principal, self.endpoint, body)
        call.stream = False

        async def work():
            asked = call.body.get("n") or 1
            tokens = count_tokens(call.body["prompt"], model=call.model)
            plan = await calls.admit(call, prompt_tokens=tokens, units=asked)
            result = await calls.upstream(
                call, plan, calls.provider_method("images_generations", call.body)
            )
            usage, counted = _usage(result.body, asked=asked, prompt_tokens=tokens)
            call.usage_estimated = counted
            calls.account(call, usage)
            return views.upstream_response(result, call)

        return await calls.accounted(call, work)
