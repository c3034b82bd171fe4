"""The issue's targets, measured on the compression dev set.

The dev set measures; it never tunes. Targets the engine does not reach yet are marked
`xfail(strict=True)`: they report the gap on every run, and the day they pass the suite fails
until the marker is removed, so the table in the README and this file cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.synthlang.evaluation import OVERALL, evaluate, format_report, load_dataset
from proxy.tokens import CL100K, O200K

DATASET = Path(__file__).resolve().parents[2] / ".." / "shared" / "eval" / "compression_dev.jsonl"

pytestmark = pytest.mark.skipif(
    not DATASET.exists(), reason=f"compression dev set not found at {DATASET}"
)

VERBOSE_KINDS = ("verbose_request", "system_prompt", "multi_turn")
UNMET = (
    "not met: verbose_request reaches 24.2%; system_prompt, multi_turn and the overall median are "
    "near their ceiling while every negation/condition clause and assistant turn is kept (deleting "
    "all unprotected text would leave multi_turn at 19%); see "
    "docs/decisions/0003-compression-rules.md"
)


@pytest.fixture(scope="module")
def items():
    return load_dataset(DATASET)


@pytest.fixture(scope="module")
def reports(items):
    return {level: evaluate(items, level=level) for level in ("low", "medium", "high")}


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_every_must_keep_string_survives(reports, level):
    report = reports[level]
    lost = [(item.item_id, text) for item in report.items for text in item.lost]
    assert lost == []
    assert report.overall.must_keep_kept == report.overall.must_keep_total > 0


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_no_prompt_grows(reports, level):
    assert [item.item_id for item in reports[level].items if item.grew] == []


def test_short_prompts_are_almost_untouched_at_medium(reports):
    short = [item for item in reports["medium"].items if item.kind == "short"]
    assert short, "the dev set has short prompts"
    for item in short:
        for encoding in (CL100K, O200K):
            assert item.reduction(encoding) <= 0.10, item.item_id


def test_medium_removes_tokens_from_verbose_requests(reports):
    # The floor actually achieved (24.2%); the 25% bar is tracked by the xfail below.
    group = reports["medium"].groups["verbose_request"]
    assert group.median_reduction[CL100K] >= 0.23
    assert group.median_reduction[O200K] >= 0.23


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(kind, marks=pytest.mark.xfail(strict=True, reason=UNMET))
        for kind in VERBOSE_KINDS
    ],
)
def test_medium_median_reduction_reaches_25_percent(reports, kind):
    group = reports["medium"].groups[kind]
    assert group.median_reduction[CL100K] >= 0.25
    assert group.median_reduction[O200K] >= 0.25


@pytest.mark.xfail(strict=True, reason=UNMET)
def test_medium_median_reduction_over_all_prompts_reaches_15_percent(reports):
    overall = reports["medium"].overall
    assert overall.median_reduction[CL100K] >= 0.15
    assert overall.median_reduction[O200K] >= 0.15


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_high_saves_more_tokens_than_medium(reports, encoding):
    def saved(level):
        return sum(
            item.tokens_before[encoding] - item.tokens_after[encoding]
            for item in reports[level].items
        )

    assert saved("high") > saved("medium") > saved("low") > 0


def test_report_table_lists_every_kind_and_the_overall_row(reports, items):
    table = format_report(reports["medium"])
    for kind in {item["kind"] for item in items} | {OVERALL}:
        assert kind in table
    assert "must_keep kept" in table
