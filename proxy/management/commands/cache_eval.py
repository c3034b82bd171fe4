"""`manage.py cache_eval --dataset PATH`: how well the semantic cache tells same from different."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from proxy.semantic_cache.embedding import EmbeddingError, StaticEmbedder, english_lexicon
from proxy.semantic_cache.evaluation import (
    DEFAULT_CANDIDATE_THRESHOLD,
    DEFAULT_CANDIDATES,
    DEFAULT_COSINE_THRESHOLD,
    load_pairs,
    run_evaluation,
)
from proxy.semantic_cache.evaluation_report import format_report


class Command(BaseCommand):
    help = (
        "Store each pair's `first`, ask with its `second`, and print precision, recall and F1 "
        "for cosine alone and for the verified semantic cache, per kind, with an ablation."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, type=Path, help="JSONL file of pairs")
        parser.add_argument(
            "--threshold",
            type=float,
            default=DEFAULT_COSINE_THRESHOLD,
            help="cosine threshold of the cosine-alone baselines",
        )
        parser.add_argument(
            "--candidate-threshold",
            type=float,
            default=DEFAULT_CANDIDATE_THRESHOLD,
            help="cosine at which a stored question becomes a candidate for verification",
        )
        parser.add_argument(
            "--paraphrase-threshold",
            type=float,
            default=None,
            help="cosine a reworded question needs once every check passed (default: the "
            "embedder's own bar, as in production)",
        )
        parser.add_argument(
            "--strict-scope",
            choices=("yes", "no"),
            default="yes",
            help="yes (production): words on one side only are rejected whatever the cosine; "
            "no: only evidence of a different question rejects them and the cosine decides "
            "the rest (measured: more recall, less precision on unseen pairs)",
        )
        parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
        parser.add_argument(
            "--embedder",
            choices=("minilm", "static", "local", "upstream", "minilm-int8", "minilm-reference"),
            default="static",
            help="static (or local): the default, the offline WordLlama model; minilm: "
            "all-MiniLM-L6-v2 by onnxruntime (CACHE_EMBEDDER=minilm); upstream: the "
            "embeddings API configured for CACHE_EMBEDDER=upstream (to calibrate "
            "CACHE_SIMILARITY_THRESHOLD for it; every text is one paid embedding); "
            "minilm-int8: minilm quantised to int8, measurement only; minilm-reference: the "
            "numpy float32 reference of minilm (the test oracle)",
        )
        parser.add_argument(
            "--model-dir",
            type=Path,
            help="folder with all-MiniLM-L6-v2's model.safetensors, tokenizer.json, config.json "
            "for minilm-reference (default: the installed package's)",
        )
        parser.add_argument(
            "--isolated",
            action="store_true",
            help="compare each second with its own first only (default: one shared scope)",
        )

    def handle(self, *args, **options):
        dataset: Path = options["dataset"]
        if not dataset.is_file():
            raise CommandError(f"dataset not found: {dataset}")
        try:
            pairs = load_pairs(path=dataset)
        except (ValueError, KeyError) as error:
            raise CommandError(f"cannot read {dataset}: {error}") from error
        try:
            embedder = self._embedder(options)
            lexicon = english_lexicon()
            embedder.embed(["warm up"])
        except EmbeddingError as error:
            raise CommandError(str(error)) from error
        report = run_evaluation(
            pairs=pairs,
            embedder=embedder,
            lexicon=lexicon,
            threshold=options["threshold"],
            candidate_threshold=options["candidate_threshold"],
            paraphrase_threshold=options["paraphrase_threshold"] or embedder.paraphrase_threshold,
            word_vectors=StaticEmbedder().word_vectors,
            scope_mode="isolated" if options["isolated"] else "shared",
            k=options["candidates"],
            strict_scope=options["strict_scope"] == "yes",
        )
        self.stdout.write(format_report(report))

    def _embedder(self, options):
        from proxy.semantic_cache.minilm import MiniLMEmbedder

        name = options["embedder"]
        if name in {"static", "local"}:
            return StaticEmbedder()
        if name == "minilm":
            return MiniLMEmbedder()
        if name == "minilm-int8":
            return MiniLMEmbedder(int8=True)
        if name == "upstream":
            from django.conf import settings

            from proxy.semantic_cache.embedding import UpstreamEmbedder

            return UpstreamEmbedder(
                base_url=settings.OPENAI_BASE_URL,
                api_key=settings.OPENAI_API_KEY,
                model=settings.CACHE_EMBEDDING_MODEL,
                dimensions=settings.CACHE_EMBEDDING_DIMENSIONS,
                timeout_seconds=60.0,
            )
        from bench.minilm_reference import MiniLMReference
        from proxy.semantic_cache.minilm import installed_model_dir

        return MiniLMReference(model_dir=options["model_dir"] or installed_model_dir())
