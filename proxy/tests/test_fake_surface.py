"""The fake's moderations, images and audio, and the batch file reader: pure functions."""

from __future__ import annotations

import io
import json
import struct
import wave
import zlib

import pytest

from common.errors import InvalidRequest
from proxy.providers import fake_surface
from proxy.providers.fake_chat import FakeRequestError
from proxy.surface.batch_input import batch_input_read, batch_results_usage
from proxy.wav import audio_seconds, wav_facts


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines, checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, width, height = 8, b"", 0, 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    return width, height, zlib.decompress(idat)


def test_the_png_is_valid_and_the_same_prompt_gives_the_same_image():
    first = fake_surface.png_for("a red kite")
    width, height, rows = png_pixels(first)
    assert (width, height) == (64, 64)
    assert len(rows) == 64 * (1 + 64 * 3)
    assert fake_surface.png_for("a red kite") == first
    assert fake_surface.png_for("a blue kite") != first


def test_speech_is_a_wav_the_standard_library_reads_and_it_carries_its_text():
    audio = fake_surface.speech_wav("one two three")
    with wave.open(io.BytesIO(audio)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth()) == (1, 2)
        assert reader.getframerate() == 24_000
        assert reader.getnframes() == 3 * int(24_000 * 0.08)
    duration, comment = wav_facts(audio)
    assert duration == pytest.approx(0.24)
    assert comment == "one two three"
    assert fake_surface.transcript_for(audio) == "one two three"


def test_a_transcript_of_any_other_file_is_deterministic_and_grows_with_its_length():
    short, long = b"\x01" * 16_000, b"\x01" * 160_000
    assert fake_surface.transcript_for(short) == fake_surface.transcript_for(short)
    assert len(fake_surface.transcript_for(long).split()) > len(
        fake_surface.transcript_for(short).split()
    )
    assert audio_seconds(long) == 10.0


def test_moderation_scores_every_category_and_flags_only_markers():
    body = fake_surface.moderation_body({"input": "calm words"}, model="omni-moderation-latest")
    result = body["results"][0]
    assert set(result["categories"]) == set(fake_surface.MODERATION_CATEGORIES)
    assert result["flagged"] is False
    assert max(result["category_scores"].values()) < 0.001
    marked = fake_surface.moderation_body({"input": "x [flag:hate/threatening]"}, model="m")
    flags = marked["results"][0]["categories"]
    assert {name for name, on in flags.items() if on} == {"hate", "hate/threatening"}


def test_an_unknown_moderation_marker_is_refused():
    with pytest.raises(FakeRequestError):
        fake_surface.moderation_body({"input": "[flag:rudeness]"}, model="m")


def test_an_image_part_is_scored_on_the_image_categories():
    body = {
        "input": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ]
    }
    result = fake_surface.moderation_body(body, model="omni-moderation-latest")["results"][0]
    assert result["category_applied_input_types"]["violence"] == ["text", "image"]
    assert result["category_applied_input_types"]["hate"] == ["text"]


def line(custom_id: str, model: str = "gpt-4o-mini", url: str = "/v1/chat/completions"):
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def test_a_batch_file_is_measured_and_its_model_rewritten_for_the_upstream():
    batch = batch_input_read(f"{line('a')}\n\n{line('b')}\n".encode())
    assert (batch.model, batch.url, len(batch.lines)) == (
        "gpt-4o-mini",
        "/v1/chat/completions",
        2,
    )
    assert batch.prompt_tokens > 0
    rewritten = [json.loads(row) for row in batch.for_upstream("upstream-mini").splitlines()]
    assert {row["body"]["model"] for row in rewritten} == {"upstream-mini"}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json\n",
        f"{line('a')}\n{line('a')}\n".encode(),  # repeated custom_id
        f"{line('a')}\n{line('b', model='gpt-4o')}\n".encode(),  # two models
        f"{line('a')}\n{line('b', url='/v1/embeddings')}\n".encode(),  # two urls
        line("a", url="/v1/images/generations").encode(),
    ],
)
def test_a_batch_file_that_openai_would_refuse_is_a_400(content):
    with pytest.raises(InvalidRequest):
        batch_input_read(content)


def test_batch_results_usage_sums_only_successful_lines():
    rows = [
        {
            "response": {
                "status_code": 200,
                "body": {
                    "model": "m1",
                    "usage": {
                        "prompt_tokens": 10,
                        "completion_tokens": 5,
                        "prompt_tokens_details": {"cached_tokens": 4},
                    },
                },
            }
        },
        {"response": {"status_code": 400, "body": {"error": {"message": "no"}}}},
        {
            "response": {
                "status_code": 200,
                "body": {"usage": {"prompt_tokens": 7, "completion_tokens": 1}},
            }
        },
    ]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode() + b"garbage\n"
    usage, model = batch_results_usage(content)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (17, 6)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 4
    assert model == "m1"
