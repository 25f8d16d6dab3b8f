"""The catalogue: subjects, authors, series, works and their editions (ISBNs).

Why: this is the planted structure a good model should recover (skewed subjects, authors
writing in one or two subjects, series read together, Zipf popularity), held as parallel
numpy arrays so every later stage (users, ratings, the file writers, the truth file) reads
one clean source.  Nothing here is dirty; the dirt is added when files are written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.demo.isbns import _isbn_digits, _isbn_strings
from trainer.demo.names import (
    AUTHOR_TEMPLATES,
    PUBLISHER_TEMPLATES,
    SERIES_TEMPLATES,
    _titles,
    _unique_strings,
)
from trainer.demo.sampling import FloatArray, IntArray, _distinct_rows, _pick, _zipf
from trainer.demo.scales import Scale
from trainer.demo.words import SUBJECTS

SERIES_LENGTHS = np.arange(2, 8)
SERIES_LENGTH_P = np.array([0.30, 0.28, 0.18, 0.12, 0.07, 0.05])


FIRST_YEAR, LAST_YEAR = 1920, 2004  # the crawl ended in 2004


@dataclass(frozen=True)
class _Catalogue:
    """Works, authors, series and editions as parallel arrays (index = position)."""

    subjects: tuple[str, ...]
    subject_p: FloatArray
    work_author: IntArray
    work_subjects: IntArray  # (n_works, 4): primary first, -1 = none
    work_series: IntArray  # -1 = standalone
    work_volume: IntArray  # 0-based volume in its series, -1 = standalone
    work_pop: FloatArray  # relative popularity, sums to 1
    work_quality: FloatArray  # shifts explicit ratings of a work
    work_base_title: list[str]  # without the series marker, BX spelling (&amp;)
    work_title: list[str]  # as BX writes it, series marker included
    work_isbn_start: IntArray
    work_n_editions: IntArray
    author_name: list[str]
    author_subjects: IntArray  # (n_authors, 2), -1 = none
    author_pop: FloatArray
    series_name: list[str]
    series_first_work: IntArray
    series_length: IntArray
    isbn_work: IntArray
    isbn_edition: IntArray
    isbn_digits: IntArray  # (n_isbns, 10) digits, 10 = X
    isbn: list[str]
    isbn_year: IntArray
    isbn_publisher: IntArray
    publishers: list[str]

    @property
    def n_works(self) -> int:
        return int(self.work_author.size)

    @property
    def n_isbns(self) -> int:
        return len(self.isbn)


def _make_catalogue(rng: np.random.Generator, sc: Scale) -> _Catalogue:
    """Authors -> units (a standalone work or a whole series) -> works -> editions."""
    n_works = sc.n_works
    subjects = SUBJECTS[: sc.n_subjects]
    n_subj = len(subjects)
    subject_p = _zipf(n_subj, 1.0)

    # Series lengths until ~series_fraction of the works are volumes.
    target = round(sc.series_fraction * n_works)
    lens = rng.choice(SERIES_LENGTHS, size=target // 2 + 1, p=SERIES_LENGTH_P).astype(np.int64)
    n_series = int(np.searchsorted(np.cumsum(lens), target, side="right"))
    lens = lens[:n_series]
    n_units = n_works - int(lens.sum()) + n_series
    series_pos = _pick(rng, n_units, n_series)
    unit_series = np.full(n_units, -1, dtype=np.int64)
    unit_series[series_pos] = np.arange(n_series)
    unit_len = np.ones(n_units, dtype=np.int64)
    unit_len[series_pos] = lens

    # Authors own consecutive units; units per author are heavy-tailed (a few prolific ones).
    cap = int(np.clip(n_units // 40, 6, 150))
    counts = np.minimum(rng.zipf(2.1, size=n_units), cap).astype(np.int64)
    csum = np.cumsum(counts)
    n_authors = int(np.searchsorted(csum, n_units)) + 1
    counts = counts[:n_authors]
    counts[-1] -= int(csum[n_authors - 1]) - n_units
    unit_author = np.repeat(np.arange(n_authors, dtype=np.int64), counts)

    # An author writes mostly in one or two subjects.
    a1 = rng.choice(n_subj, size=n_authors, p=subject_p).astype(np.int64)
    a2 = rng.choice(n_subj, size=n_authors, p=subject_p).astype(np.int64)
    a2 = np.where((rng.random(n_authors) < 0.5) & (a2 != a1), a2, -1)
    author_subjects = np.stack([a1, a2], axis=1)
    r = rng.random(n_units)
    ua1, ua2 = a1[unit_author], a2[unit_author]
    other = rng.choice(n_subj, size=n_units, p=subject_p).astype(np.int64)
    primary = np.where(r < 0.72, ua1, np.where(r < 0.92, np.where(ua2 >= 0, ua2, ua1), other))
    n_extra = rng.choice(4, size=n_units, p=[0.3, 0.35, 0.25, 0.1])
    cand = rng.choice(n_subj, size=(n_units, 3), p=subject_p).astype(np.int64)
    extra = _distinct_rows(cand, np.arange(3)[None, :] < n_extra[:, None], exclude=primary)
    unit_subjects = np.concatenate([primary[:, None], extra], axis=1)

    # Popularity: Zipf over units, an author factor, later volumes fade.
    author_factor = rng.lognormal(0.0, 0.5, size=n_authors)
    unit_pop = (rng.permutation(n_units) + 1.0) ** -sc.popularity_exponent
    unit_pop *= author_factor[unit_author]

    work_unit = np.repeat(np.arange(n_units, dtype=np.int64), unit_len)
    unit_first = np.cumsum(unit_len) - unit_len
    work_series = unit_series[work_unit]
    work_volume = np.where(work_series >= 0, np.arange(n_works) - unit_first[work_unit], -1)
    work_pop = unit_pop[work_unit] * 0.6 ** np.maximum(work_volume, 0)
    work_pop /= work_pop.sum()
    work_author = unit_author[work_unit]
    author_pop = np.bincount(work_author, weights=work_pop, minlength=n_authors).astype(np.float64)

    # Editions: popular works more likely to have several (mean editions_per_work).
    quantile = (np.argsort(np.argsort(work_pop)) + 0.5) / n_works
    q = np.clip((sc.editions_per_work - 1.0) * quantile, 0.0, 1.0)
    n_ed = 1 + rng.binomial(2, q).astype(np.int64)
    isbn_start = np.cumsum(n_ed) - n_ed
    n_isbns = int(n_ed.sum())
    isbn_work = np.repeat(np.arange(n_works, dtype=np.int64), n_ed)
    isbn_edition = np.arange(n_isbns) - isbn_start[isbn_work]
    digits = _isbn_digits(rng, n_isbns)

    # Years: first edition skewed to the late 1990s, later editions after it.
    first_year = np.clip(LAST_YEAR - np.floor(rng.exponential(9.0, n_works)), FIRST_YEAR, None)
    later = rng.integers(1, 12, size=n_isbns)
    isbn_year = np.where(
        isbn_edition == 0,
        first_year[isbn_work],
        np.minimum(first_year[isbn_work] + later * isbn_edition, LAST_YEAR),
    ).astype(np.int64)

    n_pub = int(np.clip(n_works // 30, 40, 4000))
    publishers = _unique_strings(rng, n_pub, PUBLISHER_TEMPLATES)
    pub_p = _zipf(n_pub, 1.0)
    author_pub = rng.choice(n_pub, size=n_authors, p=pub_p)
    isbn_publisher = np.where(
        rng.random(n_isbns) < 0.6,
        author_pub[work_author[isbn_work]],
        rng.choice(n_pub, size=n_isbns, p=pub_p),
    ).astype(np.int64)

    author_name = _unique_strings(rng, n_authors, AUTHOR_TEMPLATES)
    series_name = _unique_strings(rng, n_series, SERIES_TEMPLATES)
    base_titles = _titles(rng, n_works)
    work_title = list(base_titles)
    for w in np.flatnonzero(work_series >= 0).tolist():
        work_title[w] += f" ({series_name[work_series[w]]}, #{work_volume[w] + 1})"

    return _Catalogue(
        subjects=subjects,
        subject_p=subject_p,
        work_author=work_author,
        work_subjects=unit_subjects[work_unit],
        work_series=work_series,
        work_volume=work_volume,
        work_pop=work_pop,
        work_quality=rng.normal(0.0, 0.7, n_works),
        work_base_title=base_titles,
        work_title=work_title,
        work_isbn_start=isbn_start,
        work_n_editions=n_ed,
        author_name=author_name,
        author_subjects=author_subjects,
        author_pop=author_pop,
        series_name=series_name,
        series_first_work=unit_first[series_pos],
        series_length=lens,
        isbn_work=isbn_work,
        isbn_edition=isbn_edition,
        isbn_digits=digits,
        isbn=_isbn_strings(digits),
        isbn_year=isbn_year,
        isbn_publisher=isbn_publisher,
        publishers=publishers,
    )
