import pytest

from guardrails import recognizers as r


def kinds(text):
    return [(f.kind, f.value) for f in r.find_all(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("write to jane.doe+x@mail.example.co.uk today", "jane.doe+x@mail.example.co.uk"),
        ("A@B.io", "A@B.io"),
    ],
)
def test_email_is_found(text, expected):
    assert kinds(text) == [(r.EMAIL, expected)]


@pytest.mark.parametrize("text", ["user@localhost", "@handle", "a@b", "name at example dot com"])
def test_text_that_is_not_an_email_is_left_alone(text):
    assert [k for k, _ in kinds(text) if k == r.EMAIL] == []


@pytest.mark.parametrize(
    "number", ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000990139424"]
)
def test_luhn_valid_cards_of_known_networks_are_found(number):
    assert kinds(f"pay with {number} please") == [(r.CREDIT_CARD, number)]


@pytest.mark.parametrize(
    "number",
    ["4111 1111 1111 1112", "1234567812345670", "9111111111111111", "4111-1111"],
)
def test_luhn_invalid_or_unissued_numbers_are_not_cards(number):
    assert [k for k, _ in kinds(number) if k == r.CREDIT_CARD] == []


@pytest.mark.parametrize(
    "iban",
    ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "FR1420041010050500013M02606"],
)
def test_checksum_valid_ibans_are_found(iban):
    assert kinds(f"send it to {iban}.") == [(r.IBAN, iban)]


@pytest.mark.parametrize(
    "iban", ["GB82 WEST 1234 5698 7654 33", "DE8937040044053201300", "XX89370400440532013000"]
)
def test_ibans_with_a_bad_checksum_length_or_country_are_not_found(iban):
    assert [k for k, _ in kinds(iban) if k == r.IBAN] == []


def test_iban_followed_by_more_digits_is_cut_at_its_country_length():
    assert kinds("GB82 WEST 1234 5698 7654 32 10") == [(r.IBAN, "GB82 WEST 1234 5698 7654 32")]


@pytest.mark.parametrize(
    "ssn", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"]
)
def test_ssns_the_ssa_never_issues_are_not_found(ssn):
    assert kinds(ssn) == []


def test_a_well_formed_ssn_is_found():
    assert kinds("SSN 078-05-1120") == [(r.US_SSN, "078-05-1120")]


def test_uk_nino_follows_hmrc_prefix_rules():
    assert kinds("NI AB123456C") == [(r.UK_NINO, "AB123456C")]
    assert kinds("NI GB123456C") == []  # GB is never issued
    assert kinds("NI DA123456C") == []  # D is never a first letter


def test_spanish_dni_needs_its_check_letter():
    assert kinds("DNI 12345678Z") == [(r.ES_DNI, "12345678Z")]
    assert kinds("DNI 12345678A") == []


@pytest.mark.parametrize(
    "address", ["10.0.0.1", "255.255.255.255", "2001:db8::ff00:42:8329", "fe80::1"]
)
def test_ip_addresses_are_found(address):
    assert kinds(f"host {address} is up") == [(r.IP_ADDRESS, address)]


@pytest.mark.parametrize("text", ["version 1.2.3.4.5", "999.1.1.1", "at 12:30:45", "a::b"])
def test_version_numbers_and_times_are_not_ip_addresses(text):
    assert [k for k, _ in kinds(text) if k == r.IP_ADDRESS] == []


@pytest.mark.parametrize(
    "phone", ["+44 20 7946 0958", "+1 (415) 555-2671", "(555) 123-4567", "555.123.4567"]
)
def test_phone_numbers_are_found(phone):
    assert kinds(f"call {phone} now") == [(r.PHONE, phone)]


@pytest.mark.parametrize("text", ["order 20240115", "in 2024-01-15", "total 1,234,567"])
def test_dates_and_amounts_are_not_phone_numbers(text):
    assert kinds(text) == []


SECRETS = [
    "sk-proj-" + "A1b2" * 12,
    "sk-ant-api03-" + "x9" * 40,
    "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_" + "a1" * 18,
    "github_pat_" + "B" * 82,
    "xoxb-123456789012-1234567890123-abcdefABCDEF",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "AIza" + "S" * 35,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0123456789abcdef\n"
    "-----END RSA PRIVATE KEY-----",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_provider_keys_tokens_and_private_keys_are_secrets(secret):
    assert kinds(f"config: {secret} end") == [(r.SECRET, secret)]


def test_overlapping_findings_keep_the_longest():
    # The digits of a card are not also a phone number, an e-mail's digits neither.
    assert kinds("4111 1111 1111 1111 and 5551234567@example.com") == [
        (r.CREDIT_CARD, "4111 1111 1111 1111"),
        (r.EMAIL, "5551234567@example.com"),
    ]


def test_plain_prose_has_no_findings():
    assert r.find_all("The quick brown fox jumps over the lazy dog. " * 50) == []
