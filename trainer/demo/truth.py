"""demo_truth.json: the planted answer (works, authors, series, tastes, dirt counts).

Why: tests check that the readers, cleaning and models recover what was planted, which
needs the answer written down; it is a separate file the trainer must never read, so a
model cannot cheat by seeing it.
"""

from __future__ import annotations

import html

from trainer.demo.catalogue import _Catalogue
from trainer.demo.users import _Users

TRUTH_FILE = "demo_truth.json"


def _truth(
    sc_name: str,
    seed: int,
    cat: _Catalogue,
    users: _Users,
    work_keys: list[str],
    author_keys: list[str],
    dirt: dict[str, object],
) -> dict[str, object]:
    """The planted answer, for tests only: the trainer must never read it."""
    subj = cat.subjects
    base_titles = cat.work_base_title
    isbn_start = cat.work_isbn_start.tolist()
    n_ed = cat.work_n_editions.tolist()
    series = cat.work_series.tolist()
    volume = cat.work_volume.tolist()
    works = [
        {
            "key": work_keys[w],
            "isbns": cat.isbn[isbn_start[w] : isbn_start[w] + n_ed[w]],
            "title": html.unescape(base_titles[w]),
            "author": author_keys[a],
            "primary_subject": subj[row[0]],
            "subjects": [subj[s] for s in row if s >= 0],
            "series": cat.series_name[series[w]] if series[w] >= 0 else None,
            "volume": volume[w] + 1 if series[w] >= 0 else None,
        }
        for w, (a, row) in enumerate(
            zip(cat.work_author.tolist(), cat.work_subjects.tolist(), strict=True)
        )
    ]
    authors = [
        {
            "key": author_keys[a],
            "name": cat.author_name[a],
            "subjects": [subj[s] for s in row if s >= 0],
        }
        for a, row in enumerate(cat.author_subjects.tolist())
    ]
    first = cat.series_first_work.tolist()
    series_list = [
        {
            "name": cat.series_name[s],
            "author": author_keys[cat.work_author[first[s]]],
            "works": work_keys[first[s] : first[s] + int(cat.series_length[s])],
        }
        for s in range(len(cat.series_name))
    ]
    user_list = [
        {
            "user_id": uid,
            "fav_subjects": [subj[s] for s in fs if s >= 0],
            "fav_authors": [author_keys[a] for a in fa if a >= 0],
        }
        for uid, fs, fa in zip(
            users.user_id.tolist(),
            users.fav_subjects.tolist(),
            users.fav_authors.tolist(),
            strict=True,
        )
    ]
    return {
        "note": "ground truth for tests only; the trainer must never read this file",
        "scale": sc_name,
        "seed": seed,
        "subjects": list(subj),
        "works": works,
        "authors": authors,
        "series": series_list,
        "users": user_list,
        "dirt": dirt,
    }
