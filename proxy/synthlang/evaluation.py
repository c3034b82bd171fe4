"""Measuring compression on a labelled prompt set.

The dataset is JSONL, one conversation per line: `{"id", "kind", "messages", "must_keep"}`,
where `must_keep` lists strings that any faithful compression has to keep verbatim; messages
may carry assistant `tool_calls` and `tool` results (agent traces). For each level this
reports, per kind and overall: the median and mean reduction of prompt tokens (OpenAI's chat
accounting, whole request, on cl100k_base and o200k_base), how many must-keep strings were
lost on either encoding, how many messages were emptied and how many prompts grew.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from proxy.synthlang import agent, protect
from proxy.synthlang.engine import DEFAULT_ROLES, compress_messages, normalize_level
from proxy.tokens import CL100K, O200K, count_message_tokens

ENCODINGS = (CL100K, O200K)
OVERALL = "overall"


class DatasetError(ValueError):
    """The evaluation dataset is malformed."""


@dataclass(frozen=True)
class ItemResult:
    item_id: str
    kind: str
    tokens_before: dict[str, int]
    tokens_after: dict[str, int]
    must_keep_total: int
    must_keep_kept: int
    lost: tuple[str, ...]
    missing_in_source: int
    emptied: int = 0

    def reduction(self, encoding: str) -> float:
        before = self.tokens_before[encoding]
        return (before - self.tokens_after[encoding]) / before if before else 0.0

    @property
    def grew(self) -> bool:
        return any(self.tokens_after[enc] > self.tokens_before[enc] for enc in self.tokens_before)


@dataclass(frozen=True)
class GroupSummary:
    kind: str
    prompts: int
    median_reduction: dict[str, float]
    must_keep_kept: int
    must_keep_total: int
    grew: int
    tokens_before: dict[str, int]
    tokens_saved: dict[str, int]
    mean_reduction: dict[str, float] = field(default_factory=dict)
    emptied: int = 0

    @property
    def lost(self) -> int:
        return self.must_keep_total - self.must_keep_kept


@dataclass
class EvaluationReport:
    level: str
    items: list[ItemResult]
    groups: dict[str, GroupSummary] = field(default_factory=dict)
    seconds: float = 0.0
    chars: int = 0

    @property
    def overall(self) -> GroupSummary:
        return self.groups[OVERALL]


def load_dataset(path: str | Path) -> list[dict]:
    """Items of a JSONL dataset; raises DatasetError naming the line on malformed input."""
    items = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{path}:{number}: not valid JSON ({error})") from error
            if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
                raise DatasetError(f"{path}:{number}: expected an object with 'messages'")
            item.setdefault("id", f"line-{number}")
            item.setdefault("kind", "unknown")
            item.setdefault("must_keep", [])
            items.append(item)
    return items


def _message_texts(message: dict) -> list[str]:
    """Every text of a message a compression could change: its content (a string or the
    text of its parts, tool results nested in parts included) and its tool calls' arguments."""
    texts = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            inner = part.get("content")
            if isinstance(inner, str):
                texts.append(inner)
            elif isinstance(inner, list):
                texts.extend(
                    sub["text"]
                    for sub in inner
                    if isinstance(sub, dict) and isinstance(sub.get("text"), str)
                )
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            texts.append(function["arguments"])
    return texts


def _conversation_text(messages: list[dict]) -> str:
    return "\n\u0000\n".join(text for message in messages for text in _message_texts(message))


def _emptied(before: list[dict], after: list[dict]) -> int:
    """Messages that had text and come back with none (or only whitespace)."""
    count = 0
    for original, compressed in zip(before, after, strict=False):
        had = any(text.strip() for text in _message_texts(original))
        if had and not any(text.strip() for text in _message_texts(compressed)):
            count += 1
    return count + max(0, len(before) - len(after))


def evaluate_item(
    item: dict, *, level: str, roles: tuple[str, ...] = DEFAULT_ROLES, **engine_options
) -> ItemResult:
    source = _conversation_text(item["messages"])
    must_keep = [text for text in item["must_keep"] if text in source]
    kept = set(must_keep)
    before, after = {}, {}
    emptied = 0
    for encoding in ENCODINGS:
        compressed, _stats = compress_messages(
            item["messages"], level=level, encoding=encoding, roles=roles, **engine_options
        )
        # Count both sides from the messages rather than trusting the engine's stats.
        before[encoding] = count_message_tokens(item["messages"], encoding=encoding)
        after[encoding] = count_message_tokens(compressed, encoding=encoding)
        output = _conversation_text(compressed)
        kept = {text for text in kept if text in output}
        emptied = max(emptied, _emptied(item["messages"], compressed))
    lost = tuple(text for text in must_keep if text not in kept)
    return ItemResult(
        item_id=str(item["id"]),
        kind=str(item["kind"]),
        tokens_before=before,
        tokens_after=after,
        must_keep_total=len(must_keep),
        must_keep_kept=len(must_keep) - len(lost),
        lost=lost,
        missing_in_source=len(item["must_keep"]) - len(must_keep),
        emptied=emptied,
    )


def _summarise(kind: str, results: list[ItemResult]) -> GroupSummary:
    return GroupSummary(
        kind=kind,
        prompts=len(results),
        median_reduction={
            enc: statistics.median(result.reduction(enc) for result in results) for enc in ENCODINGS
        },
        mean_reduction={
            enc: statistics.fmean(result.reduction(enc) for result in results) for enc in ENCODINGS
        },
        emptied=sum(result.emptied for result in results),
        must_keep_kept=sum(result.must_keep_kept for result in results),
        must_keep_total=sum(result.must_keep_total for result in results),
        grew=sum(1 for result in results if result.grew),
        tokens_before={enc: sum(r.tokens_before[enc] for r in results) for enc in ENCODINGS},
        tokens_saved={
            enc: sum(r.tokens_before[enc] - r.tokens_after[enc] for r in results)
            for enc in ENCODINGS
        },
    )


def evaluate(
    items: list[dict],
    *,
    level: str,
    roles: tuple[str, ...] = DEFAULT_ROLES,
    progress=None,
    **engine_options,
) -> EvaluationReport:
    """Compress every item at `level` on both encodings and summarise per kind and overall.

    `progress`, when given, is called with (done, total) after each item; `engine_options`
    go to `compress_messages` as they are."""
    level = normalize_level(level)
    started = time.perf_counter()
    results = []
    for done, item in enumerate(items, start=1):
        results.append(evaluate_item(item, level=level, roles=roles, **engine_options))
        if progress is not None:
            progress(done, len(items))
    report = EvaluationReport(level=level, items=results)
    report.seconds = time.perf_counter() - started
    report.chars = sum(len(_conversation_text(item["messages"])) for item in items)
    kinds = sorted({result.kind for result in results})
    for kind in kinds:
        report.groups[kind] = _summarise(kind, [r for r in results if r.kind == kind])
    if results:
        report.groups[OVERALL] = _summarise(OVERALL, results)
    return report


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def format_report(report: EvaluationReport, *, show_losses: bool = True, title: str = "") -> str:
    """Plain-text table of a report, one row per kind and an overall row."""
    header = (
        f"{'kind':<22} {'items':>5} {'median cl100k':>13} {'median o200k':>12} "
        f"{'mean o200k':>10} {'lost':>9} {'emptied':>7} {'grew':>4} {'saved o200k (total)':>21}"
    )
    name = f"{title}, " if title else ""
    lines = [f"SynthLang compression, {name}level={report.level}", header, "-" * len(header)]
    for kind, group in report.groups.items():
        if kind == OVERALL:
            lines.append("-" * len(header))
        lost = f"{group.lost}/{group.must_keep_total}"
        lines.append(
            f"{kind:<22} {group.prompts:>5} {group.median_reduction[CL100K]:>13.1%} "
            f"{group.median_reduction[O200K]:>12.1%} {group.mean_reduction[O200K]:>10.1%} "
            f"{lost:>9} {group.emptied:>7} {group.grew:>4} "
            f"{group.tokens_saved[O200K]:>7}/{group.tokens_before[O200K]:<7} "
            f"{_share(group.tokens_saved[O200K], group.tokens_before[O200K]):>5.1%}"
        )
    if show_losses:
        for result in report.items:
            for text in result.lost:
                lines.append(f"lost in {result.item_id}: {text!r}")
    missing = sum(result.missing_in_source for result in report.items)
    if missing:
        lines.append(f"({missing} must_keep strings are absent from their source prompt)")
    return "\n".join(lines)


# --- Ceilings: how much any rewrite that keeps a given part could save ---------------------


def _keeping_only(messages: list[dict], roles: tuple[str, ...], keep) -> list[dict]:
    """The messages with each text of a compressed role reduced to what ``keep`` returns."""
    result = []
    for message in messages:
        content = message.get("content")
        if message.get("role") in roles and isinstance(content, str):
            message = {**message, "content": keep(content)}
        result.append(message)
    return result


def ceiling_report(
    items: list[dict], *, roles: tuple[str, ...] = DEFAULT_ROLES, encoding: str = O200K
) -> dict[str, tuple[float, float]]:
    """Per kind (and overall), the median reduction of two rewrites no compressor can beat
    under its constraints: deleting everything in the compressed roles except (a) the spans
    the engine protects (code, literals, names, negation and condition clauses) and (b) the
    item's must_keep strings only. Other roles (assistant turns, by default) stay whole."""

    def protected_only(text: str) -> str:
        return " ".join(text[start:end] for start, end in protect.protected_spans(text))

    per_kind: dict[str, list[tuple[float, float]]] = {}
    for item in items:
        messages = item["messages"]
        before = count_message_tokens(messages, encoding=encoding)
        must_keep = item["must_keep"]

        def must_keep_only(text: str, must_keep=must_keep) -> str:
            return " ".join(kept for kept in must_keep if kept in text)

        reductions = []
        for keep in (protected_only, must_keep_only):
            after = count_message_tokens(_keeping_only(messages, roles, keep), encoding=encoding)
            reductions.append((before - after) / before if before else 0.0)
        per_kind.setdefault(str(item["kind"]), []).append(tuple(reductions))
        per_kind.setdefault(OVERALL, []).append(tuple(reductions))
    return {
        kind: (
            statistics.median(pair[0] for pair in pairs),
            statistics.median(pair[1] for pair in pairs),
        )
        for kind, pairs in sorted(per_kind.items(), key=lambda entry: entry[0] == OVERALL)
    }


def format_ceiling(ceilings: dict[str, tuple[float, float]], *, roles: tuple[str, ...]) -> str:
    lines = [
        f"Ceilings (o200k_base): median reduction if the {'/'.join(roles)} turns kept only...",
        f"{'kind':<24} {'protected spans':>16} {'must_keep strings':>18}",
    ]
    for kind, (protected_only, must_keep_only) in ceilings.items():
        lines.append(f"{kind:<24} {protected_only:>16.1%} {must_keep_only:>18.1%}")
    return "\n".join(lines)


# --- The lossless ceiling of agent traffic --------------------------------------------------

_WHITESPACE_RUN_RE = re.compile(r"[ \t]+")


def _bounded_tool_text(text: str, *, file_read: bool, seen_lines: set[str]) -> str:
    if file_read:
        return text
    document = agent.minify_json_document(text)
    if document is not None:
        return document
    kept = []
    for line in text.split("\n"):
        if line.strip() and line in seen_lines:
            continue
        seen_lines.add(line)
        kept.append(_WHITESPACE_RUN_RE.sub(" ", line.strip()))
    return "\n".join(kept)


def lossless_ceiling(messages: list[dict], *, encoding: str = O200K) -> float:
    """The reduction of a rewrite more generous than any lossless one that keeps files'
    bytes: a text repeating an earlier text (whole, or inside a system or user turn) costs
    nothing; tool results that are not file reads are JSON-minified, or else lose every
    line already seen earlier at no cost and have every run of spaces collapsed to one;
    tool-call arguments are minified. Prose is otherwise left as it is (the `low` contract)."""
    calls: dict[str, dict] = {}
    earlier: list[str] = []
    seen_lines: set[str] = set()
    result = []
    for message in messages:
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            calls[str(call.get("id"))] = function
        content = message.get("content")
        if isinstance(content, str):
            new = content
            stripped = content.strip()
            if stripped and stripped in earlier:
                new = ""
            elif message.get("role") in ("tool", "function"):
                call = calls.get(str(message.get("tool_call_id")))
                new = _bounded_tool_text(
                    content, file_read=agent.is_file_read(call), seen_lines=seen_lines
                )
            else:
                for text in earlier:
                    if len(text) >= agent.MIN_REPEAT_CHARS and text in new:
                        new = new.replace(text, "")
            earlier.append(stripped)
            seen_lines.update(content.split("\n"))
            message = {**message, "content": new}
        if message.get("tool_calls"):
            message = {
                **message,
                "tool_calls": [
                    {
                        **call,
                        "function": {
                            **call["function"],
                            "arguments": agent.compress_arguments(call["function"]["arguments"]),
                        },
                    }
                    if isinstance(call.get("function", {}).get("arguments"), str)
                    else call
                    for call in message["tool_calls"]
                ],
            }
        result.append(message)
    before = count_message_tokens(messages, encoding=encoding)
    after = count_message_tokens(result, encoding=encoding)
    return (before - after) / before if before else 0.0


def lossless_ceiling_report(items: list[dict], *, encoding: str = O200K) -> dict[str, float]:
    """Per kind (and overall), the median `lossless_ceiling` of the items."""
    per_kind: dict[str, list[float]] = {}
    for item in items:
        value = lossless_ceiling(item["messages"], encoding=encoding)
        per_kind.setdefault(str(item["kind"]), []).append(value)
        per_kind.setdefault(OVERALL, []).append(value)
    return {
        kind: statistics.median(values)
        for kind, values in sorted(per_kind.items(), key=lambda entry: entry[0] == OVERALL)
    }


def format_lossless_ceiling(ceilings: dict[str, float], *, encoding: str = O200K) -> str:
    lines = [
        f"Lossless ceiling ({encoding}): median reduction if repeats cost nothing, every line "
        "seen before were free and whitespace runs collapsed (files keep their bytes)",
        f"{'kind':<24} {'ceiling':>8}",
    ]
    lines.extend(f"{kind:<24} {value:>8.1%}" for kind, value in ceilings.items())
    return "\n".join(lines)
