"""Throughput of SynthLang compression and token counting on one core.

    .venv/bin/python bench/compression_bench.py [--dataset PATH] [--agent-dataset PATH]
                                                [--megabytes 4] [--repeat 3]

Four measurements, each the best of `--repeat` runs:

- `count_tokens` alone, for scale (every compression counts tokens twice);
- `compress_text` on the system and user messages of the compression dev set (or any JSONL
  in the same format), repeated until the corpus reaches `--megabytes`, in MB/s;
- `compress_messages` on whole agent conversations (tool calls and results included), MB/s;
- `compress_messages` on short chats (a greeting, a one-line question, a short exchange), in
  microseconds per request: the cost every ordinary chat request pays on the hot path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from proxy.synthlang import compress_messages, compress_text  # noqa: E402
from proxy.tokens import count_tokens  # noqa: E402

DEFAULT_DATASET = REPO_ROOT / ".." / "shared" / "eval" / "compression_dev.jsonl"
DEFAULT_AGENT_DATASET = REPO_ROOT / ".." / "shared" / "eval" / "agent_traces_dev.jsonl"
FALLBACK_TEXT = (
    "Hi there! I hope you're doing well. I was wondering if you could help me write a short "
    "summary of the report below. Please make sure that you do not include any names, and "
    "keep it under 120 words. The report is at https://example.com/r/42 and covers Q3 2024.\n"
    "```python\ndef total(values):\n    return sum(values)\n```\nThanks so much in advance!\n"
)
SHORT_CHATS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of Australia?"},
    ],
    [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {"role": "user", "content": "How do I reverse a list in Python?"},
        {"role": "assistant", "content": "Use `items.reverse()` or `items[::-1]`."},
        {"role": "user", "content": "Thanks! And a string?"},
    ],
]
LEVELS = ("low", "medium", "high")


def load_items(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_texts(path: Path) -> list[str]:
    texts = [
        message["content"]
        for item in load_items(path)
        for message in item["messages"]
        if message.get("role") in ("system", "user") and isinstance(message.get("content"), str)
    ]
    return texts or [FALLBACK_TEXT]


def corpus(texts: list, megabytes: float, size_of) -> list:
    target = int(megabytes * 1_000_000)
    result, size = [], 0
    while size < target:
        for text in texts:
            result.append(text)
            size += size_of(text)
            if size >= target:
                break
    return result


def text_size(text: str) -> int:
    return len(text.encode("utf-8"))


def conversation_size(messages: list[dict]) -> int:
    return len(json.dumps(messages, ensure_ascii=False).encode("utf-8"))


def best_seconds(function, inputs: list, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for value in inputs:
            function(value)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--agent-dataset", type=Path, default=DEFAULT_AGENT_DATASET)
    parser.add_argument("--megabytes", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="gpt-4o")
    args = parser.parse_args()

    texts = corpus(load_texts(args.dataset), args.megabytes, text_size)
    size = sum(map(text_size, texts))
    conversations = [item["messages"] for item in load_items(args.agent_dataset)]
    agent = corpus(conversations, args.megabytes, conversation_size) if conversations else []
    agent_size = sum(map(conversation_size, agent))
    # Warm up: tokenizer loading and per-encoding rule selection happen once per process.
    for level in LEVELS:
        compress_text(texts[0], level=level, model=args.model)
        compress_messages(SHORT_CHATS[0], level=level, model=args.model)

    print(f"prose corpus: {len(texts)} texts, {size / 1e6:.1f} MB; agent corpus: {len(agent)} "
          f"conversations, {agent_size / 1e6:.1f} MB; model {args.model}")  # fmt: skip
    print(f"{'operation':<36} {'result':>12}")
    print("-" * 49)
    for encoding in ("cl100k_base", "o200k_base"):
        seconds = best_seconds(
            lambda text, enc=encoding: count_tokens(text, encoding=enc), texts, args.repeat
        )
        print(f"{'count_tokens ' + encoding:<36} {size / seconds / 1e6:>7.2f} MB/s")
    for level in LEVELS:
        seconds = best_seconds(
            lambda text, lv=level: compress_text(text, level=lv, model=args.model),
            texts,
            args.repeat,
        )
        print(f"{'compress_text ' + level:<36} {size / seconds / 1e6:>7.2f} MB/s")
    for level in LEVELS if agent else ():
        seconds = best_seconds(
            lambda messages, lv=level: compress_messages(messages, level=lv, model=args.model),
            agent,
            args.repeat,
        )
        print(f"{'compress_messages agent ' + level:<36} {agent_size / seconds / 1e6:>7.2f} MB/s")
    requests = SHORT_CHATS * 2000
    for level in LEVELS:
        seconds = best_seconds(
            lambda messages, lv=level: compress_messages(messages, level=lv, model=args.model),
            requests,
            args.repeat,
        )
        print(f"{'compress_messages short chat ' + level:<36} "
              f"{seconds / len(requests) * 1e6:>7.1f} µs/req")  # fmt: skip


if __name__ == "__main__":
    main()
