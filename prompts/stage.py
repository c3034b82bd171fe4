"""The ``prompts`` pipeline stage: a request that names a stored prompt gets it rendered.

It runs in ``prepare``, before admission, because the prompt may choose the model: model
access, rate limits, budget and the response cache then all see the rendered request.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async

from common.errors import InvalidRequest
from common.outages import DATABASE_ERRORS, refusal
from prompts import selectors
from prompts.templating import TemplateError, render
from proxy.pipeline.stage import Stage

REFERENCE_KEYS = frozenset({"id", "version", "label", "variables"})


def _reference(value) -> tuple[object, int | None, str, dict]:
    """(prompt id or name, version number, label, variables) of the request's ``prompt``."""
    if not isinstance(value, dict):
        raise InvalidRequest("prompt must be an object with an 'id'.", param="prompt")
    unknown = sorted(set(value) - REFERENCE_KEYS)
    if unknown:
        raise InvalidRequest(f"Unknown field prompt.{unknown[0]}.", param=f"prompt.{unknown[0]}")
    ref = value.get("id")
    if not (isinstance(ref, str) and ref) and not (
        isinstance(ref, int) and not isinstance(ref, bool)
    ):
        raise InvalidRequest("prompt.id must be a prompt's name or id.", param="prompt.id")
    number = value.get("version")
    label = value.get("label")
    if number is not None and label is not None:
        raise InvalidRequest(
            "Give prompt.version or prompt.label, not both.", param="prompt.version"
        )
    if isinstance(number, str) and number.isdigit():
        number = int(number)  # OpenAI's own prompt objects carry the version as a string
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        raise InvalidRequest("prompt.version must be a version number.", param="prompt.version")
    if label is not None and (not isinstance(label, str) or not label):
        raise InvalidRequest("prompt.label must be a label's name.", param="prompt.label")
    variables = value.get("variables", {})
    if not isinstance(variables, dict):
        raise InvalidRequest("prompt.variables must be an object.", param="prompt.variables")
    return ref, number, label or "", variables


def _resolve(organization_id: int, ref, number: int | None, label: str):
    prompt = selectors.prompt_find(organization_id=organization_id, ref=ref)
    if prompt is None:
        # Another organization's prompt is unknown here, exactly like one that never existed.
        raise InvalidRequest(f"Unknown prompt '{ref}'.", param="prompt.id")
    version = selectors.version_find(prompt=prompt, number=number, label=label)
    if version is None:
        if label:
            raise InvalidRequest(
                f"Prompt '{prompt.name}' has no label '{label}'.", param="prompt.label"
            )
        if number is not None:
            raise InvalidRequest(
                f"Prompt '{prompt.name}' has no version {number}.", param="prompt.version"
            )
        raise InvalidRequest(f"Prompt '{prompt.name}' has no versions.", param="prompt.id")
    return prompt.name, version.number, version.messages, version.model, version.parameters


class PromptStage(Stage):
    name = "prompts"

    async def requires_translation(self, call) -> bool:
        # A Responses request naming a stored prompt: passed through, OpenAI would look
        # for a hosted prompt of that id; translated, this stage renders the library's.
        return "prompt" in call.body

    async def prepare(self, call) -> None:
        if "prompt" not in call.body:
            return
        ref, number, label, variables = _reference(call.body["prompt"])
        try:
            name, version, template, model, parameters = await sync_to_async(_resolve)(
                call.principal.organization_id, ref, number, label
            )
        except DATABASE_ERRORS as error:
            raise refusal("prompt library") from error
        try:
            messages = render(template, variables)
        except TemplateError as error:
            raise InvalidRequest(str(error), param=error.param) from None
        body = {key: value for key, value in call.body.items() if key != "prompt"}
        extra = body.get("messages") or []
        # The version's parameters are defaults: what the request sets itself wins.
        call.body = {**parameters, **body, "messages": [*messages, *extra]}
        if model:
            call.model = model
            call.body["model"] = model
        call.annotations[self.name] = {"prompt": name, "version": version}
        if label:
            call.annotations[self.name]["label"] = label
