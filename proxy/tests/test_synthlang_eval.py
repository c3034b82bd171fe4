"""The issue's targets, measured on the compression dev set.

The dev set measures; it never tunes. Targets the engine does not reach yet are marked
`xfail(strict=True)`: they report the gap on every run, and the day they pass the suite fails
until the marker is removed, so the table in the README and this file cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.synthlang.evaluation import (
    OVERALL,
    ceiling_report,
    evaluate,
    format_report,
    load_dataset,
)
from proxy.tokens import CL100K, O200K

DATASET = Path(__file__).resolve().parents[2] / ".." / "shared" / "eval" / "compression_dev.jsonl"

pytestmark = pytest.mark.skipif(
    not DATASET.exists(), reason=f"compression dev set not found at {DATASET}"
)

VERBOSE_KINDS = ("verbose_request", "system_prompt", "multi_turn")
UNMET = (
    "not met: at medium verbose_request saves 24.2%, system_prompt 2.0%, multi_turn 0.3% and all "
    "prompts 1.0% (medians); the rules leave every negation/condition clause, name, number and "
    "assistant turn as it is. multi_turn cannot reach 25% at all: keeping nothing but its "
    "must_keep strings saves 22.5% (synthlang_eval --ceiling); see "
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
    assert "lost" in table and "emptied" in table


def test_ceilings_show_why_multi_turn_cannot_reach_its_target(items):
    """Keeping only the must_keep strings of the system and user turns (assistant turns are
    left alone by default) is the most any faithful compression could save."""
    ceilings = ceiling_report(items)
    protected_only, must_keep_only = ceilings["multi_turn"]
    assert protected_only <= must_keep_only < 0.25
    # Every compression the engine makes stays under its own ceiling.
    for kind, (protected_ceiling, _) in ceilings.items():
        if kind != OVERALL:
            assert (
                evaluate(
                    [item for item in items if item["kind"] == kind], level="high"
                ).overall.median_reduction[O200K]
                <= protected_ceiling + 0.005
            )
