"""Moderations, images and audio through a live proxy with the official openai SDK."""

from __future__ import annotations

import base64
import io
import struct
import wave

import openai
import pytest

from billing.models import UsageEvent
from proxy.tests import surface_support
from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# This module's proxy reads prices afresh, and each test writes the prices it checks.
proxy_url = surface_support.proxy_url
unit_prices = surface_support.unit_prices

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_moderation_of_a_text_is_answered_and_accounted(proxy_url, alice_key):
    raw = sdk(proxy_url, alice_key).moderations.with_raw_response.create(
        input="A friendly note about gardening."
    )
    moderation = raw.parse()
    assert moderation.model == "omni-moderation-latest"
    assert len(moderation.results) == 1
    result = moderation.results[0]
    assert result.flagged is False
    assert result.categories.violence is False
    assert 0 <= result.category_scores.violence < 0.01
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "moderations"
    assert event.model == "omni-moderation-latest"
    assert event.prompt_tokens > 0
    assert event.status_code == 200
    assert event.usage_estimated is True
    assert event.price_unknown is False  # seeded at zero: moderation is free
    assert event.cost_micros == 0


def test_moderation_flags_only_marked_test_content_one_result_per_text(proxy_url, alice_key):
    moderation = sdk(proxy_url, alice_key).moderations.create(
        model="omni-moderation-latest",
        input=["an ordinary sentence", "staged content [flag:violence/graphic]"],
    )
    first, second = moderation.results
    assert first.flagged is False
    assert second.flagged is True
    assert second.categories.violence_graphic is True
    assert second.categories.violence is True  # the parent category
    assert second.categories.hate is False
    assert second.category_scores.violence_graphic == pytest.approx(0.99)


def test_moderation_with_a_bad_input_is_an_openai_400(proxy_url, alice_key):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(proxy_url, alice_key).moderations.create(input=[{"type": "audio"}])
    assert caught.value.body["param"] == "input"


def test_image_generation_returns_a_png_in_base64_and_is_priced_per_image(proxy_url, alice_key):
    raw = sdk(proxy_url, alice_key).images.with_raw_response.generate(
        model="dall-e-3", prompt="a lighthouse at dusk", response_format="b64_json"
    )
    images = raw.parse()
    assert len(images.data) == 1
    picture = base64.b64decode(images.data[0].b64_json)
    assert png_size(picture) == (64, 64)
    assert images.data[0].revised_prompt == "a lighthouse at dusk"
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "images.generations"
    assert event.units == 1
    assert event.cost_micros == 40_000  # dall-e-3's seeded $0.04 an image


def test_image_generation_as_urls_gives_n_openable_images(proxy_url, alice_key):
    raw = sdk(proxy_url, alice_key).images.with_raw_response.generate(
        model="dall-e-2", prompt="two cats", n=2, response_format="url"
    )
    images = raw.parse()
    assert len(images.data) == 2
    pictures = []
    for item in images.data:
        prefix, encoded = item.url.split(",", 1)
        assert prefix == "data:image/png;base64"
        pictures.append(base64.b64decode(encoded))
    assert pictures[0] != pictures[1]
    assert all(png_size(picture) == (64, 64) for picture in pictures)
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.units == 2
    assert event.cost_micros == 2 * 20_000


def test_image_model_outside_the_keys_allowed_models_is_refused(proxy_url, alice_key, org_a, alice):
    from accounts.models import ApiKey

    ApiKey.objects.filter(organization=org_a).update(allowed_models=["gpt-4o"])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(proxy_url, alice_key).images.generate(model="dall-e-3", prompt="x")
    assert not UsageEvent.objects.filter(endpoint="images.generations", status_code=200).exists()


def wav_facts(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as audio:
        return audio.getframerate(), audio.getnframes()


def test_speech_streams_a_wav_that_carries_its_text_and_is_accounted(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    text = "Hello from the offline fake"
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        request_id = response.headers["x-request-id"]
        chunks = list(response.iter_bytes())
    audio = b"".join(chunks)
    rate, frames = wav_facts(audio)
    assert rate == 24_000
    assert frames == len(text.split()) * int(24_000 * 0.08)
    event = wait_for_usage(request_id)
    assert event.endpoint == "audio.speech"
    assert event.units == len(text)
    assert event.cost_micros == 15 * len(text)  # tts-1: $15 per million characters
    assert event.stream is True


def test_transcription_of_a_spoken_file_gives_its_text_back(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    speech = client.audio.speech.create(
        model="tts-1", voice="alloy", input="the proxy heard this", response_format="wav"
    )
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.wav", speech.content, "audio/wav")
    )
    transcription = raw.parse()
    assert transcription.text == "the proxy heard this"
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "audio.transcriptions"
    assert event.units == 1  # 0.32 s of audio, billed as a whole second
    assert event.cost_micros == 100  # whisper-1: $0.006 a minute
    assert event.usage_estimated is False  # the upstream reported the seconds


def test_transcription_formats_text_and_verbose_json(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    recording = b"\xff\xfb" + bytes(range(256)) * 200  # some 51 kB that is not a WAV
    text = client.audio.transcriptions.create(
        model="whisper-1", file=("note.mp3", recording, "audio/mpeg"), response_format="text"
    )
    assert isinstance(text, str) and text.strip().endswith(".")
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=("note.mp3", recording, "audio/mpeg"),
        response_format="verbose_json",
    )
    assert verbose.text == text.strip()  # the same file, the same transcript
    assert verbose.duration == pytest.approx(len(recording) / 16_000, abs=0.001)
    assert verbose.segments[0].text.strip() == verbose.text


def test_translation_is_answered_and_accounted_as_a_translation(proxy_url, alice_key):
    raw = sdk(proxy_url, alice_key).audio.translations.with_raw_response.create(
        model="whisper-1", file=("clip.mp3", b"\x00" * 40_000, "audio/mpeg")
    )
    assert raw.parse().text
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "audio.translations"
    assert event.units == 3  # 40 kB at 16 kB a second, rounded up


def test_audio_upload_over_the_limit_is_openais_413(proxy_url, alice_key, settings):
    too_big = b"\x00" * (settings.AUDIO_UPLOAD_MAX_MB * 1024 * 1024 + 1)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(proxy_url, alice_key).audio.transcriptions.create(
            model="whisper-1", file=("long.mp3", too_big, "audio/mpeg")
        )
    assert caught.value.status_code == 413
    assert caught.value.body["code"] == "request_too_large"
    assert "AUDIO_UPLOAD_MAX_MB" in caught.value.body["message"]


def test_transcription_without_a_model_is_an_openai_400(proxy_url, alice_key):
    import httpx2 as httpx

    response = httpx.post(
        f"{proxy_url}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {alice_key}"},
        files={"file": ("a.wav", b"RIFF", "audio/wav")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


def test_speech_abandoned_by_the_client_is_still_accounted(proxy_url, alice_key):
    import httpx2 as httpx

    text = " ".join(["word"] * 60)  # the longest the fake speaks: 4 s, some 24 chunks
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{proxy_url}/v1/audio/speech",
            headers={"Authorization": f"Bearer {alice_key}"},
            json={"model": "fake-slow-2000", "voice": "alloy", "input": text},
        ) as response,
    ):
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        next(response.iter_bytes())  # the first chunk, then hang up
    event = wait_for_usage(request_id)
    assert event.endpoint == "audio.speech"
    assert event.client_disconnected is True
    assert event.units == len(text)
