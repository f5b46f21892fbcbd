"""E.164 validation, normalisation and masking (services/phone.py)."""

from __future__ import annotations

import re

import pytest

from services.phone import E164_INPUT_PATTERN, MAX_INPUT, is_e164, mask_number, normalize_e164

E164_CASES = [
    # (input, valid)
    ("+38640123456", True),
    ("+15550000001", True),
    ("+12345678", True),  # 8 digits: the shortest accepted
    ("+123456789012345", True),  # 15 digits: the longest E.164 allows
    ("+1234567", False),  # 7 digits
    ("+1234567890123456", False),  # 16 digits
    ("+08640123456", False),  # country codes never start with 0
    ("38640123456", False),  # no "+"
    ("0038640123456", False),  # international prefix instead of "+"
    ("++38640123456", False),
    ("+386 40 123 456", False),  # separators are for normalize_e164, not for is_e164
    ("+38640123456\n", False),  # fullmatch: a trailing newline is not accepted
    ("+٣٨٦٤٠١٢٣٤٥٦", False),  # Arabic-Indic digits match \d but are not phone digits
    ("+３８６４０１２３４５６", False),  # fullwidth digits
    ("+3864012345a", False),
    ("", False),
    ("+", False),
]


@pytest.mark.parametrize(("number", "valid"), E164_CASES)
def test_is_e164(number: str, valid: bool) -> None:
    assert is_e164(number) is valid


NORMALIZE_CASES = [
    # (input, canonical or None when refused)
    ("+38640123456", "+38640123456"),
    ("  +386 40 123 456 ", "+38640123456"),
    ("+386-40-123-456", "+38640123456"),
    ("+1 (555) 000.0001", "+15550000001"),
    ("+386\u00a040\u00a0123\u00a0456", "+38640123456"),  # no-break spaces from copy-paste
    ("+386/40 123 456", "+38640123456"),
    ("040 123 456", None),  # national form: the country cannot be guessed
    ("0038640123456", None),
    ("+386 40 123 456 ext 7", None),
    ("+0 386 40 123 456", None),
    ("+" + "1" * 40, None),  # oversized
    ("+386\t40\t123\t456", "+38640123456"),
    ("+38640123456; DROP TABLE players", None),
    ("(+386) 40 123 456", "+38640123456"),
    ("+38640123456\n", None),  # a newline is not a separator
    ("\u2003+38640123456", None),  # nor is any other kind of space
    ("", None),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE_CASES)
def test_the_published_pattern_accepts_exactly_what_normalize_accepts(raw: str, expected: str | None) -> None:
    accepted = len(raw) <= MAX_INPUT and re.fullmatch(E164_INPUT_PATTERN, raw) is not None
    assert accepted is (expected is not None)


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE_CASES)
def test_normalize_e164(raw: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="international number"):
            normalize_e164(raw)
    else:
        assert normalize_e164(raw) == expected


def test_normalize_refuses_huge_input_without_echoing_it() -> None:
    raw = "+386" + "4" * 10_000
    with pytest.raises(ValueError) as info:
        normalize_e164(raw)
    assert raw not in str(info.value)


MASK_CASES = [
    ("+38640123456", "+386•••••56"),
    ("+15550000001", "+155•••••01"),
    ("+12345678", "+123•••••78"),
    ("+123456789012345", "+123•••••45"),  # same width whatever the length
    ("not a number", "•••••"),
    ("", "•••••"),
    ("38640123456", "•••••"),
]


@pytest.mark.parametrize(("number", "masked"), MASK_CASES)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_mask_hides_the_middle_digits() -> None:
    assert "40123" not in mask_number("+38640123456")
