"""Semantic cache engine benchmark: embedding, verification, index search, memory.

Run: `.venv/bin/python bench/semantic_cache_bench.py [--embedder static|minilm]
[--dataset PAIRS.jsonl] [--sizes 1000,10000]`

Prints plain-text tables:
- embedding latency per sentence (one sentence per call, as on the hot path), p50/p99;
- verification latency per candidate;
- index search latency at 1k/10k/100k entries for float32, float16 and int8 storage;
- memory per 100,000 entries (vector storage, and with question texts held for verification);
- the recall cost of compact storage: top-1 agreement with float32 on near-duplicate queries and,
  with --dataset, the dev-set precision/recall per storage;
- the engine's share of a semantic hit: normalise + embed + search (10k) + verify, p50/p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.semantic_cache.embedding import StaticEmbedder, english_lexicon
from proxy.semantic_cache.evaluation import load_pairs, run_evaluation
from proxy.semantic_cache.evaluation_report import format_table
from proxy.semantic_cache.index import SemanticIndex
from proxy.semantic_cache.minilm import MiniLMEmbedder
from proxy.semantic_cache.normalize import normalize_for_embedding
from proxy.semantic_cache.verify import verify

SENTENCES = [
    "What is the capital of France?",
    "How do I reset my password if I no longer have access to my email?",
    "Explain the difference between a process and a thread in operating systems.",
    "hi, quick question: how many tablespoons are in a cup?",
    "Write a Python function that checks whether a string is a palindrome.",
    "What are the side effects of ibuprofen when taken on an empty stomach?",
    "Convert 100 US dollars to euros.",
    "Summarize the causes of the First World War in three bullet points.",
]
# As the proxy runs (proxy/response_cache/embedder.py): one BLAS thread per search.
threadpool_limits(limits=1, user_api="blas")
# The dimension of the embedder being measured (set in main).
EMBEDDING_DIM = 256
# Synonym matching uses the static model's word vectors whatever embeds the questions.
WORD_VECTORS = StaticEmbedder().word_vectors
TYPICAL_QUESTION = "How do I convert a string to an integer in Python without raising errors?"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def timed_ms(function, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def clustered_vectors(count: int, generator: np.random.Generator) -> np.ndarray:
    # Real question embeddings are clustered by topic, not uniform on the sphere.
    centres = generator.normal(size=(max(count // 50, 1), EMBEDDING_DIM)).astype(np.float32)
    members = centres[generator.integers(0, len(centres), size=count)]
    vectors = members + 0.6 * generator.normal(size=(count, EMBEDDING_DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def bench_embedding(embedder) -> list[list[object]]:
    start = time.perf_counter()
    embedder.warm_up()
    load_ms = (time.perf_counter() - start) * 1000
    sentences = SENTENCES * 25
    samples = [timed_ms(lambda s=sentence: embedder.embed([s]), 1)[0] for sentence in sentences]
    batch_ms = timed_ms(lambda: embedder.embed(sentences[:32]), 5)
    return [
        ["model load (once per process)", f"{load_ms:.0f} ms", ""],
        [
            "embed one sentence",
            f"p50 {statistics.median(samples):.2f} ms",
            f"p99 {percentile(samples, 0.99):.2f} ms",
        ],
        ["embed a batch of 32", f"{statistics.median(batch_ms) / 32:.2f} ms/sentence", ""],
    ]


def bench_verify(embedder) -> list[list[object]]:
    lexicon = english_lexicon()
    pairs = [(SENTENCES[i], SENTENCES[(i + 1) % len(SENTENCES)]) for i in range(len(SENTENCES))]
    samples = []
    for _ in range(50):
        for stored, incoming in pairs:
            samples += timed_ms(
                lambda s=stored, i=incoming: verify(
                    stored=s,
                    incoming=i,
                    cosine=0.95,
                    lexicon=lexicon,
                    word_vectors=WORD_VECTORS,
                ),
                1,
            )
    return [
        [
            "verify one candidate",
            f"p50 {statistics.median(samples):.3f} ms",
            f"p99 {percentile(samples, 0.99):.3f} ms",
        ]
    ]


def bench_index(sizes: list[int]) -> tuple[list[list[object]], list[list[object]]]:
    generator = np.random.default_rng(42)
    latency_rows = []
    fidelity_rows = []
    for size in sizes:
        vectors = clustered_vectors(size, generator)
        noise = 0.05 * generator.normal(size=(200, EMBEDDING_DIM)).astype(np.float32)
        targets = generator.integers(0, size, size=200)
        queries = vectors[targets] + noise
        reference: list[str] | None = None
        for storage in ("float32", "float16", "int8"):
            index = SemanticIndex(dim=EMBEDDING_DIM, max_items=size, storage=storage)
            for position, vector in enumerate(vectors):
                index.add(entry_id=str(position), vector=vector, text="")
            samples = [
                timed_ms(lambda q=query, i=index: i.search(vector=q, k=5, threshold=0.5), 1)[0]
                for query in queries
            ]
            best = [index.search(vector=query, k=1)[0].entry_id for query in queries]
            if storage == "float32":
                reference = best
            agreement = sum(a == b for a, b in zip(best, reference or best, strict=True))
            latency_rows.append(
                [
                    f"{size:,}",
                    storage,
                    f"{statistics.median(samples):.2f}",
                    f"{percentile(samples, 0.99):.2f}",
                ]
            )
            fidelity_rows.append(
                [f"{size:,}", storage, f"{agreement}/{len(queries)}", f"{index.memory_bytes():,}"]
            )
    return latency_rows, fidelity_rows


def bench_memory() -> list[list[object]]:
    """Vector storage at 100,000 entries, plus the Python objects (ids, texts) measured on 20,000.

    tracemalloc slows every allocation, so the per-entry object overhead is measured on a fifth
    of the entries and scaled; the vector matrix is measured at full size.
    """
    sample = 20_000
    generator = np.random.default_rng(3)
    vectors = clustered_vectors(sample, generator)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = SemanticIndex(dim=EMBEDDING_DIM, max_items=sample)
    for position, vector in enumerate(vectors):
        # A distinct string per entry, as real questions are.
        index.add(
            entry_id=f"entry-{position}",
            vector=vector,
            text=f"{TYPICAL_QUESTION} #{position}",
            meta={"org": 1},
        )
    total = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    objects_per_entry = (total - index.memory_bytes()) / sample
    rows = []
    for storage in ("float32", "float16", "int8"):
        full = SemanticIndex(dim=EMBEDDING_DIM, max_items=100_000, storage=storage)
        for position, vector in enumerate(clustered_vectors(100_000, generator)):
            full.add(entry_id=str(position), vector=vector, text="")
        vector_bytes = full.memory_bytes()
        rows.append(
            [
                storage,
                f"{vector_bytes / 1e6:.1f} MB",
                f"{(vector_bytes + objects_per_entry * 100_000) / 1e6:.1f} MB",
            ]
        )
    return rows


def bench_hit_path(embedder) -> list[list[object]]:
    lexicon = english_lexicon()
    generator = np.random.default_rng(5)
    index = SemanticIndex(dim=EMBEDDING_DIM, max_items=10_000)
    for position, vector in enumerate(clustered_vectors(10_000 - len(SENTENCES), generator)):
        index.add(entry_id=f"filler-{position}", vector=vector, text="unrelated question")
    stored = embedder.embed([normalize_for_embedding(text=s, lexicon=lexicon) for s in SENTENCES])
    for position, (sentence, vector) in enumerate(zip(SENTENCES, stored, strict=True)):
        index.add(entry_id=f"real-{position}", vector=vector, text=sentence)

    def hit(question: str) -> None:
        vector = embedder.embed([normalize_for_embedding(text=question, lexicon=lexicon)])[0]
        for candidate in index.search(vector=vector, k=5, threshold=0.5):
            if verify(
                stored=candidate.text,
                incoming=question,
                cosine=candidate.score,
                lexicon=lexicon,
                word_vectors=WORD_VECTORS,
            ):
                return
        raise AssertionError(f"expected a hit for {question!r}")

    questions = [sentence.lower().rstrip("?.") for sentence in SENTENCES] * 25
    samples = [timed_ms(lambda q=question: hit(q), 1)[0] for question in questions]
    return [
        [
            "normalise + embed + search 10k + verify",
            f"p50 {statistics.median(samples):.2f} ms",
            f"p99 {percentile(samples, 0.99):.2f} ms",
        ]
    ]


def bench_storage_on_dataset(embedder, dataset: Path) -> list[list[object]]:
    pairs = load_pairs(path=dataset)
    rows = []
    for storage in ("float32", "float16", "int8"):
        report = run_evaluation(
            pairs=pairs,
            embedder=embedder,
            lexicon=english_lexicon(),
            word_vectors=WORD_VECTORS,
            paraphrase_threshold=embedder.paraphrase_threshold,
            storage=storage,
        )
        scores = report.verified
        rows.append([storage, scores.true_hits, scores.false_hits, scores.precision, scores.recall])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="pairs JSONL to measure storage fidelity")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--embedder", choices=("static", "minilm"), default="static")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]

    global EMBEDDING_DIM
    embedder = MiniLMEmbedder() if arguments.embedder == "minilm" else StaticEmbedder()
    EMBEDDING_DIM = embedder.dim
    load = os.getloadavg()[0]
    print(f"(machine load average {load:.1f} on {os.cpu_count()} CPUs: figures are noisy if high)")
    print()
    print(f"Embedding ({embedder.model_id}, {embedder.dim} dimensions)")
    print(format_table(headers=("step", "p50", "p99"), rows=bench_embedding(embedder)))
    print()
    print(format_table(headers=("step", "p50", "p99"), rows=bench_verify(embedder)))
    print()
    latency_rows, fidelity_rows = bench_index(sizes)
    print("Index search, k=5 (ms)")
    print(format_table(headers=("entries", "storage", "p50 ms", "p99 ms"), rows=latency_rows))
    print()
    print("Compact storage fidelity: top-1 equal to float32 on near-duplicate queries")
    print(
        format_table(
            headers=("entries", "storage", "same top-1", "vector bytes"), rows=fidelity_rows
        )
    )
    print()
    print(f"Memory per 100,000 entries ({EMBEDDING_DIM}-dim)")
    print(
        format_table(
            headers=("storage", "vectors + bookkeeping", "with question text and ids"),
            rows=bench_memory(),
        )
    )
    print()
    print("Engine share of a semantic hit (10k entries in the scope)")
    print(format_table(headers=("path", "p50", "p99"), rows=bench_hit_path(embedder)))
    if arguments.dataset:
        print()
        print(f"Verified pipeline per storage on {arguments.dataset.name}")
        print(
            format_table(
                headers=("storage", "true hits", "false hits", "precision", "recall"),
                rows=bench_storage_on_dataset(embedder, arguments.dataset),
            )
        )


if __name__ == "__main__":
    main()
