"""Translate mode: the check, the compile task, and the gateway hook `apply_translation`."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.db.backends import utils as db_utils

from billing import usage
from billing.models import UsageEvent
from billing.services import budget_set
from proxy import providers, tasks, translation
from proxy.models import TranslatedPrompt
from proxy.providers.base import UpstreamError, UpstreamResult
from proxy.tokens import count_tokens
from proxy.translation_check import (
    TRANSLATOR_SYSTEM_PROMPT,
    check_translation,
    compiled_from_response,
    source_hash,
)

# Over 400 tokens on both encodings; its protected spans are the names, the URL and the two
# negation sentences, which COMPACT keeps verbatim.
LONG_PROMPT = (
    "You are Nova, the friendly customer support assistant for Halvorsen Logistics. "
    "It is really very important that you always try your very best to be as helpful, "
    "courteous and kind as you possibly can be to each and every customer who writes in, "
    "because we truly and genuinely care a great deal about the overall experience that "
    "our customers have with us and with the help that we give them for their shipments.\n\n"
    "For every question about a shipment, please make sure that you take the time to "
    "carefully read through the whole message of the customer from the beginning to the "
    "end, so that you are able to fully and completely understand what it is that they "
    "are actually asking you about. In order to give the best possible answer, it would "
    "be great for you to basically try to summarise the current status of the shipment in "
    "a clear and simple way that is easy for the customer to understand, and then explain "
    "what the next steps in the delivery process are going to be.\n\n"
    "Never share a customer's tracking number unless they verify their e-mail address.\n\n"
    "For questions about returns, you should always kindly point the customer towards "
    "our returns page at https://help.halvorsen.example/returns where they will be able "
    "to find all of the information that they are looking for about how the returns "
    "process works from start to finish.\n\n"
    "Do not promise delivery dates.\n\n"
    "Please also keep in mind that it is generally a really good idea to try to keep "
    "your answers fairly short and to the point, because customers usually tend to "
    "prefer answers that are quick and easy to read, and they are often in a hurry and "
    "pressed for time in their busy working day. Thank you so much for all of your hard "
    "work and for helping our customers every single day, we really do appreciate it "
    "very much indeed.\n\n"
    "At the end of every conversation, it would be really nice for you to kindly thank "
    "the customer for choosing Halvorsen Logistics and to let them know that they can "
    "always reach out to us again at any time of the day or night with any further "
    "questions or concerns about any of their shipments with us in the future."
)

COMPACT = (
    "Role: Nova, support assistant, Halvorsen Logistics. Be helpful, courteous.\n"
    "Shipment question → read whole message; summarise status simply → explain next "
    "delivery steps.\n"
    "Never share a customer's tracking number unless they verify their e-mail address.\n"
    "Returns → https://help.halvorsen.example/returns\n"
    "Do not promise delivery dates.\n"
    "Answers: short, to the point.\n"
    "End: thank customer for choosing Halvorsen Logistics; invite further questions."
)

# The same compact form with the negation paraphrased: exactly what the check exists to stop.
COMPACT_WITHOUT_NEGATION = COMPACT.replace(
    "Never share a customer's tracking number unless they verify their e-mail address.",
    "Tracking number → only to verified e-mail.",
)


@pytest.fixture(autouse=True)
def _tasks_run_in_process(celery_eager):
    """These tests follow a translation from request to compiled row in one process."""


def chat(system: str, user: str = "Where is parcel 7?") -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class StubTranslator:
    """Stands in for the upstream at the provider boundary: answers with a set text."""

    name = "fake"

    def __init__(self, answer: str):
        self.answer = answer
        self.requests: list[dict] = []
        self.error: UpstreamError | None = None

    async def chat(self, target, body):
        self.requests.append(body)
        if self.error is not None:
            raise self.error
        return UpstreamResult(
            body={
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": target.upstream_model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 500, "completion_tokens": 90, "total_tokens": 590},
            }
        )


@pytest.fixture(autouse=True)
def _translation_state(settings):
    settings.OPENAI_API_KEY = ""  # the default provider is the offline fake
    settings.SYNTHLANG_TRANSLATE = True
    settings.USAGE_FLUSH_IN_BACKGROUND = False  # tests flush explicitly, inside the test
    translation.translation_cache_forget()
    usage.memory_buffer.clear()
    yield
    translation.translations_wait()
    translation.translation_cache_forget()
    usage.memory_buffer.clear()  # translator calls are accounted; no flush after the test


@pytest.fixture
def translator(monkeypatch):
    stub = StubTranslator(COMPACT)
    monkeypatch.setitem(providers.PROVIDERS, "fake", stub)
    return stub


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Records compiles queued by the hook instead of running them."""
    ids: list[int] = []
    monkeypatch.setattr(translation, "translation_queue", ids.append)
    return ids


@pytest.fixture
def sql_counter(monkeypatch) -> list[str]:
    """Statements from every thread: the hook queries from pool threads, which
    django_assert_num_queries (this thread's connection only) cannot see."""
    seen: list[str] = []
    original = db_utils.CursorWrapper.execute

    def counting_execute(self, sql, params=None):
        seen.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(db_utils.CursorWrapper, "execute", counting_execute)
    return seen


def apply(organization, messages, model="gpt-4o"):
    return async_to_sync(translation.apply_translation)(
        organization_id=organization.pk, messages=messages, model=model
    )


def ready_row(organization, *, source=LONG_PROMPT, compiled=COMPACT) -> TranslatedPrompt:
    check = check_translation(original=source, compiled=compiled, model="gpt-4o")
    return translation.translation_store(
        organization_id=organization.pk, source_text=source, check=check, translator="stub"
    )


# --- The check -----------------------------------------------------------------------------


def test_long_prompt_fixture_is_over_the_translation_threshold():
    assert count_tokens(LONG_PROMPT, model="gpt-4o") > 400
    assert count_tokens(LONG_PROMPT, model="gpt-4") > 400


def test_compiled_form_keeping_every_protected_span_and_shorter_is_accepted():
    check = check_translation(original=LONG_PROMPT, compiled=COMPACT, model="gpt-4o")
    assert check.status == "ready", check.detail
    assert check.text == COMPACT
    assert check.tokens_before == count_tokens(LONG_PROMPT, model="gpt-4o")
    assert check.tokens_after == count_tokens(COMPACT, model="gpt-4o")
    assert check.tokens_saved > 0


def test_compiled_form_that_paraphrases_a_negation_is_rejected_and_the_original_kept():
    check = check_translation(
        original=LONG_PROMPT, compiled=COMPACT_WITHOUT_NEGATION, model="gpt-4o"
    )
    assert check.status == "rejected"
    assert check.text == LONG_PROMPT
    assert check.tokens_after == check.tokens_before
    assert "Never share" in check.detail


def test_compiled_form_that_drops_the_url_is_rejected():
    compiled = COMPACT.replace("https://help.halvorsen.example/returns", "the returns page")
    check = check_translation(original=LONG_PROMPT, compiled=compiled, model="gpt-4o")
    assert check.status == "rejected"
    assert "halvorsen.example" in check.detail


def test_compiled_form_that_is_not_shorter_is_rejected():
    longer = LONG_PROMPT + "\nRemember all of the above."
    check = check_translation(original=LONG_PROMPT, compiled=longer, model="gpt-4o")
    assert check.status == "rejected"
    assert check.text == LONG_PROMPT
    assert "Not shorter" in check.detail


def test_answer_cut_off_at_the_token_limit_is_rejected_even_if_it_looks_fine():
    check = check_translation(
        original=LONG_PROMPT, compiled=COMPACT, model="gpt-4o", finish_reason="length"
    )
    assert check.status == "rejected"


def test_implausibly_short_answer_is_rejected(settings):
    settings.SYNTHLANG_TRANSLATE_MIN_RATIO = 0.5  # COMPACT keeps about a fifth
    check = check_translation(original=LONG_PROMPT, compiled=COMPACT, model="gpt-4o")
    assert check.status == "rejected"
    assert "Implausibly short" in check.detail


def test_code_fence_around_the_answer_is_not_part_of_the_compiled_prompt():
    body = {
        "choices": [{"message": {"content": f"```text\n{COMPACT}\n```"}, "finish_reason": "stop"}]
    }
    assert compiled_from_response(body) == (COMPACT, "stop")


# --- The compile task ------------------------------------------------------------------------


def pending_row(organization, source=LONG_PROMPT) -> TranslatedPrompt:
    return TranslatedPrompt.objects.create(
        organization=organization,
        source_hash=source_hash(source),
        source_text=source,
    )


@pytest.mark.django_db(transaction=True)
def test_task_compiles_a_pending_prompt_into_a_ready_translation(org_a, translator):
    row = pending_row(org_a)
    tasks.translate_system_prompt.delay(row.pk)
    row.refresh_from_db()
    assert row.status == "ready", row.detail
    assert row.compiled_text == COMPACT
    assert row.translator_model == "gpt-4o-mini"
    assert row.compiled_tokens == count_tokens(COMPACT, model="gpt-4o")
    # The translator saw the prompt exactly as written, under our instructions.
    request = translator.requests[0]
    assert request["messages"][0]["content"] == TRANSLATOR_SYSTEM_PROMPT
    assert request["messages"][1]["content"] == LONG_PROMPT


@pytest.mark.django_db(transaction=True)
def test_translator_call_is_accounted_to_the_organization(org_a, translator):
    row = pending_row(org_a)
    tasks.translate_system_prompt(row.pk)
    usage.usage_flush_run()
    event = UsageEvent.objects.get(organization=org_a)
    assert (event.model, event.prompt_tokens, event.completion_tokens) == ("gpt-4o-mini", 500, 90)


@pytest.mark.django_db(transaction=True)
def test_task_is_idempotent(org_a, translator):
    row = pending_row(org_a)
    assert tasks.translate_system_prompt(row.pk) == "ready"
    translator.answer = "something else entirely"
    assert tasks.translate_system_prompt(row.pk) == "ready"
    row.refresh_from_db()
    assert row.compiled_text == COMPACT
    assert len(translator.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_task_rejects_a_translation_that_loses_a_negation(org_a, translator):
    translator.answer = COMPACT_WITHOUT_NEGATION
    row = pending_row(org_a)
    assert tasks.translate_system_prompt(row.pk) == "rejected"
    row.refresh_from_db()
    assert row.status == "rejected"
    assert row.compiled_text == COMPACT_WITHOUT_NEGATION  # kept for operators to inspect


@pytest.mark.django_db(transaction=True)
def test_task_records_an_upstream_failure(org_a, translator):
    translator.error = UpstreamError("upstream down", upstream_status=503, retryable=True)
    row = pending_row(org_a)
    assert tasks.translate_system_prompt(row.pk) == "failed"
    row.refresh_from_db()
    assert row.status == "failed"
    assert "upstream down" in row.detail


@pytest.mark.django_db(transaction=True)
def test_task_for_a_missing_row_does_nothing(translator):
    assert tasks.translate_system_prompt(999_999) is None
    assert translator.requests == []


# --- The gateway hook ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_first_sight_of_a_long_prompt_queues_a_compile_and_changes_nothing(org_a, queued):
    messages = chat(LONG_PROMPT)
    result, saved = apply(org_a, messages)
    assert result == messages and saved == 0
    row = TranslatedPrompt.objects.get(organization=org_a)
    assert row.status == "pending"
    assert row.source_text == LONG_PROMPT
    assert queued == [row.pk]


@pytest.mark.django_db(transaction=True)
def test_ready_translation_replaces_the_system_prompt_and_counts_the_saving(org_a, queued):
    ready_row(org_a)
    result, saved = apply(org_a, chat(LONG_PROMPT))
    assert result[0] == {"role": "system", "content": COMPACT}
    assert result[1] == chat(LONG_PROMPT)[1]
    expected = count_tokens(LONG_PROMPT, model="gpt-4o") - count_tokens(COMPACT, model="gpt-4o")
    assert saved == expected > 0
    assert queued == []


@pytest.mark.django_db(transaction=True)
def test_saving_is_counted_on_the_request_models_tokenizer(org_a, queued):
    ready_row(org_a)
    _, saved = apply(org_a, chat(LONG_PROMPT), model="gpt-4")
    expected = count_tokens(LONG_PROMPT, model="gpt-4") - count_tokens(COMPACT, model="gpt-4")
    assert saved == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", ["pending", "rejected", "failed"])
def test_translation_that_is_not_ready_is_never_used(org_a, queued, status):
    ready_row(org_a)
    TranslatedPrompt.objects.filter(organization=org_a).update(status=status)
    messages = chat(LONG_PROMPT)
    assert apply(org_a, messages) == (messages, 0)


@pytest.mark.django_db(transaction=True)
def test_another_organizations_translation_is_never_used(org_a, org_b, queued):
    ready_row(org_a)
    messages = chat(LONG_PROMPT)
    assert apply(org_b, messages) == (messages, 0)
    # org_b gets its own pending compile; org_a's row is untouched.
    rows = {row.organization_id: row.status for row in TranslatedPrompt.objects.all()}
    assert rows == {org_a.pk: "ready", org_b.pk: "pending"}
    # And org_a does get it, so the isolation above is not an accident.
    assert apply(org_a, messages)[0][0]["content"] == COMPACT


@pytest.mark.django_db(transaction=True)
def test_second_lookup_runs_no_sql(org_a, queued, sql_counter, django_assert_num_queries):
    ready_row(org_a)
    sql_counter.clear()
    apply(org_a, chat(LONG_PROMPT))
    assert sql_counter, "the first lookup reads the database"
    sql_counter.clear()
    with django_assert_num_queries(0):
        result, saved = apply(org_a, chat(LONG_PROMPT, user="A different question"))
    assert sql_counter == []
    assert result[0]["content"] == COMPACT and saved > 0


@pytest.mark.django_db(transaction=True)
def test_misses_are_cached_too(org_a, queued, sql_counter):
    messages = chat(LONG_PROMPT)
    apply(org_a, messages)  # creates the pending row
    TranslatedPrompt.objects.filter(organization=org_a).update(
        status="ready", compiled_text=COMPACT
    )
    sql_counter.clear()
    assert apply(org_a, messages) == (messages, 0)  # the negative entry still holds
    assert sql_counter == []
    translation.translation_cache_forget()  # as if the entry had expired
    assert apply(org_a, messages)[0][0]["content"] == COMPACT
    assert len(queued) == 1


@pytest.mark.django_db(transaction=True)
def test_short_system_prompt_is_left_alone_without_a_row(org_a, queued):
    messages = chat("You are a terse assistant. Never use emojis.")
    assert apply(org_a, messages) == (messages, 0)
    assert not TranslatedPrompt.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_translate_mode_is_off_unless_enabled(org_a, queued, settings):
    settings.SYNTHLANG_TRANSLATE = False
    ready_row(org_a)
    messages = chat(LONG_PROMPT)
    assert apply(org_a, messages) == (messages, 0)


@pytest.mark.django_db(transaction=True)
def test_embedded_default_compiles_in_the_background_and_the_next_request_uses_it(
    org_a, translator
):
    messages = chat(LONG_PROMPT)
    assert apply(org_a, messages) == (messages, 0)
    translation.translations_wait()
    assert TranslatedPrompt.objects.get(organization=org_a).status == "ready"
    # The compile forgot this process's negative entry: no TTL to wait out.
    result, saved = apply(org_a, messages)
    assert result[0]["content"] == COMPACT and saved > 0


@pytest.mark.django_db(transaction=True)
def test_with_the_offline_fake_translator_the_translation_is_rejected_and_the_original_kept(
    org_a,
):
    # No stub: the default provider is the offline fake, which only echoes its input.
    messages = chat(LONG_PROMPT)
    apply(org_a, messages)
    translation.translations_wait()
    row = TranslatedPrompt.objects.get(organization=org_a)
    assert row.status == "rejected", row.detail
    assert row.compiled_text.startswith("This is a fake answer")
    assert apply(org_a, messages) == (messages, 0)


@pytest.mark.django_db(transaction=True)
def test_a_background_compile_is_held_to_the_organization_budget_and_names_no_member(
    org_a, translator
):
    accounted = pending_row(org_a)
    assert tasks.translate_system_prompt(accounted.pk) == "ready"
    usage.usage_flush_run()
    event = UsageEvent.objects.get(organization=org_a)
    assert (event.user_id, event.api_key_id, event.status_code) == (None, None, 200)

    budget_set(organization=org_a, monthly_limit_micros=0)
    refused = pending_row(org_a, source=LONG_PROMPT + " Answer in English.")
    assert tasks.translate_system_prompt(refused.pk) == "failed"
    usage.usage_flush_run()
    assert len(translator.requests) == 1  # the refused compile never reached the upstream
    failure = UsageEvent.objects.exclude(pk=event.pk).get(organization=org_a)
    assert failure.status_code == 429 and failure.error_code == "insufficient_quota"
