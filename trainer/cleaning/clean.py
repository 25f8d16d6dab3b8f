"""Raw rows -> clean, consolidated data ready for the store, with a report."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.cleaning.catalog import Work, build_works
from trainer.cleaning.interactions import Interaction, KCore, consolidate, kcore
from trainer.cleaning.report import CleaningReport
from trainer.cleaning.rules import EVERY_RULE, RATINGS_KNOWN_BOOK, RATINGS_VALID_ISBN
from trainer.cleaning.users import age_bucket, clean_age, country_of
from trainer.errors import InputError
from trainer.sources.raw import RawDataset


@dataclass(frozen=True)
class CleanUser:
    user_id: str
    age: int | None
    age_bucket: str
    country: str


@dataclass
class CleanData:
    works: list[Work]  # sorted by work_id
    users: list[CleanUser]  # sorted by user_id
    interactions: list[Interaction]  # sorted by (user_id, work_id)
    report: CleaningReport = field(default_factory=CleaningReport)
    source: str = ""  # the reader's name (RawDataset.source): the data set's kind
    # normalised subject part -> display name, the data's own spelling (best_spelling)
    subject_spellings: dict[str, str] = field(default_factory=dict)


def clean(raw: RawDataset, k: KCore) -> CleanData:
    report = CleaningReport(undeclared=frozenset(EVERY_RULE) - set(raw.rules))
    for r in raw.reports:
        why = r.why or f"{r.recovered} recovered; unparseable lines"
        report.add(f"read {r.file}", r.lines, r.rows, why)
        if r.rejected_examples:
            report.notes[f"rejected {r.file}"] = r.rejected_examples
    works = build_works(raw.books, raw.isbn_to_work, raw.work_subjects, report)
    inter = consolidate(raw.ratings, works.isbn_to_work, works.key_to_work, report)
    if not inter:
        dropped = {r.rule: r.dropped for r in report.rules}
        bad = dropped.get(RATINGS_VALID_ISBN)
        isbns = f"invalid ISBNs {bad}, " if bad is not None else ""
        raise InputError(
            f"{raw.source}: no rating names a known book "
            f"({len(raw.ratings)} rating rows; {isbns}unknown books "
            f"{dropped.get(RATINGS_KNOWN_BOOK, 0)}): check that the ratings and books files "
            "belong together"
        )
    inter = kcore(inter, k, report)
    profiles = {}
    for u in raw.users:
        age = clean_age(u.age)
        profiles[u.user_id] = CleanUser(u.user_id, age, age_bucket(age), country_of(u.location))
    without_profile = {i[0] for i in inter} - profiles.keys()
    report.notes["users_without_profile"] = len(without_profile)
    for user_id in without_profile:
        profiles[user_id] = CleanUser(user_id, None, age_bucket(None), "")
    users = sorted(profiles.values(), key=lambda u: u.user_id)
    report.notes["users"] = {
        "total": len(users),
        "age_unknown": sum(u.age is None for u in users),
        "country_unknown": sum(not u.country for u in users),
        "with_interactions": len({i[0] for i in inter}),
    }
    return CleanData(works.works, users, inter, report, raw.source, works.subject_spellings)
