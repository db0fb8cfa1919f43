"""What the edge refuses to store: sensitive keys (after normalisation) and personal data in values.

**Keys** (context, numeric and offer-feature keys) are normalised before they are matched against the
deny-list, so spelling tricks do not slip through:

1. Unicode NFKC (fullwidth ``ｈｅａｌｔｈ`` -> ``health``, ligatures, superscripts);
2. invisible format characters removed (zero-width space/joiners, soft hyphen, BOM, bidi marks);
3. accents stripped (``Religión`` -> ``Religion``);
4. look-alike Cyrillic and Greek letters folded to Latin (``hеalth`` with a Cyrillic ``е``), a subset
   of the Unicode TR39 confusables for the scripts that look Latin;
5. camelCase and letter/digit boundaries split, case folded; anything but letters and digits (of any
   script) separates tokens, so a deny-listed word in another script works too.

A key then is a sequence of tokens (``healthStatus`` -> ``health status``). A deny-listed word (itself
normalised the same way: ``sexual_orientation`` -> ``sexual orientation``) is refused when a run of
consecutive key tokens spells it, with or without separators, optionally with a plural ``s``/``es``:
``health_status``, ``sexualOrientation``, ``sexualorientation``, ``h.e.a.l.t.h`` and ``religions`` are
refused; ``healthy``, ``trace`` and ``grace_period`` are not (the word must be whole tokens). Keys
that glue a word to another without any boundary (``healthstatus``) are caught by the configured
``sensitive_key_patterns``: regular expressions searched in the normalised key (tokens joined by ``_``).

**Values** (context values and offer-feature values) are checked for personal contact data: e-mail
addresses, phone numbers (a ``+`` or ``00`` international prefix, or the grouping of a national
number such as ``(030) 1234 5678`` or ``555-123-4567``; ISO dates and times never match) and payment
card numbers (13-19 digits, optionally grouped by spaces or hyphens, passing the Luhn check, with an
issuer prefix), plus the configured ``pii_patterns``. Refusals name the field, never the value.

Matching is cached per matcher (bounded LRU), because catalogues repeat the same keys and values in
every request.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PII_CHECKS", "KeyMatcher", "ValueScanner", "key_tokens", "normalise_key"]

# Latin look-alikes in Cyrillic and Greek (upper and lower case); TR39 "confusables" for these scripts.
_CONFUSABLES = {
    # Cyrillic lower case
    "а": "a", "в": "b", "е": "e", "ё": "e", "г": "r", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "ӏ": "l", "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x",
    "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y", "ь": "b",
    # Cyrillic upper case
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "Һ": "H", "І": "I", "Ї": "I", "Ј": "J", "К": "K", "Ӏ": "I",
    "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "Ԛ": "Q",
    "Ԝ": "W", "Ү": "Y",
    # Greek lower case
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Greek upper case
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C",
}
_FOLD = str.maketrans(_CONFUSABLES)
_SEPARATORS = re.compile(r"[\W_]+")  # anything but letters and digits (of any script)
_PLURALS = ("", "s", "es")
_MIN_DIGITS = 8
_KEY_CACHE = 4096
_VALUE_CACHE = 16384


def _visible(text: str) -> str:
    """NFKC, then without format characters (category Cf: zero-width, soft hyphen, bidi marks)."""
    if text.isascii():  # the common case: NFKC is the identity and ASCII has no format characters
        return text
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _strip_accents(text: str) -> str:
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


def _split_words(text: str) -> str:
    """A space at each camelCase boundary (``healthStatus``, ``HTTPStatus``) and letter/digit boundary."""
    out = []
    for i, ch in enumerate(text):
        if i:
            prev = text[i - 1]
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if ((prev.islower() and ch.isupper()) or (prev.isupper() and ch.isupper() and nxt.islower())
                    or (prev.isalpha() and ch.isdigit()) or (prev.isdigit() and ch.isalpha())):
                out.append(" ")
        out.append(ch)
    return "".join(out)


def key_tokens(key: str) -> tuple[str, ...]:
    """The tokens of a key after normalisation (see the module docstring), e.g. ``('health', 'status')``."""
    text = _split_words(_strip_accents(_visible(key)).translate(_FOLD)).casefold()
    text = _strip_accents(_visible(text)).translate(_FOLD)  # casefolding can expose new look-alikes or marks
    return tuple(token for token in _SEPARATORS.split(text) if token)


def normalise_key(key: str) -> str:
    """The normalised key the configured patterns are searched in: tokens joined by ``_``."""
    return "_".join(key_tokens(key))


@dataclass(frozen=True)
class _DenyWord:
    word: str           # as configured
    compact: str        # its tokens joined without separators


class KeyMatcher:
    """Decides whether a key is sensitive: deny-listed words as whole tokens, or a configured pattern."""

    def __init__(self, words: Iterable[str], patterns: Iterable[str] = ()) -> None:
        self._words = tuple(_DenyWord(w, "".join(key_tokens(w))) for w in words if key_tokens(w))
        self._compact = {form: w.word for w in self._words for form in (w.compact + p for p in _PLURALS)}
        self._longest = max((len(w) for w in self._compact), default=0)
        self._patterns = tuple((p, re.compile(p)) for p in patterns)
        self.match = functools.lru_cache(maxsize=_KEY_CACHE)(self._match)

    def _match(self, key: str) -> str | None:
        """The deny-listed word or pattern ``key`` matches, or ``None`` when it may be used."""
        tokens = key_tokens(key)
        for start in range(len(tokens)):
            run, found = "", None
            for token in tokens[start:]:
                run += token
                if len(run) > self._longest:
                    break
                found = self._compact.get(run, found)  # the longest entry wins: political_views, not political
            if found is not None:
                return found
        normalised = "_".join(tokens)
        for text, pattern in self._patterns:
            if pattern.search(normalised):
                return f"pattern {text!r}"
        return None


# --- personal data in values -------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}")
# International: + or 00, a country code not starting with 0, then digits with single separators.
_PHONE_INTL = re.compile(r"(?<![\w+])(?:\+|00)[1-9](?:[ .\-]?\(?\d\)?){6,14}(?![\w])")
# National groupings: (area) local-part, or 3-3-4 / 3-4-4 / 4-3-4 / 2-4-4 / 4-4 groups joined by one separator
# kind. Dates (4-2-2) and times (2:2) never have these shapes.
_PHONE_NATIONAL = re.compile(
    r"(?<![\w])(?:\(\d{2,5}\)[ ]?\d{3,4}[ \-.]?\d{3,4}"
    r"|0?\d{2,4}([ \-.])\d{3,4}\1\d{4})(?![\w])")
_CARD_RUN = re.compile(r"(?<![\d+])\d(?:[ \-]?\d){12,18}(?![\d])")
# Issuer prefixes: Visa 4; Mastercard 51-55, 2221-2720; Amex 34, 37; Diners 300-305, 36, 38, 39; JCB 3528-3589;
# Discover 6011, 644-649, 65; UnionPay 62; Maestro 50, 56-69.
_ISSUER = re.compile(r"4|5[1-5]|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)|3[47]|3(?:0[0-5]|[689])"
                     r"|35(?:2[89]|[3-8]\d)|6(?:011|4[4-9]|5|2)|5[06-9]|6\d")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _has_card(text: str) -> bool:
    for match in _CARD_RUN.finditer(text):
        digits = re.sub(r"[ \-]", "", match.group())
        if 13 <= len(digits) <= 19 and _ISSUER.match(digits) and _luhn(digits):
            return True
    return False


def _has_phone(text: str) -> bool:
    for match in _PHONE_INTL.finditer(text):
        number = match.group()
        digits = sum(ch.isdigit() for ch in number) - (2 if number.startswith("00") else 0)
        if 8 <= digits <= 15:  # E.164: at most 15 digits after the prefix
            return True
    return _PHONE_NATIONAL.search(text) is not None


# Checked in this order (a grouped card number also has a phone number's shape).
PII_CHECKS = {
    "payment_card": ("a payment card number", _has_card),
    "email": ("an e-mail address", lambda text: _EMAIL.search(text) is not None),
    "phone": ("a phone number", _has_phone),
}


def _ascii_digits(text: str) -> str:
    """Decimal digits of any script as ASCII, so ``٤١١١…`` is checked like ``4111…``."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


class ValueScanner:
    """Finds personal contact data in a value: the built-in checks named in ``checks``, then ``patterns``."""

    def __init__(self, checks: Iterable[str] = tuple(PII_CHECKS), patterns: Iterable[str] = ()) -> None:
        wanted = set(checks)
        self._checks = tuple(check for name, check in PII_CHECKS.items() if name in wanted)
        self._patterns = tuple((p, re.compile(p)) for p in patterns)
        self.find = functools.lru_cache(maxsize=_VALUE_CACHE)(self._find)

    def _find(self, value: str) -> str | None:
        """What ``value`` looks like (``"an e-mail address"``), or ``None`` when it holds no personal data."""
        text = _ascii_digits(_visible(value))
        # Every built-in check needs an "@" or at least 8 digits (a national phone number has 9).
        if self._checks and ("@" in text or sum(map(str.isdigit, text)) >= _MIN_DIGITS):
            for description, check in self._checks:
                if check(text):
                    return description
        for source, pattern in self._patterns:
            if pattern.search(text):
                return f"a match of the PII pattern {source!r}"
        return None
