"""Subjects keep the data's spelling for display ("München", "Latin American fiction");
normalising is for matching only (ColdStart and ListSubjects find "München" by "munchen")."""

from __future__ import annotations

import asyncio
import csv
import random
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bookrec.artifact import load_strings, read_manifest
from bookrec.v1 import catalog_pb2, recommender_pb2
from bookrec.v1.catalog_pb2_grpc import CatalogServiceStub
from bookrec.v1.recommender_pb2_grpc import RecommenderServiceStub
from tests.conftest import tiny_config
from tests.serverproc import ServerProcess, ready_server
from trainer.cleaning.clean import clean
from trainer.cleaning.interactions import KCore
from trainer.cleaning.subjects import best_spelling
from trainer.evaluation.split import SplitConfig
from trainer.features import build_features
from trainer.sources.ingest import read_data_dir
from trainer.store.store import Store

# Per item, its subjects as the data writes them: the most common spelling of each wins.
SPELLINGS = {
    "munchen": ["München"] * 5 + ["Munchen"] * 2 + ["MÜNCHEN."],
    "koln": ["Köln"] * 4 + ["koln"] * 3,
    "latin american fiction": ["Latin American fiction"] * 5 + ["latin american fiction"] * 2,
    "baden wurttemberg": ["Baden-Württemberg"] * 4 + ["baden wurttemberg"],
    "young adult": ["young-adult"] * 6 + ["Young-Adult"],
    "science fiction": ["SCIENCE FICTION."] * 4 + ["science-fiction"] * 3,
}
SHOWN = {
    "munchen": "München",
    "koln": "Köln",
    "latin american fiction": "Latin American fiction",
    "baden wurttemberg": "Baden-Württemberg",
    "young adult": "Young adult",  # a tag, shown in sentence case
    "science fiction": "Science fiction",  # capitals, shown in sentence case
}
N_ITEMS, N_USERS, RATED = 48, 60, 14


def write_accented_data(out: Path) -> Path:
    """A generic data set (items.csv with subjects, interactions.csv), seeded."""
    rng = random.Random(7)
    out.mkdir(parents=True, exist_ok=True)
    # Round-robin over the subjects, so no book carries two spellings of one subject.
    groups = [list(spellings) for spellings in SPELLINGS.values()]
    queue = [g[r] for r in range(max(map(len, groups))) for g in groups if r < len(g)][::-1]
    with (out / "items.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item", "title", "author", "year", "subjects"])
        for i in range(N_ITEMS):
            mine = [queue.pop()] if queue else []
            if i % 3 == 0 and queue:
                mine.append(queue.pop())
            w.writerow([f"i{i}", f"Book {i}", f"Author {i % 7}", 1990 + i % 30, "|".join(mine)])
    with (out / "interactions.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        for u in range(N_USERS):
            for i in rng.sample(range(N_ITEMS), RATED):
                w.writerow([f"u{u}", f"i{i}", rng.randint(1, 5)])
    return out


@pytest.mark.parametrize(
    ("counts", "shown"),
    [
        ({"München": 3, "Munchen": 2}, "München"),
        ({"Munchen": 2, "München": 2}, "München"),  # a tie: the accents kept
        ({"latin american fiction": 5, "Latin American fiction": 2}, "Latin american fiction"),
        ({"Latin American fiction": 5, "Latin american fiction": 2}, "Latin American fiction"),
        ({"sachbücher": 4}, "Sachbücher"),
        ({"young-adult": 9, "Young-Adult": 1}, "Young adult"),
        ({"SCIENCE FICTION": 3}, "Science fiction"),
        ({"World War II": 1}, "World War II"),
    ],
)
def test_the_most_common_spelling_is_shown(counts: dict[str, int], shown: str) -> None:
    from bookrec.subject_names import normalize

    assert best_spelling(normalize(shown), counts) == shown


async def test_the_store_keeps_the_spelling_to_the_vocabulary(
    store_url: str, tmp_path: Path
) -> None:
    """On SQLite and the MariaDB (store_url): clean -> load -> export -> vocabulary."""
    data = clean(read_data_dir(write_accented_data(tmp_path / "data")), KCore())
    async with await Store.open(store_url) as db:
        await db.load(data)
        await db.load(data)  # a second load changes nothing
        snap = await db.export(await db.freeze_split(SplitConfig(min_holdout=3)))
    vocab = build_features(snap).vocab
    names = dict(zip(vocab.slugs, vocab.names, strict=True))
    assert names == {part.replace(" ", "-"): SHOWN[part] for part in SPELLINGS}


@pytest.mark.shared_data
def test_real_goodbooks_tags_keep_their_accents(shared_data: Path, tmp_path: Path) -> None:
    """Real tags of goodbooks-10k that differ only in accents, case or a leading "_"."""
    src = shared_data / "goodbooks-10k"
    with (src / "tags.csv").open(encoding="utf-8", newline="") as f:
        tag_id = {row["tag_name"]: row["tag_id"] for row in csv.DictReader(f)}
    with (src / "books.csv").open(encoding="utf-8", newline="") as f:
        goodreads = [row["goodreads_book_id"] for row in csv.DictReader(f)][:12]
    tagged = {
        "sachbücher": 4, "_sachbücher": 2, "comics": 5, "còmics": 1, "cómics": 2,
        "áfrica": 3, "africa": 2, "young-adult": 6,
    }  # fmt: skip
    with (tmp_path / "book_tags.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["goodreads_book_id", "tag_id", "count"])
        for tag, books in tagged.items():
            for book in goodreads[:books]:
                w.writerow([book, tag_id[tag], 50])
    for name, folder in (("books.csv", src), ("tags.csv", src), ("ratings.csv", src / "samples")):
        (tmp_path / name).symlink_to(folder / name)
    shown = clean(read_data_dir(tmp_path), KCore()).subject_spellings
    assert {k: shown[k] for k in ("sachbucher", "comics", "africa", "young adult")} == {
        "sachbucher": "Sachbücher",
        "comics": "Comics",
        "africa": "África",
        "young adult": "Young adult",
    }


# --- a model trained on the accented data, served on loopback ---------------------------
# (the `cat` and `rec` stubs come from conftest, on this module's `server`)


@pytest.fixture(scope="module")
def accented_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.pipeline import run

    root = tmp_path_factory.mktemp("accented")
    data = write_accented_data(root / "data")
    cfg = tiny_config(data, root / "artifacts", f"sqlite:///{root / 'store.sqlite'}")
    return asyncio.run(run(cfg)).artifact


@pytest.fixture(scope="module")
def server(
    accented_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with ready_server(accented_artifact.parent, tmp_path_factory.mktemp("srv")) as srv:
        yield srv


def test_the_artifact_names_subjects_as_the_data_does(accented_artifact: Path) -> None:
    manifest = read_manifest(accented_artifact)
    ids = load_strings(accented_artifact, manifest, "subject_ids").to_list()
    names = load_strings(accented_artifact, manifest, "subject_names").to_list()
    assert dict(zip(ids, names, strict=True)) == {
        part.replace(" ", "-"): SHOWN[part] for part in SPELLINGS
    }


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("munchen", ["München"]),
        ("MÜNCHEN", ["München"]),
        ("Köln", ["Köln"]),
        ("baden wurttemberg", ["Baden-Württemberg"]),
        ("Latin-American", ["Latin American fiction"]),
        ("young adult", ["Young adult"]),
    ],
)
def test_list_subjects_matches_on_normalised_text(
    cat: CatalogServiceStub, query: str, found: list[str]
) -> None:
    reply = cat.ListSubjects(catalog_pb2.ListSubjectsRequest(query=query))
    assert [s.name for s in reply.subjects] == found


def test_cold_start_takes_any_spelling_and_answers_with_the_datas(
    rec: RecommenderServiceStub,
) -> None:
    def ask(subject: str) -> recommender_pb2.ColdStartResponse:
        return rec.ColdStart(
            recommender_pb2.ColdStartRequest(
                favourite_subjects=[subject], popularity_weight=0.2, k=3, explain=True
            )
        )

    expected = ask("München")
    assert expected.items
    for spelling in ("munchen", "MUNCHEN", "Munchen", "münchen"):
        assert [i.book.book_id for i in ask(spelling).items] == [
            i.book.book_id for i in expected.items
        ]
    for item in expected.items:
        assert "München" in {s.name for s in item.book.subjects}
        assert item.reasons[0].text == "matches your favourite subject München"
    with pytest.raises(grpc.RpcError) as info:
        ask("Munich")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
