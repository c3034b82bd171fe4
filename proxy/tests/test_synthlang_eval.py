"""The issue's targets, measured on the dev sets and on the held-out sets in eval/.

The dev sets (outside the repository, in ../shared/eval/) measure; they never tune. The held-out
sets were written before any rule was changed and are reported beside them. Targets: at `low`
and `medium` no must-keep string lost, no message emptied, no prompt grown, on every set; on the
agent-trace dev set at the default level a median reduction of at least 20% overall and 25% on
JSON tool results.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from accounts.admin import COMPRESSION_LEVEL_FIGURES
from proxy.synthlang.evaluation import (
    OVERALL,
    _conversation_text,
    ceiling_report,
    evaluate,
    format_report,
    load_dataset,
    lossless_ceiling_report,
)
from proxy.tokens import CL100K, O200K

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / ".." / "shared" / "eval"
SETS = {
    "compression_dev": DEV / "compression_dev.jsonl",
    "agent_traces_dev": DEV / "agent_traces_dev.jsonl",
    "compression_heldout": ROOT / "eval" / "compression_heldout.jsonl",
    "agent_traces_heldout": ROOT / "eval" / "agent_traces_heldout.jsonl",
}
LEVELS = ("low", "medium", "high")
SAFE_LEVELS = ("low", "medium")


def _available(name: str):
    return pytest.param(
        name,
        marks=pytest.mark.skipif(not SETS[name].exists(), reason=f"{SETS[name]} not found"),
    )


ALL_SETS = [_available(name) for name in SETS]


@pytest.fixture(scope="module")
def reports():
    cache = {}

    def report(name: str, level: str):
        if (name, level) not in cache:
            cache[name, level] = evaluate(load_dataset(SETS[name]), level=level)
        return cache[name, level]

    return report


def test_the_default_level_is_the_lossless_one():
    assert settings.SYNTHLANG_DEFAULT_LEVEL == "low"


@pytest.mark.parametrize(
    "name", [_available(name) for name in SETS if name != "agent_traces_heldout"]
)
@pytest.mark.parametrize("level", SAFE_LEVELS)
def test_no_must_keep_string_is_lost_at_the_safe_levels(reports, name, level):
    report = reports(name, level)
    assert [(item.item_id, text) for item in report.items for text in item.lost] == []
    assert report.overall.must_keep_total > 0


_JSON_SPACE_RE = re.compile(r'(?<=[:,\[{])\s+|\s+(?=[:,\]}])|(?<=")\s+(?=:)')


@pytest.mark.parametrize("level", SAFE_LEVELS)
def test_the_agent_held_out_set_loses_only_whitespace_between_json_tokens(reports, level):
    """One must_keep string of this set (written before the rules) spells the space after a
    JSON colon, which minification removes by design; its key and value are kept."""
    items = {item["id"]: item for item in load_dataset(SETS["agent_traces_heldout"])}
    report = reports("agent_traces_heldout", level)
    for result in report.items:
        for text in result.lost:
            from proxy.synthlang import compress_messages

            compressed, _ = compress_messages(items[result.item_id]["messages"], level=level)
            assert _JSON_SPACE_RE.sub("", text) in _conversation_text(compressed), text
    assert report.overall.lost <= 1


@pytest.mark.parametrize("name", ALL_SETS)
@pytest.mark.parametrize("level", LEVELS)
def test_no_message_is_emptied_and_no_prompt_grows(reports, name, level):
    report = reports(name, level)
    assert report.overall.emptied == 0
    assert [item.item_id for item in report.items if item.grew] == []


@pytest.mark.parametrize("name", ["compression_dev", "compression_heldout"])
def test_short_prompts_and_greetings_go_upstream_as_sent(reports, name):
    if not SETS[name].exists():
        pytest.skip(f"{SETS[name]} not found")
    for level in LEVELS:
        short = [item for item in reports(name, level).items if item.kind in ("short", "greeting")]
        assert short
        for item in short:
            assert item.tokens_after == item.tokens_before, (level, item.item_id)


@pytest.mark.skipif(not SETS["agent_traces_dev"].exists(), reason="agent dev set not found")
@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_agent_traces_save_a_fifth_at_the_default_level(reports, encoding):
    report = reports("agent_traces_dev", settings.SYNTHLANG_DEFAULT_LEVEL)
    assert report.overall.median_reduction[encoding] >= 0.20
    assert report.groups["json_tool_result"].median_reduction[encoding] >= 0.25


@pytest.mark.parametrize(
    "name", [_available("agent_traces_dev"), _available("agent_traces_heldout")]
)
def test_agent_savings_stay_under_the_lossless_ceiling(reports, name):
    items = load_dataset(SETS[name])
    ceiling = lossless_ceiling_report(items, encoding=O200K)[OVERALL]
    assert reports(name, "low").overall.median_reduction[O200K] <= ceiling


@pytest.mark.parametrize("name", [_available("compression_dev"), _available("compression_heldout")])
@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_each_level_saves_at_least_as_much_as_the_one_below(reports, name, encoding):
    def saved(level):
        return sum(
            item.tokens_before[encoding] - item.tokens_after[encoding]
            for item in reports(name, level).items
        )

    assert saved("high") >= saved("medium") >= saved("low") >= 0
    assert saved("high") > saved("low")


@pytest.mark.parametrize("name", [_available("compression_dev"), _available("compression_heldout")])
def test_prose_savings_stay_under_the_protected_span_ceiling(reports, name):
    items = load_dataset(SETS[name])
    ceilings = ceiling_report(items)
    report = reports(name, "high")
    for kind, (protected_ceiling, _must_keep) in ceilings.items():
        assert report.groups[kind].median_reduction[O200K] <= protected_ceiling + 0.005, kind


def test_report_table_lists_every_kind_and_the_overall_row(reports):
    items = load_dataset(SETS["compression_heldout"])
    table = format_report(reports("compression_heldout", "medium"), title="held-out")
    for kind in {item["kind"] for item in items} | {OVERALL}:
        assert kind in table
    assert "lost" in table and "emptied" in table and "held-out" in table


@pytest.mark.parametrize("level", LEVELS)
def test_the_figures_shown_beside_the_admin_setting_are_the_measured_ones(reports, level):
    """The admin's note on compression levels quotes these held-out figures (o200k_base)."""
    agent = reports("agent_traces_heldout", level).overall
    prose = reports("compression_heldout", level).overall
    chatty = reports("compression_heldout", level).groups["verbose_request"]
    figures = COMPRESSION_LEVEL_FIGURES[level]
    assert figures["agent_median"] == pytest.approx(agent.median_reduction[O200K], abs=0.0005)
    assert figures["chatty_median"] == pytest.approx(chatty.median_reduction[O200K], abs=0.0005)
    prose_saved = prose.tokens_saved[O200K] / prose.tokens_before[O200K]
    assert figures["prose_saved"] == pytest.approx(prose_saved, abs=0.0005)
    assert figures["lost"] == prose.lost


def test_the_command_reports_every_set_quietly_when_its_output_is_not_a_terminal(capsys):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "synthlang_eval",
        "--dataset",
        str(SETS["agent_traces_heldout"]),
        "--dataset",
        str(SETS["compression_heldout"]),
        "--all-levels",
        "--ceiling",
        stdout=out,
    )
    text = out.getvalue()
    for level in LEVELS:
        assert f"agent_traces_heldout.jsonl, level={level}" in text
        assert f"compression_heldout.jsonl, level={level}" in text
    assert "Lossless ceiling (o200k_base)" in text
    assert "\r" not in text and capsys.readouterr().err == ""
