"""The SynthLang endpoints through the official openai SDK, in process over ASGI."""

from __future__ import annotations

import base64
import gzip
import json

import httpx2 as httpx
import openai
import pytest
from asgiref.sync import async_to_sync
from django.core.asgi import get_asgi_application
from django.urls import include, path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import usage
from proxy import providers, translation
from proxy.models import TranslatedPrompt
from proxy.synthlang import pack
from proxy.synthlang_views import synthlang_urlpatterns
from proxy.tests.test_translation import COMPACT, LONG_PROMPT, StubTranslator
from proxy.tokens import count_tokens
from synthlang_site.urls import urlpatterns as site_urlpatterns

# proxy/urls.py is the integrator's: until it includes the SynthLang routes, these tests
# mount them in front of the site's own URLs.
urlpatterns = [path("v1/", include(synthlang_urlpatterns)), *site_urlpatterns]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]

VERBOSE = (
    "Hello there! I was wondering if you could please help me out with something. "
    "Basically, I would really like you to write a short summary of the quarterly report "
    "for the team at Halvorsen Logistics, and it would be really great if you could make "
    "sure that the summary is kind of easy to read. The report is at "
    "https://reports.example.com/q3.pdf and revenue grew by 14% to $5,000 in 3 days. "
    "Do not mention the names of any customers. Thank you so much in advance for your help!"
)
VERBOSE_PROTECTED = (
    "https://reports.example.com/q3.pdf",
    "14%",
    "$5,000",
    "Halvorsen Logistics",
    "Do not mention the names of any customers.",
)


@pytest.fixture(autouse=True)
def _isolation(settings):
    settings.OPENAI_API_KEY = ""  # the default provider is the offline fake
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    translation.translation_cache_forget()
    usage.memory_buffer.clear()
    yield
    translation.translations_wait()
    translation.translation_cache_forget()
    usage.memory_buffer.clear()


def call(key: str, route: str, body: dict):
    """POST through the SDK's low-level client; returns the parsed JSON body."""

    async def run():
        transport = httpx.ASGITransport(app=get_asgi_application())
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
            openai.AsyncOpenAI(
                base_url="http://testserver/v1", api_key=key, max_retries=0, http_client=http
            ) as client,
        ):
            return await client.post(route, body=body, cast_to=object)

    return async_to_sync(run)()


# --- Auth and errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/synthlang/compress", {"text": "hi"}),
        ("/synthlang/decompress", {"data": pack("hi")}),
        ("/synthlang/translate", {"text": "hi"}),
    ],
)
def test_endpoints_refuse_a_wrong_api_key(route, body, db):
    with pytest.raises(openai.AuthenticationError) as raised:
        call("sk-syn-not-a-real-key", route, body)
    assert raised.value.status_code == 401


def raw_post(route: str, body: dict, *, key: str = "") -> httpx.Response:
    """POST without the SDK: no key at all, or JSON the SDK cannot encode."""

    async def run():
        transport = httpx.ASGITransport(app=get_asgi_application())
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            # ensure_ascii: lone surrogates travel as \uXXXX escapes, which JSON allows.
            return await http.post(f"/v1{route}", content=json.dumps(body), headers=headers)

    return async_to_sync(run)()


def test_endpoints_refuse_a_request_without_any_key(db):
    response = raw_post("/synthlang/compress", {"text": "hi"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_unknown_compression_level_is_a_400(alice_key):
    with pytest.raises(openai.BadRequestError) as raised:
        call(alice_key, "/synthlang/compress", {"text": "hi", "level": "extreme"})
    assert raised.value.body["param"] == "level"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": "a", "messages": [{"role": "user", "content": "b"}]},
        {"text": 42},
        {"text": "a", "format": "zip"},
        {"messages": [{"role": "user", "content": "b"}], "format": "transport"},
    ],
)
def test_malformed_compress_request_is_a_400(alice_key, body):
    with pytest.raises(openai.BadRequestError):
        call(alice_key, "/synthlang/compress", body)


def _truncated_pack() -> str:
    packed = pack("a long enough text to be cut in half " * 20)
    return packed[: len(packed) // 2]


@pytest.mark.parametrize(
    "data",
    [
        "hello",
        "slz1:",
        "slz1:!!!not base64!!!",
        "slz1:" + base64.urlsafe_b64encode(b"plain bytes, not gzip").decode(),
        "slz1:" + base64.urlsafe_b64encode(gzip.compress(b"\xff\xfe\xfa", mtime=0)).decode(),
        _truncated_pack(),
        "slz1:" + base64.urlsafe_b64encode(gzip.compress(b"hi", mtime=0) + b"junk").decode(),
        12345,
    ],
)
def test_bad_transport_data_is_a_400_never_a_500(alice_key, data):
    with pytest.raises(openai.BadRequestError) as raised:
        call(alice_key, "/synthlang/decompress", {"data": data})
    assert raised.value.body["param"] == "data"


# --- Compress ----------------------------------------------------------------------------


def test_compress_saves_tokens_on_a_verbose_prompt_and_keeps_protected_spans(alice_key):
    body = call(alice_key, "/synthlang/compress", {"text": VERBOSE, "level": "medium"})
    assert body["level"] == "medium"
    assert body["encoding"] == "o200k_base"  # the default model, gpt-4o
    assert body["tokens_before"] == count_tokens(VERBOSE, model="gpt-4o")
    assert body["tokens_after"] == count_tokens(body["text"], model="gpt-4o")
    assert body["tokens_after"] < body["tokens_before"]
    assert body["tokens_saved"] == body["tokens_before"] - body["tokens_after"]
    for span in VERBOSE_PROTECTED:
        assert span in body["text"], span


def test_compress_counts_tokens_with_the_named_models_tokenizer(alice_key):
    body = call(alice_key, "/synthlang/compress", {"text": VERBOSE, "model": "gpt-4"})
    assert body["encoding"] == "cl100k_base"
    assert body["tokens_before"] == count_tokens(VERBOSE, model="gpt-4")


def test_compress_level_off_returns_the_text_unchanged(alice_key):
    body = call(alice_key, "/synthlang/compress", {"text": VERBOSE, "level": "off"})
    assert body["text"] == VERBOSE and body["tokens_saved"] == 0


def test_compress_messages_leaves_assistant_turns_alone(alice_key):
    messages = [
        {"role": "system", "content": VERBOSE},
        {"role": "assistant", "content": VERBOSE},
        {"role": "user", "content": VERBOSE},
    ]
    body = call(alice_key, "/synthlang/compress", {"messages": messages, "level": "high"})
    assert body["messages"][1] == messages[1]
    assert body["messages"][0]["content"] != VERBOSE
    assert body["tokens_after"] < body["tokens_before"]
    assert body["tokens_saved"] == body["tokens_before"] - body["tokens_after"]


# --- The transport form ------------------------------------------------------------------


def test_transport_format_packs_text_and_decompress_restores_it(alice_key):
    packed = call(alice_key, "/synthlang/compress", {"text": VERBOSE, "format": "transport"})
    assert packed == {"data": pack(VERBOSE)}
    restored = call(alice_key, "/synthlang/decompress", {"data": packed["data"]})
    assert restored == {"text": VERBOSE}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.text())
def test_transport_round_trips_any_unicode_text_exactly_over_http(alice_key, text):
    packed = call(alice_key, "/synthlang/compress", {"text": text, "format": "transport"})
    assert call(alice_key, "/synthlang/decompress", packed)["text"] == text


@pytest.mark.parametrize("text", ["", "\x00", "🦜" * 1000, "\r\n\t ", "e\u0301 ﷽ \U0010fffd"])
def test_transport_round_trips_edge_cases_exactly_over_http(alice_key, text):
    packed = call(alice_key, "/synthlang/compress", {"text": text, "format": "transport"})
    assert call(alice_key, "/synthlang/decompress", packed)["text"] == text


def test_transport_round_trips_lone_surrogates_over_http(alice_key):
    # Broken UTF-16 from clients' JSON escapes: not UTF-8 encodable, still carried exactly.
    text = "a\ud800b\udfff"
    packed = raw_post("/synthlang/compress", {"text": text, "format": "transport"}, key=alice_key)
    assert packed.status_code == 200
    restored = raw_post("/synthlang/decompress", packed.json(), key=alice_key)
    assert restored.status_code == 200
    assert restored.json()["text"] == text


# --- Translate ---------------------------------------------------------------------------


def test_translate_compiles_now_and_stores_the_result_for_the_callers_organization(
    alice_key, org_a, monkeypatch
):
    stub = StubTranslator(COMPACT)
    monkeypatch.setitem(providers.PROVIDERS, "fake", stub)
    body = call(alice_key, "/synthlang/translate", {"text": LONG_PROMPT})
    assert body["status"] == "ready", body["detail"]
    assert body["text"] == COMPACT
    assert body["tokens_before"] == count_tokens(LONG_PROMPT, model="gpt-4o")
    assert body["tokens_after"] == count_tokens(COMPACT, model="gpt-4o")
    assert body["translator_model"] == "gpt-4o-mini"
    row = TranslatedPrompt.objects.get(pk=body["id"])
    assert (row.organization_id, row.status, row.compiled_text) == (org_a.pk, "ready", COMPACT)
    assert stub.requests[0]["messages"][1]["content"] == LONG_PROMPT


def test_translate_uses_the_translator_model_the_client_names(alice_key, monkeypatch):
    stub = StubTranslator(COMPACT)
    monkeypatch.setitem(providers.PROVIDERS, "fake", stub)
    body = call(alice_key, "/synthlang/translate", {"text": LONG_PROMPT, "model": "gpt-4.1-mini"})
    assert body["translator_model"] == "gpt-4.1-mini"
    assert stub.requests[0]["model"] == "gpt-4.1-mini"


def test_translate_with_the_offline_fake_is_rejected_and_keeps_the_original(alice_key, org_a):
    body = call(alice_key, "/synthlang/translate", {"text": LONG_PROMPT})
    assert body["status"] == "rejected"
    assert body["text"] == LONG_PROMPT
    assert body["tokens_after"] == body["tokens_before"]
    assert TranslatedPrompt.objects.get(organization=org_a).status == "rejected"


def test_translation_by_one_organization_is_invisible_to_another(
    alice_key, charlie_key, org_a, org_b, monkeypatch, settings
):
    settings.SYNTHLANG_TRANSLATE = True
    monkeypatch.setitem(providers.PROVIDERS, "fake", StubTranslator(COMPACT))
    monkeypatch.setattr(translation, "translation_queue", lambda _id: None)
    call(alice_key, "/synthlang/translate", {"text": LONG_PROMPT})
    messages = [{"role": "system", "content": LONG_PROMPT}, {"role": "user", "content": "hi"}]
    apply = async_to_sync(translation.apply_translation)
    assert apply(organization_id=org_b.pk, messages=messages, model="gpt-4o") == (messages, 0)
    translated, saved = apply(organization_id=org_a.pk, messages=messages, model="gpt-4o")
    assert translated[0]["content"] == COMPACT and saved > 0
