"""User cleaning: plausible ages, age buckets, a normalised country."""

from __future__ import annotations

import re

MIN_AGE, MAX_AGE = 5, 100
AGE_BUCKETS = (
    (0, 17, "<18"),
    (18, 24, "18-24"),
    (25, 34, "25-34"),
    (35, 44, "35-44"),
    (45, 54, "45-54"),
    (55, 64, "55-64"),
    (65, 200, "65+"),
)
UNKNOWN = ""
_NON_ALPHA = re.compile(r"[^a-z ]+")
# Spellings seen in Book-Crossing locations -> one name per country.
_COUNTRY_ALIASES = {
    "us": "usa",
    "u s a": "usa",
    "united states": "usa",
    "united states of america": "usa",
    "america": "usa",
    "uk": "united kingdom",
    "u k": "united kingdom",
    "england": "united kingdom",
    "scotland": "united kingdom",
    "wales": "united kingdom",
    "great britain": "united kingdom",
    "deutschland": "germany",
    "espana": "spain",
    "italia": "italy",
    "the netherlands": "netherlands",
    "holland": "netherlands",
}
_NOT_A_COUNTRY = {"", "n a", "na", "none", "null", "unknown", "x", "far away"}


def clean_age(raw: str) -> int | None:
    """Ages outside MIN_AGE..MAX_AGE (0, 244, ...) are unknown, not clamped."""
    try:
        age = int(float(raw))
    except ValueError:
        return None
    return age if MIN_AGE <= age <= MAX_AGE else None


def age_bucket(age: int | None) -> str:
    if age is None:
        return UNKNOWN
    return next(label for lo, hi, label in AGE_BUCKETS if lo <= age <= hi)


def country_of(location: str) -> str:
    """'city, state, country' -> a normalised country name, or '' when unknown."""
    last = location.rsplit(",", 1)[-1]
    name = " ".join(_NON_ALPHA.sub(" ", last.lower()).split())
    if name in _NOT_A_COUNTRY:
        return UNKNOWN
    return _COUNTRY_ALIASES.get(name, name)
