"""ISBN normalisation: one canonical form (ISBN-13) so editions can be joined."""

from __future__ import annotations

import re
from functools import lru_cache
from operator import mul

_STRIP = re.compile(r"[\s\-]")


_W10 = tuple(range(10, 1, -1))
_W13 = (1, 3) * 6


def _isbn10_check(body: str) -> str:
    total = sum(map(mul, _W10, map(int, body)))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def _isbn13_check(body: str) -> str:
    total = sum(map(mul, _W13, map(int, body)))
    return str((10 - total % 10) % 10)


@lru_cache(maxsize=1 << 20)  # ratings repeat the same ISBNs millions of times
def normalize_isbn(raw: str) -> str | None:
    """Canonical ISBN-13 for a raw ISBN-10/13, or None when it is not a valid ISBN.

    Spaces and hyphens are stripped and a lower-case x is accepted; a wrong
    check digit is rejected, never guessed.
    """
    s = _STRIP.sub("", raw).upper()
    if len(s) == 10 and s[:9].isdigit() and (s[9].isdigit() or s[9] == "X"):
        if _isbn10_check(s[:9]) != s[9]:
            return None
        body = "978" + s[:9]
        return body + _isbn13_check(body)
    if len(s) == 13 and s.isdigit() and s[:3] in ("978", "979"):
        return s if _isbn13_check(s[:12]) == s[12] else None
    return None


def isbn13_to_10(isbn13: str) -> str | None:
    """The ISBN-10 of a 978- ISBN-13 (979- ones have none)."""
    if not isbn13.startswith("978"):
        return None
    body = isbn13[3:12]
    return body + _isbn10_check(body)
