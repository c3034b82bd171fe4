"""Pattern and checksum recognizers for personal data and secrets in free text.

Pure functions, no ORM and no I/O: a candidate is found by a regular expression and kept
only when the checksum or the format rules of its kind hold (Luhn for cards, ISO 7064
mod 97 for IBANs, the SSA's rules for US SSNs, HMRC's prefixes for UK NINOs, the mod-23
letter of Spanish DNIs, ``ipaddress`` for IP addresses). Decision 0031 says why these
are ours and not Presidio's.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

EMAIL = "EMAIL"
PHONE = "PHONE"
CREDIT_CARD = "CREDIT_CARD"
IBAN = "IBAN"
US_SSN = "US_SSN"
UK_NINO = "UK_NINO"
ES_DNI = "ES_DNI"
IP_ADDRESS = "IP_ADDRESS"
SECRET = "SECRET"  # noqa: S105 - a kind label, not a password

# Earlier kinds win an overlap of equal length: a key inside a URL is a secret, an
# e-mail's digits are not a phone number.
KINDS = (SECRET, EMAIL, IBAN, CREDIT_CARD, US_SSN, UK_NINO, ES_DNI, IP_ADDRESS, PHONE)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int
    value: str


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# Issuer prefixes of the card networks in use (ISO/IEC 7812 IINs): a Luhn-valid run of
# digits that no network issues is an order number, not a card.
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|22)|35)")


def card_valid(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_valid(digits)


# ISO 13616 lengths of the countries whose IBANs we accept.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(compact: str) -> bool:
    compact = compact.upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    # The SSA never issues area 000, 666 or 9xx, group 00 or serial 0000.
    return (
        area not in ("000", "666")
        and not area.startswith("9")
        and group != "00"
        and serial != "0000"
    )


_NINO_BAD_PREFIXES = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_valid(number: str, letter: str) -> bool:
    return _DNI_LETTERS[int(number) % 23] == letter.upper()


def _ip_valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# (a literal every match contains, pattern): a pattern runs only over text that holds its
# literal, so prose pays a few substring searches instead of thirteen regex scans.
_SECRET_PATTERNS = [
    (
        "PRIVATE KEY-----",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]{16,16384}?"
        r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    ),
    ("sk-", r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{32,}"),  # Anthropic
    ("sk-", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}"),  # OpenAI, sk-syn- keys
    ("A", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),  # AWS access key id
    ("", r"(?i:aws_?secret_?access_?key)\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}\b"),  # AWS secret
    ("gh", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),  # GitHub tokens
    ("github_pat_", r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b"),  # GitHub fine-grained token
    ("xox", r"\bxox[abposr]-[A-Za-z0-9-]{10,250}"),  # Slack tokens
    ("hooks.slack.com", r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,200}"),
    ("k_", r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,247}\b"),  # Stripe
    ("AIza", r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API key
    ("ya29.", r"\bya29\.[0-9A-Za-z_-]{20,}"),  # Google OAuth access token
    ("eyJ", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
]
_SECRETS = [(hint, re.compile(pattern)) for hint, pattern in _SECRET_PATTERNS]

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
_NINO = re.compile(r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?(\d{2}) ?(\d{2}) ?(\d{2}) ?[A-D]\b")
_DNI = re.compile(r"\b(\d{8})-?([A-Za-z])\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# International (+CC ...) or North American ((555) 123-4567, 555-123-4567) numbers; a
# bare run of digits is too often something else to mask.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
)

_DIGITS = re.compile(r"\D")


def _emails(text: str) -> Iterator[Finding]:
    for match in _EMAIL.finditer(text):
        yield Finding(EMAIL, match.start(), match.end(), match.group())


def _ibans(text: str) -> Iterator[Finding]:
    for match in _IBAN.finditer(text):
        value = match.group()
        # The pattern may run into the next word ("... 1300 01"): try shorter spans too.
        compact = value.replace(" ", "")
        country_length = IBAN_LENGTHS.get(compact[:2])
        if country_length is None or len(compact) < country_length:
            continue
        seen = 0
        for index, char in enumerate(value):
            if char != " ":
                seen += 1
            if seen == country_length:
                candidate = value[: index + 1]
                if iban_valid(candidate.replace(" ", "")):
                    yield Finding(IBAN, match.start(), match.start() + index + 1, candidate)
                break


def _cards(text: str) -> Iterator[Finding]:
    for match in _CARD.finditer(text):
        if card_valid(_DIGITS.sub("", match.group())):
            yield Finding(CREDIT_CARD, match.start(), match.end(), match.group())


def _ssns(text: str) -> Iterator[Finding]:
    for match in _SSN.finditer(text):
        if ssn_valid(*match.groups()):
            yield Finding(US_SSN, match.start(), match.end(), match.group())


def _ninos(text: str) -> Iterator[Finding]:
    for match in _NINO.finditer(text):
        if match.group(1) not in _NINO_BAD_PREFIXES:
            yield Finding(UK_NINO, match.start(), match.end(), match.group())


def _dnis(text: str) -> Iterator[Finding]:
    for match in _DNI.finditer(text):
        if dni_valid(*match.groups()):
            yield Finding(ES_DNI, match.start(), match.end(), match.group())


def _ips(text: str) -> Iterator[Finding]:
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            value = match.group()
            if value.count(":") and len(value.replace(":", "")) < 2:
                continue  # "::" or "a::" is punctuation far more often than an address
            if _ip_valid(value):
                yield Finding(IP_ADDRESS, match.start(), match.end(), value)


def _phones(text: str) -> Iterator[Finding]:
    for match in _PHONE.finditer(text):
        if 7 <= len(_DIGITS.sub("", match.group())) <= 15:
            yield Finding(PHONE, match.start(), match.end(), match.group())


def _secrets(text: str) -> Iterator[Finding]:
    lowered = None
    for hint, pattern in _SECRETS:
        if not hint:  # the AWS secret's label is matched whatever its case
            lowered = lowered if lowered is not None else text.lower()
            if "aws" not in lowered:
                continue
        elif hint not in text:
            continue
        for match in pattern.finditer(text):
            yield Finding(SECRET, match.start(), match.end(), match.group())


RECOGNIZERS: dict[str, Callable[[str], Iterator[Finding]]] = {
    SECRET: _secrets,
    EMAIL: _emails,
    IBAN: _ibans,
    CREDIT_CARD: _cards,
    US_SSN: _ssns,
    UK_NINO: _ninos,
    ES_DNI: _dnis,
    IP_ADDRESS: _ips,
    PHONE: _phones,
}

# Characters one of the kinds needs: text without any of them is skipped cheaply.
_ANY_SIGNAL = re.compile(
    r"[\d@]|-----BEGIN|\b(?:[srp]k[-_]|gh[pousr]_|github_pat_|xox|AIza|ya29\.|eyJ|A[KS]IA|ABIA"
    r"|ACCA|hooks\.slack|(?i:aws))"
)


def find_all(text: str, kinds: tuple[str, ...] = KINDS) -> list[Finding]:
    """Every finding in ``text``, without overlaps, in order of position."""
    if not text or not _ANY_SIGNAL.search(text):
        return []
    rank = {kind: index for index, kind in enumerate(KINDS)}
    candidates = [finding for kind in kinds for finding in RECOGNIZERS[kind](text)]
    # Longest first, then the kind listed first: that one claims its span.
    candidates.sort(key=lambda f: (-(f.end - f.start), rank[f.kind], f.start))
    # Taken spans never overlap, so sorted by start they are sorted by end too: a new
    # span need only be compared with its two neighbours.
    starts: list[int] = []
    taken: list[Finding] = []
    for finding in candidates:
        at = bisect.bisect_left(starts, finding.start)
        if at > 0 and taken[at - 1].end > finding.start:
            continue
        if at < len(taken) and taken[at].start < finding.end:
            continue
        starts.insert(at, finding.start)
        taken.insert(at, finding)
    return taken
