import io
import json
from pathlib import Path

import pytest

from proxy.semantic_cache.evaluation import Pair, load_pairs, run_evaluation, score
from proxy.semantic_cache.evaluation_report import format_report
from proxy.semantic_cache.verify import ALL_CHECKS

REPO = Path(__file__).resolve().parents[2]
DEV_SET = REPO.parent / "shared" / "eval" / "cache_pairs_dev.jsonl"
HELD_OUT_SET = REPO / "eval" / "cache_pairs_heldout.jsonl"
HELD_OUT_2_SET = REPO / "eval" / "cache_pairs_heldout2.jsonl"
HELD_OUT_3_SET = REPO / "eval" / "cache_pairs_heldout3.jsonl"

# Written for this test, independently of the dev set: the engine must generalise to them.
HELD_OUT = [
    ("What is the capital of France?", "What is the capital of Germany?", False),
    ("How do I go from Paris to Lyon by train?", "How do I go from Lyon to Paris by train?", False),
    ("How do I delete a branch in git?", "how do i delet a brnach in git", True),
    ("What is the population of Canada?", "What is the population density of Canada?", False),
    ("How do I install Docker?", "How do I uninstall Docker?", False),
    ("Explain recursion in Python.", "Explain recursion in Go.", False),
    ("Give me a short answer: what is DNS?", "Give me a detailed answer: what is DNS?", False),
    ("What is 12 times 12?", "What is 12 times 13?", False),
    ("How far is 10 miles in kilometers?", "How far is 10 km in miles?", False),
    ("Is coffee bad for your heart?", "Is coffee good for your heart?", False),
    ("Why do cats purr?", "Hello! Sorry to bother you, but why do cats purr? Thanks!", True),
    ("When was the Eiffel Tower built?", "Where was the Eiffel Tower built?", False),
    (
        "What are the health benefits of green tea?",
        "What health benefits does green tea have?",
        True,
    ),
    ("Does the moon orbit the earth?", "Does the earth orbit the moon?", False),
    ("How does a refrigerator work?", "Can you explain how a refrigerator works?", True),
    ("Who painted the Mona Lisa?", "who painted the mona lisa", True),
    ("Who painted the Mona Lisa?", "Who stole the Mona Lisa?", False),
    ("Can dogs eat grapes?", "Can cats eat grapes?", False),
    ("Summarize Hamlet in two sentences.", "Summarize Hamlet in ten sentences.", False),
    ("Is Pluto a planet?", "is pluto a plnaet?", True),
    ("Best laptop for programming?", "Best cheap laptop for programming?", False),
    ("How do I cook rice?", "How do I cook brown rice?", False),
    ("What is machine learning?", "What is machine learning? Answer in one word.", False),
    ("Write a poem about the sea.", "Write a poem about the sea in French.", False),
    ("What is the GDP of France?", "What is the GDP of France in 2020?", False),
]


# Recall each embedder keeps on each set, a little under what it reaches
# (docs/decisions/0004): a regression shows here.
MIN_RECALL = {
    "minilm": {
        "dev": 0.62,
        "held_out": 0.50,
        "held_out_2": 0.55,
        "held_out_3": 0.42,
        "inline": 0.6,
    },
    "static": {
        "dev": 0.55,
        "held_out": 0.40,
        "held_out_2": 0.50,
        "held_out_3": 0.35,
        "inline": 0.6,
    },
}


@pytest.fixture(scope="module", params=["minilm", "static"])
def embedder(request):
    from proxy.semantic_cache.embedding import StaticEmbedder
    from proxy.semantic_cache.minilm import MiniLMEmbedder

    return MiniLMEmbedder() if request.param == "minilm" else StaticEmbedder()


def name_of(embedder) -> str:
    return "minilm" if embedder.dim == 384 else "static"


def evaluate(pairs, embedder, **options):
    """As production runs the embedder: its own bar and scope rule, the static model's word
    vectors for synonyms."""
    from proxy.semantic_cache.embedding import StaticEmbedder, english_lexicon

    return run_evaluation(
        pairs=pairs,
        embedder=embedder,
        lexicon=english_lexicon(),
        word_vectors=StaticEmbedder().word_vectors,
        paraphrase_threshold=embedder.paraphrase_threshold,
        **options,
    )


@pytest.fixture(scope="module")
def dev_report(embedder):
    if not DEV_SET.is_file():
        pytest.skip(f"dev set not found at {DEV_SET} (it lives in shared/eval beside the repo)")
    return evaluate(load_pairs(path=DEV_SET), embedder)


def test_verified_cache_keeps_precision_on_the_dev_set(dev_report, embedder):
    verified = dev_report.verified
    assert verified.false_hits == 0 and verified.precision >= 0.99, format_report(dev_report)
    assert verified.recall >= MIN_RECALL[name_of(embedder)]["dev"], format_report(dev_report)


# Every held-out set has been looked at by now: scored unseen, the third set gave 0.955
# (static) and 0.962 (MiniLM), short of 0.99 (docs/decisions/0021). These floors keep the
# checks from regressing on them; they do not claim the target on pairs never seen.
MIN_PRECISION = {"held_out": 0.99, "held_out_2": 0.99, "held_out_3": 0.99}


@pytest.mark.parametrize(
    ("name", "path"),
    [("held_out", HELD_OUT_SET), ("held_out_2", HELD_OUT_2_SET), ("held_out_3", HELD_OUT_3_SET)],
)
def test_verified_cache_keeps_precision_on_the_committed_held_out_pairs(embedder, name, path):
    report = evaluate(load_pairs(path=path), embedder)
    verified = report.verified
    assert verified.precision >= MIN_PRECISION[name], format_report(report)
    assert verified.recall >= MIN_RECALL[name_of(embedder)][name], format_report(report)


def test_verification_beats_cosine_alone_on_the_dev_set(dev_report):
    cosine = score(dev_report.pipelines["cosine (raw)"])
    verified = dev_report.verified
    assert verified.precision > cosine.precision
    assert verified.recall > cosine.recall


def test_isolated_pairs_also_meet_the_targets(embedder):
    if not DEV_SET.is_file():
        pytest.skip(f"dev set not found at {DEV_SET}")
    report = evaluate(load_pairs(path=DEV_SET), embedder, scope_mode="isolated")
    assert report.verified.precision >= 0.99
    assert report.verified.recall >= MIN_RECALL[name_of(embedder)]["dev"]


def test_held_out_pairs_get_no_false_hit_and_most_true_ones(embedder):
    pairs = [
        Pair(pair_id=f"held-{number}", first=first, second=second, same_answer=same, kind="-")
        for number, (first, second, same) in enumerate(HELD_OUT)
    ]
    report = evaluate(pairs, embedder)
    verified = report.verified
    assert verified.false_hits == 0 and verified.other_pair_hits == 0, format_report(report)
    assert verified.recall >= MIN_RECALL[name_of(embedder)]["inline"], format_report(report)


def test_report_prints_overall_per_kind_and_ablation_tables(dev_report):
    text = format_report(dev_report)
    assert "cosine (raw)" in text and "verified" in text
    assert "Per kind" in text and "typo_case" in text
    for check in ALL_CHECKS:
        assert f"without {check}" in text


def test_pairs_file_loads_labels_and_kinds(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"id": "x", "first": "a?", "second": "b?", "same_answer": True, "kind": "k"}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    assert load_pairs(path=path) == [
        Pair(pair_id="x", first="a?", second="b?", same_answer=True, kind="k")
    ]


def test_cache_eval_command_prints_the_tables(settings, tmp_path):
    from django.core.management import call_command

    dataset = tmp_path / "pairs.jsonl"
    rows = [
        {"first": first, "second": second, "same_answer": same, "kind": "held_out"}
        for first, second, same in HELD_OUT[:6]
    ]
    dataset.write_text("\n".join(json.dumps(row) for row in rows))
    out = io.StringIO()
    call_command("cache_eval", "--dataset", str(dataset), stdout=out)
    assert "verified" in out.getvalue() and "Ablation" in out.getvalue()


def test_cache_eval_command_refuses_a_missing_dataset(settings, tmp_path):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="not found"):
        call_command("cache_eval", "--dataset", str(tmp_path / "missing.jsonl"))
