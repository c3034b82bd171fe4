"""Plain-text tables of an evaluation (``manage.py cache_eval``, the benchmarks)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from proxy.semantic_cache.evaluation import IDEAL_VERIFIER, EvaluationReport, Scores, score
from proxy.semantic_cache.verify import ALL_CHECKS


def format_table(*, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(cell) for cell in headers]] + [[_cell(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _score_row(name: str, scores: Scores) -> list[object]:
    return [
        name,
        scores.true_hits,
        scores.false_hits,
        scores.other_pair_hits,
        scores.positives,
        scores.precision,
        scores.strict_precision,
        scores.recall,
        scores.f1,
    ]


_SCORE_HEADERS = (
    "pipeline",
    "true hits",
    "false hits",
    "other-pair hits",
    "positives",
    "precision",
    "strict P",
    "recall",
    "F1",
)


def format_report(report: EvaluationReport) -> str:
    sections = []
    pairs_count = len(report.pipelines["verified"])
    sections.append(
        f"{pairs_count} pairs, scope: {report.scope_mode}; cosine threshold "
        f"{report.threshold:.2f}; verified: candidates >= {report.candidate_threshold:.2f}, "
        f"reworded paraphrases need >= {report.paraphrase_threshold:.2f}; words on one side "
        f"only: {'rejected (strict scope)' if report.strict_scope else 'left to the cosine'}"
    )
    sections.append(
        format_table(
            headers=_SCORE_HEADERS,
            rows=[_score_row(name, score(d)) for name, d in report.pipelines.items()],
        )
    )

    verified = report.pipelines["verified"]
    paraphrases = [d for d in verified if d.pair.kind == "paraphrase" and d.pair.same_answer]
    if paraphrases:
        hits = sum(d.hit and d.correct for d in paraphrases)
        sections.append(
            f"Paraphrase recall (verified): {hits}/{len(paraphrases)} = "
            f"{hits / len(paraphrases):.3f}"
        )
    ideal = report.pipelines.get(IDEAL_VERIFIER)
    if ideal is not None:
        calls = sum(d.verifier_calls for d in ideal)
        asked = sum(d.verifier_calls > 0 for d in ideal)
        sections.append(
            f"Ideal verifier: {calls} verifier calls on {asked} of {len(ideal)} lookups "
            f"({calls / max(len(ideal), 1):.2f} per lookup); borderline candidates of "
            f"different questions it would have to refuse: "
            f"{sum(d.verifier_calls for d in ideal if not d.hit)}"
        )

    kind_rows = []
    for kind in report.kinds():
        row: list[object] = [kind]
        for name in ("cosine (raw)", "verified"):
            scores = score(d for d in report.pipelines[name] if d.pair.kind == kind)
            row += [scores.true_hits, scores.false_hits, scores.precision, scores.recall]
        kind_pairs = [d for d in report.pipelines["verified"] if d.pair.kind == kind]
        row.insert(1, f"{sum(d.pair.same_answer for d in kind_pairs)}/{len(kind_pairs)}")
        kind_rows.append(row)
    sections.append(
        "Per kind (cosine (raw) vs verified)\n"
        + format_table(
            headers=(
                "kind",
                "same/pairs",
                "cos TP",
                "cos FP",
                "cos P",
                "cos R",
                "ver TP",
                "ver FP",
                "ver P",
                "ver R",
            ),
            rows=kind_rows,
        )
    )

    full = report.verified
    ablation_rows: list[list[object]] = [
        ["all checks", full.true_hits, full.false_hits, full.precision, full.recall, "", ""]
    ]
    for name, decisions in report.ablation.items():
        scores = score(decisions)
        switched_off_one = name in ALL_CHECKS or name == "synonyms"
        ablation_rows.append(
            [
                f"without {name}" if switched_off_one else name,
                scores.true_hits,
                scores.false_hits,
                scores.precision,
                scores.recall,
                # What the check buys: false hits that come back without it, and the true hits
                # it was refusing.
                scores.false_hits - full.false_hits if switched_off_one else "",
                scores.true_hits - full.true_hits if switched_off_one else "",
            ]
        )
    sections.append(
        "Ablation (each check switched off in turn)\n"
        + format_table(
            headers=(
                "variant",
                "true hits",
                "false hits",
                "precision",
                "recall",
                "false hits it prevents",
                "true hits it costs",
            ),
            rows=ablation_rows,
        )
    )

    rejections = Counter(
        (d.rejected_by, d.pair.same_answer)
        for d in report.pipelines["verified"]
        if not d.hit and d.rejected_by
    )
    reasons = sorted({reason for reason, _ in rejections})
    sections.append(
        "First check to reject the pair's own candidate (verified pipeline)\n"
        + format_table(
            headers=("rejected by", "different questions", "same questions (lost)"),
            rows=[
                [reason, rejections[(reason, False)], rejections[(reason, True)]]
                for reason in reasons
            ],
        )
    )

    sections.append(
        "Paraphrase cosine bar sweep (verified pipeline)\n"
        + format_table(
            headers=_SCORE_HEADERS,
            rows=[
                _score_row(f"paraphrase >= {value:.2f}", score(decisions))
                for value, decisions in report.sweep.items()
            ],
        )
    )
    others = [d for d in report.pipelines["verified"] if d.hit and d.other_pair]
    if others:
        sections.append(
            "Verified hits on another pair's stored question (unlabelled: review by hand)\n"
            + "\n".join(f"  {d.pair.second!r} -> {d.matched_text!r}" for d in others)
        )
    return "\n\n".join(sections) + "\n"
