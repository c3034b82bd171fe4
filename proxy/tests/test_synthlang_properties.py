"""Property-based checks: protected content survives every level; transport is lossless."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.synthlang import compress_messages, compress_text, pack, unpack
from proxy.tokens import count_tokens

LEVELS = ("low", "medium", "high")

# Prose deliberately full of what the rules remove or rewrite, so they fire around the
# protected pieces.
PROSE_WORDS = [
    "please", "really", "basically", "very", "in order to", "make sure that", "kind of",
    "the", "a", "report", "team", "data", "and then", "leads to", "as well as", "honestly",
    "we", "need", "summary", "quickly", "for each", "approximately", "so", "well", "thanks",
    "I was wondering if you could", "due to the fact that", "you know", "would", "help",
]  # fmt: skip
NEGATION_TEMPLATES = [
    "Do not {w} the {x}.",
    "Never {w} any {x}.",
    "Don't {w} {x} unless it is really {y}.",
    "Only {w} the {x} if it is {y}.",
    "You must {w} at least {n} {x}.",
    "It cannot {w} without the {x}.",
    "Use {x} except when it is {y}.",
    "No {x} should {w} basically {y}.",
]
VERBS = ["include", "mention", "change", "delete", "share", "round", "rename", "retry"]
NOUNS = ["prices", "names", "emojis", "ledger", "cache", "backups", "invoices", "tests"]
ADJECTIVES = ["urgent", "public", "empty", "stale", "broken", "really very large"]

words = st.sampled_from(PROSE_WORDS)
prose = st.lists(words, min_size=1, max_size=12).map(lambda parts: " ".join(parts) + ".")
negation = st.builds(
    lambda template, w, x, y, n: template.format(w=w, x=x, y=y, n=n),
    st.sampled_from(NEGATION_TEMPLATES),
    st.sampled_from(VERBS),
    st.sampled_from(NOUNS),
    st.sampled_from(ADJECTIVES),
    st.integers(min_value=1, max_value=999),
)
slug = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
url = st.builds(lambda a, b: f"https://{a}.example.com/{b}?q={a}", slug, slug)
email = st.builds(lambda a, b: f"{a}.{b}@{b}-mail.example", slug, slug)
number = st.builds(
    lambda value, unit: f"{value} {unit}",
    st.sampled_from(["3", "14", "1.5", "$5,000", "20%", "-27.8", "1,400", "€480"]),
    st.sampled_from(["days", "kg", "ms", "dBm", "meters", "per day", "USD"]),
)
quote = st.builds(
    lambda inner: f'"{inner}"',
    st.lists(words, min_size=1, max_size=6).map(" ".join),
)
inline_code = st.builds(lambda a, b: f"`{a}_{b}(really, very)`", slug, slug)
name = st.sampled_from(["Priya Raman", "Halvorsen Logistics", "Bank of the West", "NFCU"])
code_block = st.builds(
    lambda fn, body: f"```python\ndef {fn}(x):\n    # really   basically\n    return {body}\n```",
    slug,
    st.sampled_from(["x  +  1", "[x,   x]", "{'a':  x}"]),
)
protected = st.one_of(negation, url, email, number, quote, inline_code, name, code_block)


@st.composite
def documents(draw):
    """Prose sentences with protected pieces between them; returns (text, pieces)."""
    pieces = draw(st.lists(protected, min_size=1, max_size=6))
    parts = []
    for piece in pieces:
        parts.append(draw(prose))
        parts.append(piece)
    parts.append(draw(prose))
    separators = draw(st.lists(st.sampled_from([" ", "\n", "\n\n"]), min_size=len(parts)))
    text = "".join(part + separator for part, separator in zip(parts, separators, strict=False))
    return text.strip(), pieces


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.sampled_from(LEVELS), st.sampled_from(["gpt-4", "gpt-4o"]))
def test_protected_spans_survive_any_level(document, level, model):
    text, pieces = document
    result = compress_text(text, level=level, model=model)
    for piece in pieces:
        assert piece in result.text, (level, piece, result.text)


@settings(max_examples=100, deadline=None)
@given(documents(), st.sampled_from(LEVELS))
def test_compression_never_adds_tokens(document, level):
    text, _pieces = document
    result = compress_text(text, level=level, model="gpt-4o")
    assert result.tokens_after <= result.tokens_before
    assert result.tokens_after == count_tokens(result.text, model="gpt-4o")


@settings(max_examples=60, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=4), st.sampled_from(LEVELS))
def test_assistant_turns_are_never_changed(documents_list, level):
    messages = []
    for index, (text, _pieces) in enumerate(documents_list):
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
    compressed, stats = compress_messages(messages, level=level, model="gpt-4o")
    for before, after in zip(messages, compressed, strict=True):
        if before["role"] == "assistant":
            assert after == before
    assert stats.tokens_after <= stats.tokens_before


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_transport_round_trips_any_text_exactly(text):
    assert unpack(pack(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)))
def test_transport_round_trips_lone_surrogates(text):
    assert unpack(pack(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400), st.sampled_from(LEVELS))
def test_arbitrary_text_never_grows_and_never_raises(text, level):
    result = compress_text(text, level=level, model="gpt-4o")
    assert result.tokens_after <= result.tokens_before
