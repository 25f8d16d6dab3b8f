"""One subject normalisation for trainer and server: every spelling the trainer merges
into a subject (the data's "Children's", its id "childrens", its ListSubjects name)
resolves to that subject on the server."""

from __future__ import annotations

import numpy as np
import pytest

from bookrec import subject_names
from server.engine.bundle import SUBJECT_ECHO, subject_lookup
from server.engine.cold_start import cold_start
from server.engine.errors import InvalidArgument
from server.engine.ranking import allowed_mask
from server.engine.types import Filters
from tests.fake_bundle import PER_CLUSTER, cluster_of, fake_bundle
from trainer.cleaning import subjects as trainer_subjects
from trainer.cleaning.subjects import build_vocab, split_subject

NONE = Filters()
CURLY = "\u2019"  # RIGHT SINGLE QUOTATION MARK, the apostrophe of word processors

# Raw subject strings as the data spells them, two books each (so all are in the
# vocabulary); one subject per fake-bundle subject slot (2 per cluster, 3 clusters).
RAW = ("Children's", "Science Fiction", "Young-Adult", "Historical fiction", "Self-help", "Études")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Children's", "childrens"),
        ("childrens", "childrens"),
        (f"CHILDREN{CURLY}S", "childrens"),
        ("children\u02bcs", "childrens"),  # MODIFIER LETTER APOSTROPHE
        ("Science Fiction", "science fiction"),
        ("science-fiction", "science fiction"),
        ("SCIENCE-FICTION.", "science fiction"),
        ("  Science \t  fiction  ", "science fiction"),
        ("Études", "etudes"),
        (
            "\uff26\uff41\uff4e\uff54\uff41\uff53\uff59",
            "fantasy",
        ),  # fullwidth letters fold (NFKD compatibility)
        ("self_help", "self help"),
        ("...", ""),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert subject_names.normalize(text) == expected


def test_the_trainer_normalises_with_the_shared_function() -> None:
    assert trainer_subjects.normalize_part is subject_names.normalize
    assert split_subject("Fiction, Children's") == ["childrens"]


def _vocab() -> tuple[tuple[str, ...], tuple[str, ...]]:
    vocab = build_vocab([split_subject(raw) for raw in RAW for _ in range(2)])
    assert len(vocab.slugs) == len(RAW)
    return vocab.slugs, vocab.names


def test_every_spelling_of_a_trainer_subject_resolves_to_it() -> None:
    """The keys the server builds from the trainer's ids and names are the trainer's
    normalised parts, so the raw spelling, the id and the name all land on one subject."""
    ids, names = _vocab()
    lookup = subject_lookup(list(ids), list(names))
    assert len(set(lookup.values())) == len(ids)
    for raw in RAW:
        idx = lookup[subject_names.normalize(raw)]
        for spelling in (raw, raw.upper(), ids[idx], names[idx], names[idx].upper()):
            assert lookup[subject_names.normalize(spelling)] == idx, spelling


def test_cold_start_accepts_the_spelling_of_the_data() -> None:
    ids, names = _vocab()
    bundle = fake_bundle(subject_columns=(ids, names))
    idx = bundle.subject("childrens")
    cluster = idx // 2  # fake-bundle subjects 2c and 2c + 1 belong to cluster c
    by_id = cold_start(bundle, [ids[idx]], 0.2, 10, NONE, False)
    assert by_id.items and all(cluster_of(s.item) == cluster for s in by_id.items)
    for spelling in ("Children's", "childrens", f"CHILDREN{CURLY}S", names[idx], ids[idx]):
        got = cold_start(bundle, [spelling], 0.2, 10, NONE, False)
        assert [s.item for s in got.items] == [s.item for s in by_id.items], spelling
    sf = bundle.subject("Science Fiction")
    assert bundle.subject("science-fiction") == bundle.subject(names[sf]) == sf
    # filters resolve the same way
    mask = allowed_mask(bundle, Filters(subject_ids=frozenset({"Children's"})))
    assert mask is not None and int(mask.sum()) == PER_CLUSTER
    assert np.array_equal(np.flatnonzero(mask) // PER_CLUSTER, np.full(PER_CLUSTER, cluster))


def test_an_unknown_subject_suggests_close_ids_in_a_bounded_message() -> None:
    ids, names = _vocab()
    bundle = fake_bundle(subject_columns=(ids, names))
    with pytest.raises(InvalidArgument) as info:
        bundle.subject("Sience-Fictoin!")
    message = str(info.value)
    assert "did you mean 'science-fiction'" in message and "ListSubjects" in message
    with pytest.raises(InvalidArgument) as info:
        bundle.subject("Childrns")
    assert "'childrens'" in str(info.value)
    huge = "science fiction " + "x" * 100_000
    with pytest.raises(InvalidArgument) as info:
        bundle.subject(huge)
    message = str(info.value)
    assert len(message) < SUBJECT_ECHO + 200
    assert huge[:SUBJECT_ECHO] in message and huge[: SUBJECT_ECHO + 1] not in message
    with pytest.raises(InvalidArgument):
        bundle.subject("!!!")  # normalises to nothing: never a subject


def test_default_fake_subjects_still_resolve_by_id_and_name() -> None:
    bundle = fake_bundle()
    for s in range(bundle.n_subjects):
        assert bundle.subject(bundle.subject_ids[s]) == s
        assert bundle.subject(bundle.subject_names[s].upper()) == s
