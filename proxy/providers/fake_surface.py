"""The fake provider's moderations, images and audio: deterministic and offline.

- Moderations flag only input that marks itself as test content with ``[flag:<category>]``
  (``[flag:violence]``, ``[flag:self-harm/intent]``): that category and its parent score
  0.99 and are flagged; every other score is a small number derived from the text.
- Images are small valid PNGs (64x64) whose colours come from the prompt's digest; the
  ``url`` format answers a ``data:`` URL, which any client can open without a network.
- Speech is a valid WAV (24 kHz, 16-bit mono), one short tone per word, that carries the
  spoken text in its ``INFO`` comment; a transcription of such a file gives that text
  back. Any other file is transcribed to words chosen by its digest, as many as its
  length suggests, so the same file always gives the same transcript.
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import time
import zlib

from proxy.providers.base import Target, UpstreamResult
from proxy.providers.fake_chat import FakeRequestError
from proxy.wav import audio_seconds, wav_facts

MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# The categories OpenAI's omni-moderation also scores on images.
IMAGE_CATEGORIES = frozenset(
    {"self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "violence"}
    | {"violence/graphic"}
)
_FLAG = re.compile(r"\[flag:([a-z/-]+)\]")

SAMPLE_RATE = 24_000
_TONE_SECONDS = 0.08
_MAX_SPEECH_SECONDS = 4.0
_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "bright",
    "stars",
    "sing",
    "softly",
    "across",
    "calm",
    "blue",
    "water",
    "near",
    "old",
    "stone",
    "bridges",
]
IMAGE_SIDE = 64


def _digest(data: bytes | str) -> bytes:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).digest()


# --- Moderations --------------------------------------------------------------------------


def _moderation_parts(value) -> list[tuple[str, str]]:
    """The input as (kind, text) pairs: "text" or "image" (the image's URL)."""
    if isinstance(value, str):
        return [("text", value)]
    parts = []
    for item in value:
        if isinstance(item, str):
            parts.append(("text", item))
        elif item.get("type") == "text":
            parts.append(("text", str(item.get("text", ""))))
        else:
            parts.append(("image", str((item.get("image_url") or {}).get("url", ""))))
    return parts


def _moderation_result(kinds: set[str], text: str) -> dict:
    marked = set(_FLAG.findall(text))
    unknown = marked - set(MODERATION_CATEGORIES)
    if unknown:
        raise FakeRequestError(
            f"Unknown moderation test marker [flag:{sorted(unknown)[0]}]; the categories are "
            + ", ".join(MODERATION_CATEGORIES),
            param="input",
        )
    flagged = marked | {name.split("/")[0] for name in marked}
    digest = _digest(text)
    categories, scores, applied = {}, {}, {}
    for position, name in enumerate(MODERATION_CATEGORIES):
        categories[name] = name in flagged
        scores[name] = 0.99 if name in flagged else round(digest[position] / 255 / 1000, 6)
        types = ["text"] if "text" in kinds else []
        if "image" in kinds and name in IMAGE_CATEGORIES:
            types.append("image")
        applied[name] = types
    return {
        "flagged": bool(flagged),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": applied,
    }


def moderation_body(body: dict, *, model: str) -> dict:
    """One result per text for a list of strings; one result for a string or for a
    multimodal list (OpenAI scores such a list as one input)."""
    value = body.get("input")
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        results = [_moderation_result({"text"}, item) for item in value]
    else:
        parts = _moderation_parts(value)
        text = " ".join(content for kind, content in parts if kind == "text")
        results = [_moderation_result({kind for kind, _ in parts}, text)]
    seed = _digest(repr(value)).hex()[:24]
    return {"id": f"modr-fake{seed}", "model": model, "results": results}


# --- Images -------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    payload = kind + data
    return struct.pack(">I", len(data)) + payload + struct.pack(">I", zlib.crc32(payload))


def png_for(prompt: str, *, index: int = 0) -> bytes:
    """A 64x64 RGB PNG: a two-colour gradient picked by the prompt's digest."""
    digest = _digest(f"{index}:{prompt}")
    start, end = digest[:3], digest[3:6]
    rows = bytearray()
    for y in range(IMAGE_SIDE):
        rows.append(0)  # filter type: none
        for x in range(IMAGE_SIDE):
            mix = (x + y) / (2 * (IMAGE_SIDE - 1))
            rows.extend(round(a + (b - a) * mix) for a, b in zip(start, end, strict=True))
    header = struct.pack(">IIBBBBB", IMAGE_SIDE, IMAGE_SIDE, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows)))
        + _png_chunk(b"IEND", b"")
    )


def images_body(body: dict, *, model: str) -> dict:
    prompt = str(body.get("prompt") or "")
    count = body.get("n") or 1
    as_url = body.get("response_format") == "url"
    data = []
    for index in range(count):
        encoded = base64.b64encode(png_for(prompt, index=index)).decode("ascii")
        item = {"url": f"data:image/png;base64,{encoded}"} if as_url else {"b64_json": encoded}
        if model.startswith("dall-e-3"):
            item["revised_prompt"] = prompt
        data.append(item)
    return {"created": int(time.time()), "data": data}


# --- Speech -------------------------------------------------------------------------------


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    padding = b"\x00" if len(data) % 2 else b""
    return kind + struct.pack("<I", len(data)) + data + padding


def speech_wav(text: str, *, speed: float = 1.0) -> bytes:
    """One tone per word (its pitch from the word's digest), the text in the INFO chunk."""
    words = text.split() or [""]
    tone = max(int(SAMPLE_RATE * _TONE_SECONDS / speed), 1)
    limit = int(SAMPLE_RATE * _MAX_SPEECH_SECONDS)
    samples = array.array("h")
    for word in words:
        if len(samples) + tone > limit:
            break
        frequency = 220 + _digest(word)[0] * 2
        for n in range(tone):
            fade = min(n, tone - n, 240) / 240  # no click at either end of a tone
            samples.append(int(8000 * fade * math.sin(2 * math.pi * frequency * n / SAMPLE_RATE)))
    if struct.pack("=h", 1) != struct.pack("<h", 1):
        samples.byteswap()
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
    info = b"INFO" + _riff_chunk(b"ICMT", text.encode() + b"\x00")
    body = (
        b"WAVE"
        + _riff_chunk(b"fmt ", fmt)
        + _riff_chunk(b"LIST", info)
        + _riff_chunk(b"data", samples.tobytes())
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def transcript_for(data: bytes) -> str:
    facts = wav_facts(data)
    if facts is not None and facts[1]:
        return facts[1]
    digest = _digest(data)
    count = max(3, min(len(digest), math.ceil(audio_seconds(data) * 2)))
    words = [_WORDS[digest[i] % len(_WORDS)] for i in range(count)]
    return " ".join(words).capitalize() + "."


def _timestamp(seconds: float, *, comma: bool) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    separator = "," if comma else "."
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def transcription(data: bytes, *, task: str, response_format: str) -> tuple[bytes, str, dict]:
    """The answer's bytes, its content type and the usage it reports (whisper's kind:
    seconds of audio)."""
    text = transcript_for(data)
    duration = round(audio_seconds(data), 3)
    usage = {"type": "duration", "seconds": math.ceil(duration)}
    if response_format == "text":
        return (text + "\n").encode(), "text/plain; charset=utf-8", usage
    if response_format in ("srt", "vtt"):
        start = _timestamp(0, comma=response_format == "srt")
        end = _timestamp(duration, comma=response_format == "srt")
        cue = f"{start} --> {end}\n{text}\n"
        document = f"1\n{cue}\n" if response_format == "srt" else f"WEBVTT\n\n{cue}\n"
        return document.encode(), "text/plain; charset=utf-8", usage
    body: dict = {"text": text, "usage": usage}
    if response_format == "verbose_json":
        body = {
            "task": task,
            "language": "english",
            "duration": duration,
            "text": text,
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": duration,
                    "text": f" {text}",
                    "tokens": list(range(50364, 50364 + len(text.split()))),
                    "temperature": 0.0,
                    "avg_logprob": -0.2,
                    "compression_ratio": 1.0,
                    "no_speech_prob": 0.01,
                }
            ],
            "usage": usage,
        }
    return json.dumps(body).encode(), "application/json", usage


# --- The provider's methods ---------------------------------------------------------------

SPEECH_CHUNK_BYTES = 8192


class FakeSurfaceMethods:
    """Mixed into ``FakeProvider``, which supplies ``_before`` (staged failures and
    latency) and ``_refused`` (a ``FakeRequestError`` as the upstream's 400)."""

    async def moderations(self, target: Target, body: dict) -> UpstreamResult:
        await self._before(target)
        try:
            return UpstreamResult(body=moderation_body(body, model=target.upstream_model))
        except FakeRequestError as error:
            raise self._refused(error) from None

    async def images_generations(self, target: Target, body: dict) -> UpstreamResult:
        await self._before(target)
        return UpstreamResult(body=images_body(body, model=target.upstream_model))

    async def audio_speech(self, target: Target, body: dict):
        """Yields the content type first, then the audio's bytes."""
        latency = await self._before(target)
        audio = speech_wav(str(body.get("input") or ""), speed=float(body.get("speed") or 1.0))
        yield "audio/wav"
        for start in range(0, len(audio), SPEECH_CHUNK_BYTES):
            if latency:
                # A slow model is slow between chunks too, as the fake's chat streams are.
                await asyncio.sleep(latency / 10000)
            yield audio[start : start + SPEECH_CHUNK_BYTES]

    async def audio_transcriptions(
        self, target: Target, *, task: str, fields: list, file: tuple[str, bytes, str]
    ) -> UpstreamResult:
        await self._before(target)
        response_format = dict(fields).get("response_format") or "json"
        raw, content_type, _usage = transcription(
            file[1], task=task, response_format=response_format
        )
        body = json.loads(raw) if content_type == "application/json" else {}
        return UpstreamResult(body=body, raw=raw, headers={"content-type": content_type})
