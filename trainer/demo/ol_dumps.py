"""The Open Library works and editions dumps, in the real tab-separated dump format.

Why: subjects come from Open Library in the real pipeline (trainer/sources/openlibrary.py), so the
dumps carry the catalogue's subjects in dirty spellings plus generic and one-off strings,
editions for most (not all) BX ISBNs, and works BX never mentions.  Lines are built from
pre-encoded JSON fragments because per-record ``json.dumps`` dominated the run time.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from json.encoder import encode_basestring as json_str
from pathlib import Path

import numpy as np

from trainer.demo.catalogue import _Catalogue
from trainer.demo.dirt import GENERIC_SUBJECTS, RAW_VARIANT_P, _one_off_subject, _raw_subject
from trainer.demo.isbns import _bodies, _isbn13, _isbn_digits, _isbn_strings
from trainer.demo.names import _titles
from trainer.demo.sampling import IntArray, _unique_draws
from trainer.demo.writers import _write_text

# The generator writes exactly what the readers read.
from trainer.sources.openlibrary import EDITIONS_FILE as OL_EDITIONS_FILE
from trainer.sources.openlibrary import WORKS_FILE as OL_WORKS_FILE


def _timestamps(rng: np.random.Generator, n: int) -> list[str]:
    """Open Library style last_modified values (2008-2024, microseconds)."""
    start = np.datetime64("2008-01-01T00:00:00", "us")
    span = 16 * 365 * 86_400 * 1_000_000
    stamps = start + rng.integers(0, span, size=n).astype("timedelta64[us]")
    return [str(s) for s in np.datetime_as_string(stamps, unit="us").tolist()]


def _write_ol(
    rng: np.random.Generator, out_dir: Path, cat: _Catalogue
) -> tuple[list[str], list[str], dict[str, int]]:
    """Works and editions dumps; returns the OL work keys, the OL author keys and counts.

    Lines are assembled from pre-encoded JSON fragments (``encode_basestring``) rather than
    one ``json.dumps`` per record: at the bookcrossing scale that is most of the run time.
    """
    n_works, n_isbns = cat.n_works, cat.n_isbns
    n_authors = len(cat.author_name)
    n_noise = max(2, round(0.02 * n_works))  # OL works/editions that BX never mentions
    n_all = n_works + n_noise

    def ints(high: int) -> Callable[[int], IntArray]:
        return lambda m: rng.integers(1, high, size=m).astype(np.int64)

    work_nums = _unique_draws(n_all, ints(30_000_000))
    author_nums = _unique_draws(n_authors, ints(12_000_000))
    work_keys = [f"/works/OL{k}W" for k in work_nums.tolist()]
    author_keys = [f"/authors/OL{k}A" for k in author_nums.tolist()]

    # Works: raw subject strings in dirty variants, plus generic and one-off strings.
    noise_titles = _titles(rng, n_noise)
    titles = [json_str(html.unescape(t)) for t in [*cat.work_base_title, *noise_titles]]
    subj_rows = np.full((n_all, 4), -1, dtype=np.int64)
    subj_rows[:n_works] = cat.work_subjects
    subj_rows[n_works:, 0] = rng.choice(len(cat.subjects), size=n_noise, p=cat.subject_p)
    work_author = np.concatenate([cat.work_author, rng.integers(0, n_authors, size=n_noise)])
    variant = rng.choice(RAW_VARIANT_P.size, size=(n_all, 4), p=RAW_VARIANT_P).tolist()
    raw_js = [
        [json_str(_raw_subject(c, v)) for v in range(RAW_VARIANT_P.size)] for c in cat.subjects
    ]
    gen_p = np.array([p for _, p in GENERIC_SUBJECTS])
    gen_mask = (rng.random((n_all, gen_p.size)) < gen_p) @ (1 << np.arange(gen_p.size))
    gen_js = [
        [json_str(g) for b, (g, _) in enumerate(GENERIC_SUBJECTS) if mask >> b & 1]
        for mask in range(1 << gen_p.size)
    ]
    generic_first = (rng.random(n_all) < 0.5).tolist()
    one_off = (rng.random(n_all) < 0.1).tolist()
    one_off_kind = rng.integers(3, size=n_all).tolist()
    one_off_i = rng.integers(0, 1_000_000, size=n_all).tolist()
    no_subjects = rng.random(n_all) < 0.05
    no_subjects[n_works:] = False
    revision = rng.integers(1, 12, size=n_all).tolist()
    modified = _timestamps(rng, n_all)
    roles = [
        f'[{{"author": {{"key": "{k}"}}, "type": {{"key": "/type/author_role"}}}}]'
        for k in author_keys
    ]
    lines: list[str] = []
    for w, (row, var, a, gmask) in enumerate(
        zip(subj_rows.tolist(), variant, work_author.tolist(), gen_mask.tolist(), strict=True)
    ):
        key = work_keys[w]
        subjects = ""
        if not no_subjects[w]:
            raw = [raw_js[s][v] for s, v in zip(row, var, strict=True) if s >= 0]
            raw = gen_js[gmask] + raw if generic_first[w] else raw + gen_js[gmask]
            if one_off[w]:
                primary = cat.subjects[row[0]]
                raw.append(json_str(_one_off_subject(one_off_kind[w], one_off_i[w], primary)))
            subjects = f', "subjects": [{", ".join(raw)}]'
        lines.append(
            f"/type/work\t{key}\t{revision[w]}\t{modified[w]}\t"
            f'{{"key": "{key}", "title": {titles[w]}{subjects}, "authors": {roles[a]}, '
            f'"type": {{"key": "/type/work"}}}}'
        )
    _write_text(out_dir / OL_WORKS_FILE, [lines[i] for i in np.argsort(work_nums).tolist()])

    # Editions: ~95% of BX ISBNs (some with an ISBN-13 too) plus one per noise work.
    listed = np.flatnonzero(rng.random(n_isbns) < 0.95)
    noise_isbns = _isbn_strings(_isbn_digits(rng, n_noise, avoid=_bodies(cat.isbn_digits)))
    n_ed = listed.size + n_noise
    ed_nums = _unique_draws(n_ed, ints(40_000_000))
    with_13 = (rng.random(n_ed) < 0.15).tolist()
    ed_rev = rng.integers(1, 8, size=n_ed).tolist()
    ed_mod = _timestamps(rng, n_ed)
    publishers = [json_str(html.unescape(p)) for p in cat.publishers]
    series_js = [json_str(name) for name in cat.series_name]
    isbn_work = np.concatenate([cat.isbn_work[listed], np.arange(n_works, n_all)]).tolist()
    isbns = [cat.isbn[r] for r in listed.tolist()] + noise_isbns
    isbn_pub = cat.isbn_publisher[listed].tolist()
    isbn_year = cat.isbn_year[listed].tolist()
    series = cat.work_series.tolist()
    volume = cat.work_volume.tolist()
    lines = []
    for j, (num, w, isbn) in enumerate(zip(ed_nums.tolist(), isbn_work, isbns, strict=True)):
        key = f"/books/OL{num}M"
        isbn13 = f', "isbn_13": ["{_isbn13(isbn)}"]' if with_13[j] else ""
        extra = ""
        if j < listed.size:
            if series[w] >= 0:
                name = series_js[series[w]]
                extra = f', "series": [{name[:-1]}, #{volume[w] + 1}"]'
            extra += f', "publishers": [{publishers[isbn_pub[j]]}]'
            extra += f', "publish_date": "{isbn_year[j]}"'
        lines.append(
            f"/type/edition\t{key}\t{ed_rev[j]}\t{ed_mod[j]}\t"
            f'{{"key": "{key}", "isbn_10": ["{isbn}"]{isbn13}, "title": {titles[w]}{extra}, '
            f'"works": [{{"key": "{work_keys[w]}"}}], "type": {{"key": "/type/edition"}}}}'
        )
    _write_text(out_dir / OL_EDITIONS_FILE, [lines[i] for i in np.argsort(ed_nums).tolist()])
    stats = {
        "ol_works": n_all,
        "ol_editions": n_ed,
        "ol_noise_works": n_noise,
        "ol_works_without_subjects": int(no_subjects.sum()),
        "isbns_without_ol_edition": int(n_isbns - listed.size),
    }
    return work_keys[:n_works], author_keys, stats
