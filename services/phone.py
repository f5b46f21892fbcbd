"""Phone numbers in E.164 form (Signal addresses): validation, normalisation and masking."""

from __future__ import annotations

import re

# "+", then 8 to 15 ASCII digits, the first one non-zero. [0-9] rather than \d: \d also matches
# Arabic-Indic and other Unicode digits, which no phone network routes.
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
# Visual separators people type (E.123 spacing, dashes, dots, brackets, no-break spaces from
# copy-paste), anywhere; nothing else is dropped.
_SEPARATOR = r"[ \t\u00a0()./-]"
# Every spelling `normalize_e164` accepts, and no other; the API document publishes this pattern.
E164_INPUT_PATTERN = rf"^{_SEPARATOR}*\+{_SEPARATOR}*[1-9](?:{_SEPARATOR}*[0-9]){{7,14}}{_SEPARATOR}*$"
MAX_INPUT = 32  # the longest plausible spelling of a 15-digit number with separators
_INPUT = re.compile(E164_INPUT_PATTERN)
_SEPARATORS = re.compile(_SEPARATOR)

_MASK = "•••••"


def is_e164(number: str) -> bool:
    """Tell whether `number` is exactly "+" and 8–15 digits, the first non-zero."""
    return isinstance(number, str) and _E164.fullmatch(number) is not None


def normalize_e164(raw: str) -> str:
    """Return `raw` as a canonical E.164 number, or raise ValueError saying what is expected.

    Spaces, tabs, dashes, dots, slashes and brackets are dropped. The leading "+" is required: "00"
    or "011" prefixes and national numbers are refused rather than guessed at.
    """
    expected = "expected an international number such as +38640123456 (+, country code, number)"
    if not isinstance(raw, str) or len(raw) > MAX_INPUT or _INPUT.fullmatch(raw) is None:
        raise ValueError(expected)
    candidate = _SEPARATORS.sub("", raw)
    if not is_e164(candidate):  # the pattern already says so; this keeps the two honest
        raise ValueError(expected)
    return candidate


def mask_number(number: str) -> str:
    """Mask a phone number for logs and API answers: "+38640123456" -> "+386•••••56".

    The mask has a fixed width so that it does not reveal the number's length; anything that is
    not a valid E.164 number is masked completely.
    """
    if not is_e164(number):
        return _MASK
    return f"{number[:4]}{_MASK}{number[-2:]}"
