"""Verification beyond cosine: is the incoming question the same question as the stored one?

Cosine similarity says two questions are about the same thing; it does not say they have the
same answer. "Convert 100 US dollars to euros" and "Convert 100 euros to US dollars" score 0.99.
Each check (``checks``) looks at one thing that decides an answer and rejects the candidate when
the two questions disagree on it. Checks run in a fixed order and the first that rejects is
named in the verdict, so metrics and the evaluation can attribute every rejection; each can be
switched off.

A rejection by ``wording`` below the paraphrase bar is *borderline*: every precise check passed
and the two questions are reworded versions of each other as far as the words go, but the
embedding does not vouch for them. Only those may be sent to a verifier model
(``proxy.response_cache.verifier``), when one is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from proxy.semantic_cache.alignment import WordVectors, align
from proxy.semantic_cache.analysis import QuestionAnalysis, analyse
from proxy.semantic_cache.checks import (
    check_entities,
    check_format,
    check_negation,
    check_numbers,
    check_question_type,
    check_quoted,
)
from proxy.semantic_cache.normalize import Lexicon, repair_spelling, word_set
from proxy.semantic_cache.order import check_order
from proxy.semantic_cache.roles import check_direction
from proxy.semantic_cache.scope import check_scope, check_wording

CHECK_QUOTED = "quoted"
CHECK_NUMBERS = "numbers"
CHECK_NEGATION = "negation"
CHECK_DIRECTION = "direction"
CHECK_ORDER = "order"
CHECK_ENTITIES = "entities"
CHECK_FORMAT = "format"
CHECK_QUESTION_TYPE = "question_type"
CHECK_SCOPE = "scope"
CHECK_WORDING = "wording"

# Cheap, precise checks first; `wording` (which also holds the paraphrase bar) last.
ALL_CHECKS: tuple[str, ...] = (
    CHECK_QUOTED,
    CHECK_NUMBERS,
    CHECK_NEGATION,
    CHECK_DIRECTION,
    CHECK_ORDER,
    CHECK_ENTITIES,
    CHECK_FORMAT,
    CHECK_QUESTION_TYPE,
    CHECK_SCOPE,
    CHECK_WORDING,
)

# A reworded question (words on both sides that the other lacks, none of them names, numbers,
# polarity or scope) needs this cosine between the two questions' embeddings. The default is
# the static local model's (docs/decisions/0004); a stronger embedder warrants its own.
DEFAULT_PARAPHRASE_THRESHOLD = 0.95
# Past this many words a question is a document: the checks were not designed for it, so only
# the exact tier may serve it.
MAX_VERIFIED_WORDS = 400
REJECTED_TOO_LONG = "too_long"


@dataclass(frozen=True)
class VerificationPolicy:
    enabled_checks: frozenset[str] = frozenset(ALL_CHECKS)
    paraphrase_threshold: float = DEFAULT_PARAPHRASE_THRESHOLD
    # True (production): words on one side only are rejected whatever the cosine. False:
    # only evidence of a different question rejects them (an added task, a narrowed phrase)
    # and the cosine decides the rest; measured with MiniLM it gains recall and loses
    # precision on unseen pairs (docs/decisions/0004), so it is an evaluation option.
    strict_scope: bool = True

    def without(self, *checks: str) -> VerificationPolicy:
        return replace(self, enabled_checks=self.enabled_checks - frozenset(checks))

    def only(self, *checks: str) -> VerificationPolicy:
        return replace(self, enabled_checks=frozenset(checks))


DEFAULT_POLICY = VerificationPolicy()


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    rejected_by: str | None = None
    reason: str = ""
    # Rejected only for want of a high enough cosine: a verifier model may decide.
    borderline: bool = False

    def __bool__(self) -> bool:
        return self.accepted


def _prepared(text: str, other: str, lexicon: Lexicon | None) -> QuestionAnalysis:
    if lexicon is None:
        return _analysed(text, None, frozenset())
    # Typos are repaired against the other question: only the words that are neither in it
    # nor near one of its words can be a typo the lexicon should repair.
    return _analysed(text, lexicon, word_set(other))


@lru_cache(maxsize=8192)
def _analysed(text: str, lexicon: Lexicon | None, protected: frozenset[str]) -> QuestionAnalysis:
    # Stored questions are verified again and again: analyse each text once per other text.
    # The analysis is never mutated after this point, so sharing it between threads is safe.
    if lexicon is not None:
        text = repair_spelling(text=text, lexicon=lexicon, protected=protected)
    analysis = analyse(text)
    _ = analysis.content_stems, analysis.substantive  # fill the cached properties now
    return analysis


def verify(
    *,
    stored: str,
    incoming: str,
    cosine: float,
    policy: VerificationPolicy = DEFAULT_POLICY,
    lexicon: Lexicon | None = None,
    word_vectors: WordVectors | None = None,
) -> Verdict:
    """Decide whether `incoming` may be answered with the answer cached for `stored`.

    `cosine` is the similarity of their embeddings; the caller has already found the candidate
    above its search threshold. `lexicon` (``embedding.english_lexicon()``) tells typos from
    real words; without it any two close spellings count as the same word. `word_vectors`
    (the static model's ``embed``) lets two synonyms count as one word; without it only
    identical words, typos, compounds and acronyms do.
    """
    if max(len(stored.split()), len(incoming.split())) > MAX_VERIFIED_WORDS:
        return Verdict(
            accepted=False,
            rejected_by=REJECTED_TOO_LONG,
            reason=f"more than {MAX_VERIFIED_WORDS} words: exact tier only",
        )
    first = _prepared(stored, incoming, lexicon)
    second = _prepared(incoming, stored, lexicon)
    enabled = policy.enabled_checks
    alignment = None
    if enabled & {CHECK_DIRECTION, CHECK_ORDER, CHECK_SCOPE, CHECK_WORDING}:
        alignment = align(first, second, lexicon=lexicon, word_vectors=word_vectors)
    checks = (
        (CHECK_QUOTED, lambda: check_quoted(first, second)),
        (CHECK_NUMBERS, lambda: check_numbers(first, second)),
        (CHECK_NEGATION, lambda: check_negation(first, second)),
        (CHECK_DIRECTION, lambda: check_direction(first, second, alignment)),
        (CHECK_ORDER, lambda: check_order(first, second, alignment)),
        (CHECK_ENTITIES, lambda: check_entities(first, second, lexicon=lexicon)),
        (CHECK_FORMAT, lambda: check_format(first, second)),
        (CHECK_QUESTION_TYPE, lambda: check_question_type(first, second)),
        (CHECK_SCOPE, lambda: check_scope(first, second, alignment, strict=policy.strict_scope)),
    )
    for name, run in checks:
        if name not in enabled:
            continue
        reason = run()
        if reason is not None:
            return Verdict(accepted=False, rejected_by=name, reason=reason)
    if CHECK_WORDING in enabled:
        outcome = check_wording(
            alignment, cosine=cosine, paraphrase_threshold=policy.paraphrase_threshold
        )
        if outcome is not None:
            reason, borderline = outcome
            return Verdict(
                accepted=False, rejected_by=CHECK_WORDING, reason=reason, borderline=borderline
            )
    return Verdict(accepted=True)


@dataclass(frozen=True)
class VerifiedMatch:
    entry_id: str
    score: float
    text: str
    meta: object


@dataclass
class CandidateReview:
    """What verification made of a lookup's candidates, best first."""

    match: VerifiedMatch | None
    verdicts: list[tuple[object, Verdict]]

    @property
    def borderline(self) -> list[object]:
        return [candidate for candidate, verdict in self.verdicts if verdict.borderline]


def review_candidates(
    *,
    candidates: list,
    incoming: str,
    policy: VerificationPolicy = DEFAULT_POLICY,
    lexicon: Lexicon | None = None,
    word_vectors: WordVectors | None = None,
) -> CandidateReview:
    """Walk index candidates best-first and stop at the first one verification accepts.

    `candidates` are `index.Candidate`s (anything with entry_id, score, text, meta).
    """
    verdicts: list[tuple[object, Verdict]] = []
    for candidate in candidates:
        verdict = verify(
            stored=candidate.text,
            incoming=incoming,
            cosine=candidate.score,
            policy=policy,
            lexicon=lexicon,
            word_vectors=word_vectors,
        )
        verdicts.append((candidate, verdict))
        if verdict.accepted:
            match = VerifiedMatch(
                entry_id=candidate.entry_id,
                score=candidate.score,
                text=candidate.text,
                meta=candidate.meta,
            )
            return CandidateReview(match=match, verdicts=verdicts)
    return CandidateReview(match=None, verdicts=verdicts)


def first_verified_candidate(**kwargs) -> tuple[VerifiedMatch | None, list[Verdict]]:
    """The accepted candidate (or None) and the verdicts of those rejected before it."""
    review = review_candidates(**kwargs)
    return review.match, [verdict for _, verdict in review.verdicts if not verdict.accepted]
