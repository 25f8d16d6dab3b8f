"""The forms of the real files' faults that the generator plants.

Why: the readers and cleaning code exist because the real Book-Crossing and Open Library
files are dirty; each fault here copies one seen in them (broken quoting in BX-Books.csv,
impossible ages, years 0 and in the future, hyphenated/spaced/lower-x/bad-check ISBNs,
subject spellings and generic subjects in Open Library).  Keeping what a fault looks like in
one place lets a test or a reader fix find it; the writers (bx_files.py, ol_dumps.py) decide
which rows get one and count them for demo_truth.json.
"""

from __future__ import annotations

import string

import numpy as np

from trainer.demo.sampling import IntArray
from trainer.demo.words import (
    ADJECTIVES,
    FIRST_NAMES,
    LAST_NAMES,
    NOUNS,
    PLACES,
    SUBJECT_SPELLINGS,
)

# Kinds of broken BX-Books.csv lines; see _broken_title_field.
BROKEN_KINDS = ("unescaped_quote", "unquoted_semicolon", "backslash_quote_end")
# Fields a plain csv.reader(delimiter=";", quotechar='"') returns for each broken kind.
BROKEN_KIND_FIELDS = {"unescaped_quote": 9, "unquoted_semicolon": 9, "backslash_quote_end": 8}


IMPOSSIBLE_AGES = (1, 2, 3, 4, 104, 113, 123, 138, 148, 156, 183, 199, 201, 209, 219, 228, 237)
FUTURE_YEARS = (2030, 2037, 2038, 2050)


def _hyphenate(isbn: str) -> str:
    return f"{isbn[0]}-{isbn[1:4]}-{isbn[4:9]}-{isbn[9]}"


def _space(isbn: str, i: int) -> str:
    return f"{isbn[0]} {isbn[1:4]} {isbn[4:9]} {isbn[9]}" if i % 2 == 0 else f"{isbn} "


def _invalid_check(digits: IntArray, shift: int) -> str:
    wrong = (int(digits[9]) + 1 + shift % 10) % 11
    body = "".join(str(int(d)) for d in digits[:9])
    return body + ("X" if wrong == 10 else str(wrong))


def _broken_title_field(kind: str, title: str, noun: str) -> str:
    """The title field (delimiters included) of a broken line of the given kind."""
    if kind == "unescaped_quote":  # a bare '"' then ';' from an entity: csv splits at '&amp;'
        return f'"{title} "{noun}" Years &amp; After"'
    if kind == "unquoted_semicolon":  # the field lost its quotes and holds a ';'
        return f"{title}; Part Two"
    # backslash_quote_end, like the DK Readers lines: MySQL escaped the closing quote.
    return f'"{title} (Level 4: Proficient Readers)\\"'


# Open Library noise that names no real subject.
GENERIC_SUBJECTS = (
    ("Fiction", 0.35),
    ("General", 0.10),
    ("Juvenile literature", 0.06),
    ("Accessible book", 0.12),
    ("Protected DAISY", 0.05),
    ("In library", 0.06),
    ("Large type books", 0.03),
)


def canonical_subject(clean: str) -> str:
    """Open Library's usual spelling of a clean subject: "Latin American fiction"."""
    return SUBJECT_SPELLINGS.get(clean) or clean[0].upper() + clean[1:]


def _raw_subject(clean: str, variant: int) -> str:
    """One of the spellings Open Library uses for a clean subject."""
    canon = canonical_subject(clean)
    if variant == 0:
        return canon
    if variant == 1:
        return clean.upper() + "."
    if variant == 2:
        return canon.replace(" ", "-") if " " in clean else clean
    if variant == 3:
        return clean
    if variant == 4:
        return string.capwords(clean)
    if variant == 5:
        return f"Fiction, {clean}, general"
    return f"{canon} -- General"


RAW_VARIANT_P = np.array([0.45, 0.08, 0.08, 0.10, 0.12, 0.10, 0.07])


def _one_off_subject(kind: int, i: int, primary: str) -> str:
    """A rare subject string outside the vocabulary: a character, an imaginary place, or a
    setting (place names recur, like Open Library's place subjects)."""
    first = FIRST_NAMES[i % len(FIRST_NAMES)]
    last = LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]
    adj = ADJECTIVES[i % len(ADJECTIVES)]
    noun = NOUNS[(i // len(ADJECTIVES)) % len(NOUNS)]
    if kind == 0:
        return f"{first} {last} (Fictitious character)"
    if kind == 1:
        return f"{adj} {noun} (Imaginary place)"
    return f"{PLACES[i % len(PLACES)]} -- {canonical_subject(primary)}"
