"""Generated corpora of valid and invalid card numbers and IBANs, each embedded in a
sentence: the detector's precision and recall over them (figures in the README).

Invalid cases are what people actually mistype: one digit changed, or two adjacent
digits swapped. Luhn misses a swap of 0 and 9 and mod 97 misses nothing of either kind,
so a swap that leaves the number valid is counted as valid, not as a miss.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails import recognizers as r

CARD_PREFIXES = ["4", "51", "55", "2221", "34", "37", "6011", "65", "35", "36"]
IBAN_COUNTRIES = ["GB", "DE", "FR", "ES", "IT", "NL", "BE", "CH", "PL", "SE", "NO", "PT"]


# The ground truth is computed here, independently of the detector's own checks.
def _luhn_truth(number: str) -> bool:
    digits = [int(d) for d in number]
    odd = digits[-1::-2]
    even = [sum(divmod(2 * d, 10)) for d in digits[-2::-2]]
    return (sum(odd) + sum(even)) % 10 == 0


def _card_truth(number: str) -> bool:
    first2, first4 = int(number[:2]), int(number[:4])
    issued = (
        number[0] == "4"
        or 51 <= first2 <= 55
        or 2221 <= first4 <= 2720
        or first2 in (34, 37, 30, 36, 38, 39, 35, 65)
        or number.startswith(("6011", "622"))
        or 644 <= int(number[:3]) <= 649
    )
    return issued and 13 <= len(number) <= 19 and _luhn_truth(number)


def _iban_truth(value: str) -> bool:
    if len(value) != r.IBAN_LENGTHS.get(value[:2]):
        return False
    remainder = 0
    for char in value[4:] + value[:4]:
        for digit in str(int(char, 36)):
            remainder = (remainder * 10 + int(digit)) % 97
    return remainder == 1


def _luhn_complete(partial: str) -> str:
    for check in "0123456789":
        if _luhn_truth(partial + check):
            return partial + check
    raise AssertionError("unreachable")


@st.composite
def cards(draw):
    prefix = draw(st.sampled_from(CARD_PREFIXES))
    length = 15 if prefix in ("34", "37") else draw(st.sampled_from([16, 16, 16, 19]))
    body = draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - 1))
    body = body[: length - len(prefix) - 1]
    return _luhn_complete(prefix + body)


@st.composite
def ibans(draw):
    country = draw(st.sampled_from(IBAN_COUNTRIES))
    length = r.IBAN_LENGTHS[country]
    bban = draw(st.text("0123456789", min_size=length - 4, max_size=length - 4))
    remainder = int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{98 - remainder:02d}{bban}"


@st.composite
def mistyped(draw, valid_strategy, alphabet="0123456789"):
    value = draw(valid_strategy)
    start = 2 if value[:2].isalpha() else 0
    position = draw(st.integers(min_value=start, max_value=len(value) - 2))
    if draw(st.booleans()):
        digit = draw(st.sampled_from([d for d in alphabet if d != value[position]]))
        return value[:position] + digit + value[position + 1 :]
    return value[:position] + value[position + 1] + value[position] + value[position + 2 :]


def _group(value: str, separator: str) -> str:
    return separator.join(value[i : i + 4] for i in range(0, len(value), 4))


class Tally:
    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = 0

    def add(self, *, truly_valid: bool, detected: bool):
        if truly_valid:
            self.tp += detected
            self.fn += not detected
        else:
            self.fp += detected
            self.tn += not detected

    def precision(self):
        return self.tp / max(self.tp + self.fp, 1)

    def recall(self):
        return self.tp / max(self.tp + self.fn, 1)


def _measure(kind, valid_strategy, is_valid, separators):
    tally = Tally()
    case = st.tuples(
        st.booleans(),
        st.one_of(valid_strategy, mistyped(valid_strategy)),
        st.sampled_from(separators),
    )

    @settings(
        max_examples=600,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case)
    def run(drawn):
        _, value, separator = drawn
        text = f"Please use {_group(value, separator) if separator else value} for this."
        detected = any(f.kind == kind for f in r.find_all(text))
        tally.add(truly_valid=is_valid(value), detected=detected)

    run()
    return tally


def test_card_detector_precision_and_recall_on_a_generated_corpus():
    tally = _measure(r.CREDIT_CARD, cards(), _card_truth, ["", " ", "-"])
    print(f"cards: tp={tally.tp} fp={tally.fp} fn={tally.fn} tn={tally.tn}")
    assert tally.tp > 50 and tally.tn > 50
    assert tally.precision() == 1.0
    assert tally.recall() == 1.0


def test_iban_detector_precision_and_recall_on_a_generated_corpus():
    tally = _measure(r.IBAN, ibans(), _iban_truth, ["", " "])
    print(f"ibans: tp={tally.tp} fp={tally.fp} fn={tally.fn} tn={tally.tn}")
    assert tally.tp > 50 and tally.tn > 50
    assert tally.precision() == 1.0
    assert tally.recall() == 1.0


@settings(max_examples=300, deadline=None)
@given(cards())
def test_every_generated_card_is_luhn_valid_and_found_bare(number):
    assert _card_truth(number)
    assert [f.kind for f in r.find_all(f"card {number}")] == [r.CREDIT_CARD]
