"""Throughput of SynthLang compression and token counting on one core.

    .venv/bin/python bench/compression_bench.py [--dataset PATH] [--megabytes 4]

Texts are the system and user messages of the compression dev set (or any JSONL in the same
format), repeated until the corpus reaches the requested size. Each text is compressed on its
own, as the proxy does per message, including the before/after token counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from proxy.synthlang import compress_text  # noqa: E402
from proxy.tokens import count_tokens  # noqa: E402

DEFAULT_DATASET = REPO_ROOT / ".." / "shared" / "eval" / "compression_dev.jsonl"
FALLBACK_TEXT = (
    "Hi there! I hope you're doing well. I was wondering if you could help me write a short "
    "summary of the report below. Please make sure that you do not include any names, and "
    "keep it under 120 words. The report is at https://example.com/r/42 and covers Q3 2024.\n"
    "```python\ndef total(values):\n    return sum(values)\n```\nThanks so much in advance!\n"
)


def load_texts(path: Path) -> list[str]:
    if not path.exists():
        return [FALLBACK_TEXT]
    texts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            for message in json.loads(line)["messages"]:
                if message.get("role") in ("system", "user") and isinstance(
                    message.get("content"), str
                ):
                    texts.append(message["content"])
    return texts


def corpus(texts: list[str], megabytes: float) -> list[str]:
    target = int(megabytes * 1_000_000)
    result, size = [], 0
    while size < target:
        for text in texts:
            result.append(text)
            size += len(text.encode("utf-8"))
            if size >= target:
                break
    return result


def measure(function, texts: list[str]) -> float:
    """MB per second of UTF-8 input."""
    size = sum(len(text.encode("utf-8")) for text in texts)
    started = time.perf_counter()
    for text in texts:
        function(text)
    return size / (time.perf_counter() - started) / 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--megabytes", type=float, default=4.0)
    parser.add_argument("--model", default="gpt-4o")
    args = parser.parse_args()

    texts = corpus(load_texts(args.dataset), args.megabytes)
    size = sum(len(text.encode("utf-8")) for text in texts)
    # Warm up: tokenizer loading and per-encoding rule selection happen once per process.
    for level in ("low", "medium", "high"):
        compress_text(texts[0], level=level, model=args.model)

    print(f"corpus: {len(texts)} texts, {size / 1_000_000:.1f} MB, model {args.model}")
    print(f"{'operation':<28} {'MB/s':>8}")
    print("-" * 37)
    for encoding in ("cl100k_base", "o200k_base"):
        rate = measure(lambda text, enc=encoding: count_tokens(text, encoding=enc), texts)
        print(f"{'count_tokens ' + encoding:<28} {rate:>8.2f}")
    for level in ("low", "medium", "high"):
        rate = measure(
            lambda text, lv=level: compress_text(text, level=lv, model=args.model), texts
        )
        print(f"{'compress_text ' + level:<28} {rate:>8.2f}")


if __name__ == "__main__":
    main()
