"""Offline evaluation of the semantic cache on labelled question pairs.

Each JSONL line holds `first`, `second`, `same_answer` and `kind`. Every `first` is stored, then
every `second` is asked. All firsts go into ONE shared scope by default, because that is what
production looks like: a tenant's scope holds many questions and a lookup competes with all of
them, so a hit on a *different* stored question (another ibuprofen question, another 401(k)
question) is a possible false hit and is counted as one. `scope_mode="isolated"` compares each
second with its own first only, which is what a pairwise precision/recall usually reports.

Pipelines scored:
- `cosine (raw)`: the seed's behaviour, cosine of raw-text embeddings >= threshold;
- `cosine (normalised)`: the same on normalised, spelling-repaired text;
- `verified`: normalised embeddings, candidates >= candidate threshold, then verification;
- `verified + ideal verifier`: as if a verifier model answered every *borderline* candidate
  (every precise check passed, the cosine did not vouch) correctly. It bounds what a real
  verifier can add and counts the calls it would cost; it is not a measurement of one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from proxy.semantic_cache.alignment import WordVectors
from proxy.semantic_cache.embedding import Embedder
from proxy.semantic_cache.index import Candidate, SemanticIndex, Storage
from proxy.semantic_cache.normalize import Lexicon, normalize_for_embedding, normalize_text
from proxy.semantic_cache.verify import (
    ALL_CHECKS,
    DEFAULT_PARAPHRASE_THRESHOLD,
    VerificationPolicy,
    review_candidates,
)

ScopeMode = Literal["shared", "isolated"]
DEFAULT_COSINE_THRESHOLD = 0.95
DEFAULT_CANDIDATE_THRESHOLD = 0.5
DEFAULT_CANDIDATES = 5
PARAPHRASE_SWEEP = (0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.95, 1.01)
IDEAL_VERIFIER = "verified + ideal verifier"


@dataclass(frozen=True)
class Pair:
    pair_id: str
    first: str
    second: str
    same_answer: bool
    kind: str


def load_pairs(*, path: Path | str) -> list[Pair]:
    pairs = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            pairs.append(
                Pair(
                    pair_id=str(row.get("id", number)),
                    first=row["first"],
                    second=row["second"],
                    same_answer=bool(row["same_answer"]),
                    kind=str(row.get("kind", "unknown")),
                )
            )
    return pairs


@dataclass(frozen=True)
class Decision:
    pair: Pair
    hit: bool
    correct: bool  # the hit answered this pair's own (equivalent) question
    rejected_by: str | None = None
    # A hit on ANOTHER pair's stored question: the labels are pairwise, so nobody has said
    # whether that question is the same; it is listed for review and scored apart.
    other_pair: bool = False
    matched_text: str | None = None
    # Borderline candidates a verifier model would have been asked about.
    verifier_calls: int = 0


@dataclass(frozen=True)
class Scores:
    true_hits: int
    false_hits: int
    positives: int
    pairs: int
    other_pair_hits: int = 0

    @property
    def precision(self) -> float | None:
        """Over labelled decisions: hits on other pairs' questions are left out (see strict)."""
        served = self.true_hits + self.false_hits
        return self.true_hits / served if served else None

    @property
    def strict_precision(self) -> float | None:
        """As if every hit on another pair's question were wrong: a lower bound."""
        served = self.true_hits + self.false_hits + self.other_pair_hits
        return self.true_hits / served if served else None

    @property
    def recall(self) -> float | None:
        return self.true_hits / self.positives if self.positives else None

    @property
    def f1(self) -> float | None:
        precision, recall = self.precision, self.recall
        if not precision or not recall:
            return None if precision is None or recall is None else 0.0
        return 2 * precision * recall / (precision + recall)


def score(decisions: Iterable[Decision]) -> Scores:
    decisions = list(decisions)
    return Scores(
        true_hits=sum(d.hit and d.correct for d in decisions),
        false_hits=sum(d.hit and not d.correct and not d.other_pair for d in decisions),
        positives=sum(d.pair.same_answer for d in decisions),
        pairs=len(decisions),
        other_pair_hits=sum(d.hit and d.other_pair for d in decisions),
    )


@dataclass
class EvaluationReport:
    threshold: float
    candidate_threshold: float
    paraphrase_threshold: float
    scope_mode: ScopeMode
    strict_scope: bool = True
    pipelines: dict[str, list[Decision]] = field(default_factory=dict)
    ablation: dict[str, list[Decision]] = field(default_factory=dict)
    sweep: dict[float, list[Decision]] = field(default_factory=dict)

    @property
    def verified(self) -> Scores:
        return score(self.pipelines["verified"])

    def kinds(self) -> list[str]:
        return sorted({d.pair.kind for d in self.pipelines["verified"]})


class _Embedded:
    """Embeddings of every text the evaluation needs, computed once."""

    def __init__(self, *, pairs: Sequence[Pair], embedder: Embedder, lexicon: Lexicon | None):
        self.raw_first = embedder.embed([pair.first for pair in pairs])
        self.raw_second = embedder.embed([pair.second for pair in pairs])
        self.normalised_first = embedder.embed(
            [normalize_for_embedding(text=pair.first, lexicon=lexicon) for pair in pairs]
        )
        self.normalised_second = embedder.embed(
            [normalize_for_embedding(text=pair.second, lexicon=lexicon) for pair in pairs]
        )


def _candidates_for(
    *,
    pairs: Sequence[Pair],
    stored_vectors: np.ndarray,
    asked_vectors: np.ndarray,
    threshold: float,
    k: int,
    scope_mode: ScopeMode,
    storage: Storage = "float32",
) -> list[list[Candidate]]:
    if scope_mode == "isolated":
        results = []
        for pair, stored, asked in zip(pairs, stored_vectors, asked_vectors, strict=True):
            cosine = float(np.dot(stored, asked))
            results.append(
                [Candidate(entry_id=pair.pair_id, score=cosine, text=pair.first)]
                if cosine >= threshold
                else []
            )
        return results
    index = SemanticIndex(
        dim=stored_vectors.shape[1], max_items=max(len(pairs), 1), storage=storage
    )
    for pair, vector in zip(pairs, stored_vectors, strict=True):
        index.add(entry_id=pair.pair_id, vector=vector, text=pair.first)
    return [index.search(vector=vector, k=k, threshold=threshold) for vector in asked_vectors]


def _is_own_question(pair: Pair, entry_text: str, entry_id: str) -> bool:
    # Duplicate firsts across pairs are the same stored question: a hit on either is right.
    return entry_id == pair.pair_id or normalize_text(entry_text) == normalize_text(pair.first)


def _is_same_text(pair: Pair, entry_text: str) -> bool:
    # Another pair stored exactly the question asked: the exact tier would serve it anyway.
    return normalize_text(entry_text) == normalize_text(pair.second)


def _decision(
    *, pair: Pair, entry_id: str | None, entry_text: str | None, rejected_by: str | None
) -> Decision:
    if entry_id is None or entry_text is None:
        return Decision(pair=pair, hit=False, correct=False, rejected_by=rejected_by)
    own = _is_own_question(pair, entry_text, entry_id)
    same_text = _is_same_text(pair, entry_text)
    return Decision(
        pair=pair,
        hit=True,
        correct=(own and pair.same_answer) or same_text,
        other_pair=not own and not same_text,
        matched_text=entry_text,
    )


def _cosine_decisions(
    *, pairs: Sequence[Pair], candidates: list[list[Candidate]]
) -> list[Decision]:
    decisions = []
    for pair, found in zip(pairs, candidates, strict=True):
        best = found[0] if found else None
        decisions.append(
            _decision(
                pair=pair,
                entry_id=best.entry_id if best else None,
                entry_text=best.text if best else None,
                rejected_by="threshold",
            )
        )
    return decisions


def _verified_decisions(
    *,
    pairs: Sequence[Pair],
    candidates: list[list[Candidate]],
    policy: VerificationPolicy,
    lexicon: Lexicon | None,
    word_vectors: WordVectors | None,
    ideal_verifier: bool = False,
) -> list[Decision]:
    decisions = []
    for pair, found in zip(pairs, candidates, strict=True):
        review = review_candidates(
            candidates=found,
            incoming=pair.second,
            policy=policy,
            lexicon=lexicon,
            word_vectors=word_vectors,
        )
        own_rejection = next(
            (
                verdict.rejected_by
                for candidate, verdict in review.verdicts
                if candidate.entry_id == pair.pair_id and not verdict.accepted
            ),
            None,
        )
        match = review.match
        calls = 0
        if ideal_verifier and match is None:
            # The verifier is asked about borderline candidates best first; an ideal one
            # accepts exactly the candidates that are the same question.
            for candidate in review.borderline:
                calls += 1
                if _is_own_question(pair, candidate.text, candidate.entry_id) and pair.same_answer:
                    match = candidate
                    break
        decision = _decision(
            pair=pair,
            entry_id=match.entry_id if match else None,
            entry_text=match.text if match else None,
            rejected_by=own_rejection or "threshold",
        )
        decisions.append(replace(decision, verifier_calls=calls))
    return decisions


def run_evaluation(
    *,
    pairs: Sequence[Pair],
    embedder: Embedder,
    lexicon: Lexicon | None = None,
    threshold: float = DEFAULT_COSINE_THRESHOLD,
    candidate_threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
    paraphrase_threshold: float = DEFAULT_PARAPHRASE_THRESHOLD,
    scope_mode: ScopeMode = "shared",
    word_vectors: WordVectors | None = None,
    k: int = DEFAULT_CANDIDATES,
    storage: Storage = "float32",
    strict_scope: bool = True,
) -> EvaluationReport:
    embedded = _Embedded(pairs=pairs, embedder=embedder, lexicon=lexicon)
    report = EvaluationReport(
        threshold=threshold,
        candidate_threshold=candidate_threshold,
        paraphrase_threshold=paraphrase_threshold,
        scope_mode=scope_mode,
        strict_scope=strict_scope,
    )
    common = {"pairs": pairs, "k": k, "scope_mode": scope_mode, "storage": storage}
    report.pipelines["cosine (raw)"] = _cosine_decisions(
        pairs=pairs,
        candidates=_candidates_for(
            stored_vectors=embedded.raw_first,
            asked_vectors=embedded.raw_second,
            threshold=threshold,
            **common,
        ),
    )
    report.pipelines["cosine (normalised)"] = _cosine_decisions(
        pairs=pairs,
        candidates=_candidates_for(
            stored_vectors=embedded.normalised_first,
            asked_vectors=embedded.normalised_second,
            threshold=threshold,
            **common,
        ),
    )
    candidates = _candidates_for(
        stored_vectors=embedded.normalised_first,
        asked_vectors=embedded.normalised_second,
        threshold=candidate_threshold,
        **common,
    )
    policy = VerificationPolicy(
        paraphrase_threshold=paraphrase_threshold, strict_scope=strict_scope
    )
    verified = {
        "pairs": pairs,
        "candidates": candidates,
        "lexicon": lexicon,
        "word_vectors": word_vectors,
    }
    report.pipelines["verified"] = _verified_decisions(policy=policy, **verified)
    report.pipelines[IDEAL_VERIFIER] = _verified_decisions(
        policy=policy, ideal_verifier=True, **verified
    )
    report.ablation["no checks (candidates only)"] = _verified_decisions(
        policy=policy.only(), **verified
    )
    for check in ALL_CHECKS:
        report.ablation[check] = _verified_decisions(policy=policy.without(check), **verified)
    if word_vectors is not None:
        report.ablation["synonyms"] = _verified_decisions(
            policy=policy, **{**verified, "word_vectors": None}
        )
    for value in PARAPHRASE_SWEEP:
        report.sweep[value] = _verified_decisions(
            policy=replace(policy, paraphrase_threshold=value), **verified
        )
    return report
