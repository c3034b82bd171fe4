"""The guardrail stages of the request pipeline (the contract in ``proxy/pipeline/stage.py``).

``RulesStage`` and ``PIIStage`` come first in ``SYNTHLANG_STAGES``, rules before PII, both
before the cache (decision 0031): the rules read the client's own text in both
directions, and every later stage, the cache included, only ever sees masked text.
"""

from __future__ import annotations

from collections import Counter

from common.errors import InvalidRequest
from guardrails import masking, metrics, moderation, rules
from guardrails.errors import ContentBlocked, PiiDetected
from guardrails.models import PII_STRICTNESS, PiiMode
from guardrails.selectors import apolicy_for, strictest
from proxy.pipeline.stage import Stage

PII_HEADER = "x-synthlang-pii"


def _request_header(call, name: str) -> str:
    # ``call.headers`` holds the client's x-synthlang-* headers, names lower-cased.
    return (getattr(call, "headers", None) or {}).get(name, "").strip().lower()


async def _policy(call):
    """The call's guardrail policy: looked up once per call, though three stages and their
    translation checks each ask."""
    policy = call.stage_state.get(_POLICY)
    if policy is None:
        policy = call.stage_state[_POLICY] = await apolicy_for(call.principal)
    return policy


_POLICY = "guardrails.policy"  # its key in call.stage_state, beside the stages' own


def _kind_labels(counts: Counter) -> dict[str, int]:
    return {kind.lower(): count for kind, count in sorted(counts.items())}


class PIIStage(Stage):
    name = "pii"

    async def requires_translation(self, call) -> bool:
        # A passed-through request would reach the provider unmasked.
        policy = await _policy(call)
        return strictest(policy.pii_mode, _request_header(call, PII_HEADER)) != PiiMode.OFF

    async def prepare(self, call) -> None:
        # Validated before admission, so a typo costs the client nothing.
        header = _request_header(call, PII_HEADER)
        if header and header not in PII_STRICTNESS:
            raise InvalidRequest(
                f"{PII_HEADER} must be one of off, mask, block (got {header[:20]!r}).",
                param=PII_HEADER,
            )

    async def on_request(self, call) -> dict | None:
        policy = await _policy(call)
        # The header may tighten the organization's and the key's setting, never loosen.
        mode = strictest(policy.pii_mode, _request_header(call, PII_HEADER))
        if mode == PiiMode.OFF:
            return None
        if mode == PiiMode.BLOCK:
            counts = masking.scan_body(call.body)
            if counts:
                for kind, count in counts.items():
                    metrics.PII_FINDINGS.labels(kind=kind, action="blocked").inc(count)
                call.annotations[self.name] = {
                    "mode": "block",
                    "blocked": True,
                    **_kind_labels(counts),
                }
                kinds = ", ".join(sorted(counts))
                raise PiiDetected(
                    f"The request was refused: it contains {kinds} "
                    f"(this organization blocks personal data and secrets).",
                    param="messages",
                )
            call.annotations[self.name] = {"mode": "block", "blocked": False}
            return None
        masker = masking.Masker()
        call.body = masking.mask_body(call.body, masker)
        call.stage_state[self.name] = {"values": masker.values}
        for kind, count in masker.counts.items():
            metrics.PII_FINDINGS.labels(kind=kind, action="masked").inc(count)
        call.annotations[self.name] = {"mode": "mask", **_kind_labels(masker.counts)}
        return None

    def _values(self, call) -> dict[str, str]:
        return call.stage_state.get(self.name, {}).get("values") or {}

    async def on_response(self, call, body: dict) -> dict:
        return masking.restore_answer(body, self._values(call))

    def stream_filter(self, call):
        values = self._values(call)
        return masking.StreamRestorer(values) if values else None


class ModerationStage(Stage):
    """The organization's moderation model checks the request, after masking: the
    moderation provider never sees the values the pii stage replaced."""

    name = "moderation"

    async def requires_translation(self, call) -> bool:
        return bool((await _policy(call)).moderation_model)

    async def on_request(self, call) -> dict | None:
        policy = await _policy(call)
        if not policy.moderation_model:
            return None
        texts = [container[key] for container, key in masking.message_texts(call.body)]
        categories = await moderation.flagged_categories(
            call, model=policy.moderation_model, texts=texts
        )
        call.annotations[self.name] = {"flagged": bool(categories)}
        if categories:
            metrics.RULE_BLOCKS.labels(side="moderation").inc()
            raise ContentBlocked(
                "The request was refused by the organization's moderation check "
                f"({', '.join(categories)}).",
                param="messages",
            )
        return None


def _answer_texts(body: dict) -> list[str]:
    texts = []
    for choice in body.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                texts.append(message["content"])
            for tool_call in message.get("tool_calls") or ():
                function = tool_call.get("function") if isinstance(tool_call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    texts.append(function["arguments"])
    return texts


class RulesStage(Stage):
    name = "rules"

    async def requires_translation(self, call) -> bool:
        # Answer rules read the answer, which a passed-through call never shows the stages.
        return bool((await _policy(call)).rules)

    async def on_request(self, call) -> dict | None:
        policy = await _policy(call)
        if not policy.rules:
            return None
        call.stage_state[self.name] = {"rules": policy.rules}
        texts = [container[key] for container, key in masking.message_texts(call.body)]
        verdict = rules.evaluate(policy.rules, "request", texts)
        if verdict:
            metrics.RULE_BLOCKS.labels(side="request").inc()
            call.annotations[self.name] = {"blocked": "request", "rule": verdict.rule}
            raise ContentBlocked(
                f"The request was refused by the organization's rule {verdict.rule!r}.",
                param="messages",
            )
        return None

    def _rules(self, call) -> tuple:
        return call.stage_state.get(self.name, {}).get("rules") or ()

    async def on_response(self, call, body: dict) -> dict:
        active = self._rules(call)
        if not active:
            return body
        verdict = rules.evaluate(active, "response", _answer_texts(body))
        if verdict:
            metrics.RULE_BLOCKS.labels(side="response").inc()
            call.annotations[self.name] = {"blocked": "response", "rule": verdict.rule}
            # The upstream was paid for; the pipeline still accounts the call.
            raise ContentBlocked(
                f"The answer was withheld: it matched the organization's rule {verdict.rule!r}."
            )
        return body

    def stream_filter(self, call):
        active = tuple(rule for rule in self._rules(call) if rule.applies_to("response"))
        if not any(rule.action == "deny" for rule in active):
            return None
        return RulesStreamFilter(self, call, active)


class RulesStreamFilter:
    """Checks a stream's text as it grows. Sent text cannot be called back, so the last
    few characters (as many as the longest pattern has) are held until the next chunk:
    a phrase cut across chunks never leaks its first half. On a match the text is cut
    where the match starts, the choice ends with ``finish_reason: "content_filter"``
    (OpenAI's own value for this) and the rest of its text is dropped; chunks without
    choices (the usage chunk) still pass, so the call is accounted."""

    # Only the recent tail is searched again on each chunk: linear work per stream.
    WINDOW = 4096

    def __init__(self, stage: RulesStage, call, active: tuple) -> None:
        self.stage, self.call, self.rules = stage, call, active
        longest = max(len(rule.compiled.pattern) for rule in active)
        self.hold = min(longest, 500)
        self.sent: dict[int, str] = {}  # the recent tail of what each choice has sent
        self.pending: dict[int, str] = {}
        self.stopped: set[int] = set()
        self._template: dict | None = None

    def feed(self, chunk: dict) -> list[dict]:
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return [chunk]
        self._template = chunk
        kept = []
        for choice in choices:
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            index = choice.get("index", 0)
            if index in self.stopped:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            piece = delta.get("content")
            if not isinstance(piece, str):
                piece = ""
            emit, stopped = self._advance(index, piece, final=bool(choice.get("finish_reason")))
            if stopped:
                kept.append(
                    {
                        **choice,
                        "delta": {**delta, "content": emit},
                        "finish_reason": "content_filter",
                    }
                )
            elif "content" in delta or emit:
                kept.append({**choice, "delta": {**delta, "content": emit}})
            else:
                kept.append(choice)
        if not kept:
            return []
        return [{**chunk, "choices": kept}]

    def _advance(self, index: int, piece: str, *, final: bool) -> tuple[str, bool]:
        sent = self.sent.get(index, "")
        unsent = self.pending.get(index, "") + piece
        whole = sent + unsent
        window_start = max(len(sent) - self.WINDOW, 0)
        cut = self._deny_start(whole[window_start:])
        if cut is not None:
            self.stopped.add(index)
            metrics.RULE_BLOCKS.labels(side="response").inc()
            self.call.annotations[self.stage.name] = {"blocked": "stream"}
            return unsent[: max(window_start + cut - len(sent), 0)], True
        if final or len(unsent) <= self.hold:
            emit, keep = (unsent, "") if final else ("", unsent)
        else:
            emit, keep = unsent[: len(unsent) - self.hold], unsent[len(unsent) - self.hold :]
        self.pending[index] = keep
        self.sent[index] = (sent + emit)[-self.WINDOW :]
        return emit, False

    def _deny_start(self, text: str) -> int | None:
        verdict = rules.evaluate(self.rules, "response", [text])
        if verdict is None:
            return None
        for rule in self.rules:
            if rule.name == verdict.rule:
                try:
                    match = rule.compiled.search(text, timeout=rules.SEARCH_TIMEOUT_SECONDS)
                except TimeoutError:
                    return 0
                return match.start() if match else 0
        return 0

    def close(self) -> list[dict]:
        tails = {i: text for i, text in self.pending.items() if text and i not in self.stopped}
        self.pending.clear()
        if not tails or self._template is None:
            return []
        choices = [
            {"index": index, "delta": {"content": text}, "finish_reason": None}
            for index, text in tails.items()
        ]
        return [{**self._template, "choices": choices}]
