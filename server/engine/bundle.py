"""One immutable, memory-mapped model version.

``Bundle.open`` is the expensive step (verify hashes, map files, build the id
maps, run warm-up queries); it runs in a worker thread, never on the event
loop. Once open a bundle is never mutated, so any number of requests may read
it concurrently without locks. Arrays are ``np.load(mmap_mode="r")`` views, so
every worker process on the machine shares one copy through the page cache;
flat and IVF FAISS indexes are read with IO_FLAG_MMAP, HNSW ones into memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from bookrec import artifact, cold_score, rerank_features
from bookrec.artifact import ArtifactError, Manifest, StringColumn
from bookrec.fold_in import SCALINGS
from bookrec.pooling import normalise
from bookrec.subject_names import normalize as normalize_subject
from server.engine import verified
from server.engine.compiled_trees import compiled_predict, lightgbm_predict
from server.engine.errors import InvalidArgument, NotFound
from server.engine.ids import IdIndex, group_ids
from server.engine.models import ItemItem, Reranker, SubjectSpace
from server.engine.scan import all_finite, gram_and_finite
from server.engine.suggest import close_names
from server.engine.words import WordIndex

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
# Defaults for artifacts written before the item-item model (docs/artifact-format.md).
DEFAULT_BLEND = 1.0
DEFAULT_BLEND_CANDIDATES = 200
# Characters of a request's subject text that an error message echoes and that
# "did you mean" compares (difflib is quadratic in the text's length).
SUBJECT_ECHO = 100


class SearchText:
    """SearchBooks' word index (words.py), built once per bundle: by warm-up, in the
    loader thread, so no call pays for it (~0.3 s of Python at 300k books)."""

    def __init__(self, titles: StringColumn, authors: StringColumn) -> None:
        self._titles, self._authors = titles, authors
        self._index: WordIndex | None = None
        self._lock = threading.Lock()

    def index(self) -> WordIndex:
        with self._lock:
            if self._index is None:
                self._index = WordIndex.build(self._titles.to_list(), self._authors.to_list())
            return self._index


@dataclass(frozen=True)
class AlsSettings:
    """What fold-in needs to weigh and solve exactly as training did."""

    alpha: float
    scheme: str
    regularization: float
    # Explicit ratings (1..10) below this were not fitted by ALS, so fold-in leaves
    # them out too (they stay excluded from results); implicit ones (0) always count.
    # 0: every rating counts.
    min_rating: int = 0
    # How training weighed λ in each solve: "none", or "count" (Spark MLlib: λ times the
    # user's ratings); fold-in solves the same way (bookrec/fold_in.py). Absent: "none".
    regularization_scaling: str = "none"

    @staticmethod
    def of(params: Mapping[str, Any]) -> AlsSettings:
        als = params.get("als", {})
        try:
            settings = AlsSettings(
                float(als["alpha"]),
                str(als["scheme"]),
                float(als["regularization"]),
                int(als.get("min_rating", 0)),
                str(als.get("regularization_scaling", "none")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(
                f"manifest params.als lacks alpha/scheme/regularization: {e}"
            ) from e
        if settings.regularization_scaling not in SCALINGS:
            raise ArtifactError(
                f"manifest params.als.regularization_scaling "
                f"{settings.regularization_scaling!r} is not one of {', '.join(SCALINGS)}"
            )
        return settings

    def fitted(self, ratings: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.bool_]:
        """Which ratings ALS would fit (trainer/als.py ``is_positive``)."""
        out: npt.NDArray[np.bool_] = (ratings == 0) | (ratings >= self.min_rating)
        return out


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    item_factors: F32
    item_in_als: npt.NDArray[np.bool_]
    user_factors: F32
    user_items_indptr: npt.NDArray[np.int64]
    user_items_indices: I32
    user_items_confidence: F32  # ALS confidence per rating, 0 outside the training part
    popularity: F32
    rating_count: I32
    mean_rating: F32
    year: npt.NDArray[np.int16]
    series_volume: npt.NDArray[np.int16]
    book_subjects: I32
    subject_idf: F32
    book_subject_norm: F32  # norm of each book's idf-weighted subject vector
    subject_books_indptr: npt.NDArray[np.int64]  # subject -> books (CSR), by descending prior
    subject_books_indices: I32
    book_ids: StringColumn
    titles: StringColumn
    authors: StringColumn
    series: StringColumn
    isbns: StringColumn
    subject_ids: StringColumn
    subject_names: StringColumn
    item_index: Any  # inner product over unit item factors (Similar, ALS mode)
    subject_index: Any  # inner product over subjects.book_vectors (Similar, SUBJECT mode)
    retrieval_index: Any  # inner product over item_factors (Recommend candidates)
    als: AlsSettings
    yty: npt.NDArray[np.float64]  # Gram matrix of the item factors, for fold-in
    book_row: IdIndex  # external book id -> item_idx
    user_row: IdIndex  # external user id -> user row
    subject_lookup: dict[str, int]  # normalised id or name (subject_lookup()) -> subject_idx
    search_text: SearchText  # SearchBooks' word index, built by warm-up
    subjects: SubjectSpace
    reranker: Reranker | None  # present when the trainer decided to serve it
    item_item: ItemItem | None  # present when the trainer decided to blend it in
    new_user_foldin: bool  # unknown users with ratings: folded-in ALS (else cold start)
    # w(n) = n / (n + k) of an unknown user's ratings (bookrec/blend.py shrunk); None:
    # an artifact from before it, served as before
    shrink_k: float | None
    # the served popularity in [0, 1] (served_popularity.npy, else the prior rescaled):
    # the cold-start blend's and the shrink's scale
    prior01: F32
    prior_order: npt.NDArray[np.int64]  # books by descending prior01 (cold start's 2nd list)
    # 1 / share of training reads per subject: cold start's lift (cold_score.py)
    subject_inverse_share: npt.NDArray[np.float64]
    # subject x book bitsets (bit b % 8 of byte b // 8): which books carry two of a
    # request's favourites, in a few byte-wise ANDs (cold start)
    subject_bits: npt.NDArray[np.uint8]
    cold_start_weight: float  # the popularity weight the trainer found best

    @property
    def version(self) -> str:
        return self.manifest.model_version

    @property
    def n_books(self) -> int:
        return len(self.popularity)

    @property
    def n_subjects(self) -> int:
        return len(self.subject_idf)

    def book(self, book_id: str) -> int:
        row = self.book_row.get(book_id)
        if row is None:
            raise NotFound(f"book {book_id!r} is not in model {self.version}")
        return row

    def rated_items(self, user: int) -> I32:
        start, end = self.user_items_indptr[user], self.user_items_indptr[user + 1]
        return self.user_items_indices[start:end]

    def unit(self, rows: npt.NDArray[np.integer[Any]] | list[int]) -> F32:
        """L2-normalised item factors of a few rows (cosine); cheaper than a stored copy."""
        return normalise(np.asarray(self.item_factors[rows], dtype=np.float32))

    def train_confidence(self, user: int) -> F32:
        start, end = self.user_items_indptr[user], self.user_items_indptr[user + 1]
        out: F32 = self.user_items_confidence[start:end]
        return out

    def subjects_of(self, item: int) -> I32:
        row = self.book_subjects[item]
        out: I32 = row[row >= 0]
        return out

    def books_with_subject(self, subject: int) -> I32:
        start, end = self.subject_books_indptr[subject], self.subject_books_indptr[subject + 1]
        return self.subject_books_indices[start:end]

    def subject(self, text: str) -> int:
        """Subject index from an id ("science-fiction"), a name as ListSubjects shows it
        ("Science fiction") or any spelling the trainer merges into one subject
        ("SCIENCE FICTION.", "Children's" for "childrens"): both sides are compared
        after bookrec.subject_names.normalize, the trainer's own normalisation."""
        key = normalize_subject(text)
        idx = self.subject_lookup.get(key)
        if idx is None:
            close = close_names(key[:SUBJECT_ECHO], self.subject_lookup.keys())
            ids = dict.fromkeys(self.subject_ids[self.subject_lookup[c]] for c in close)
            hint = f"; did you mean {', '.join(repr(_clip(i)) for i in ids)}?" if ids else ""
            raise InvalidArgument(f"unknown subject {_clip(text)!r}{hint} (see ListSubjects)")
        return idx

    @staticmethod
    def open(
        path: Path,
        check_hashes: bool = True,
        cache_dir: Path | None = None,
        compile_reranker: bool = False,
    ) -> Bundle:
        """Verify the directory against its manifest, then assemble the bundle from it.
        ``cache_dir`` (the server's, beside the artifacts) lets workers hash a version
        once between them (verified.py) and holds the compiled reranker trees
        (compiled_trees.py, with ``compile_reranker``)."""
        manifest = artifact.read_manifest(path)
        if check_hashes and cache_dir is not None:
            with verified.hashes_needed(path, sorted(manifest.files), cache_dir) as needed:
                artifact.verify(path, manifest, needed)
        else:
            artifact.verify(path, manifest, check_hashes)
        reranker_model = None
        if artifact.has_reranker(manifest):
            saved = json.loads((path / "reranker_features.json").read_text())
            if tuple(saved) != rerank_features.FEATURES:
                raise ArtifactError(
                    f"{path}: the reranker was trained on features {saved}, this server computes "
                    f"{list(rerank_features.FEATURES)}; retrain or upgrade the server"
                )
            reranker_model = (path / "reranker.txt").read_text()
        return Bundle.assemble(
            path,
            manifest,
            # A plain view of the mapping: np.memmap's own indexing costs ~40 us a call.
            lambda name: np.asarray(artifact.load_array(path, manifest, name)),
            lambda name: artifact.load_strings(path, manifest, name),
            lambda name: _read_index(path / f"{name}.faiss"),
            reranker_model,
            cache_dir if compile_reranker else None,
        )

    @staticmethod
    def assemble(
        path: Path,
        manifest: Manifest,
        arr: Callable[[str], Any],
        strings: Callable[[str], StringColumn],
        index: Callable[[str], Any],
        reranker_model: str | None,
        compile_cache: Path | None = None,
    ) -> Bundle:
        """Check shapes and values, build the lookups; from files (``open``) or from
        memory (tests' fake bundles)."""
        arr = _finite_arrays(path, arr)
        item_factors = arr("item_factors")
        user_factors = arr("user_factors")
        yty, items_finite = gram_and_finite(item_factors)
        if not items_finite:
            raise ArtifactError(f"{path}/item_factors.npy holds NaN or inf")
        popularity = np.asarray(arr("popularity"))
        rating_count = arr("rating_count")
        mean_rating, year, series_volume = arr("mean_rating"), arr("year"), arr("series_volume")
        series = strings("series")
        n_books = len(popularity)
        indptr, indices = arr("user_items_indptr"), arr("user_items_indices")
        falls = np.flatnonzero(np.diff(indices) <= 0) + 1  # where a row may start again
        if not np.isin(falls, indptr).all():
            raise ArtifactError(f"{path}: user_items_indices are not sorted within each user")
        book_ids = strings("book_ids")
        titles = strings("titles")
        authors = strings("authors")
        subject_ids = strings("subject_ids")
        subject_names = strings("subject_names")
        book_subjects = arr("book_subjects")
        idf = arr("subject_idf")
        if item_factors.shape[0] != n_books or len(book_ids) != n_books:
            raise ArtifactError(f"{path}: per-book arrays disagree on the number of books")
        indexes = {}
        for name in ("item_index", "subject_index", "retrieval_index"):
            indexes[name] = index(name)
            if indexes[name].ntotal != n_books:
                raise ArtifactError(
                    f"{path}/{name}.faiss has {indexes[name].ntotal} rows, not {n_books}"
                )
        # A model without subjects (an implicit data set with no catalogue) has idf == [].
        padded_idf = np.append(np.asarray(idf, dtype=np.float32), np.float32(0.0))
        weights = np.where(book_subjects >= 0, padded_idf[book_subjects], 0.0)
        subj_norm = np.sqrt((weights**2).sum(axis=1)).astype(np.float32)
        prior01 = _served_popularity(path, manifest, arr, popularity)
        prior_order = np.argsort(-prior01, kind="stable")
        # Each subject's books by descending prior (cold start reads them in that order).
        flat_books = np.repeat(prior_order.astype(np.int32), book_subjects.shape[1])
        flat_subj = np.asarray(book_subjects)[prior_order].reshape(-1)
        keep = flat_subj >= 0
        order = np.argsort(flat_subj[keep], kind="stable")
        sb_indices = flat_books[keep][order]
        sb_indptr = np.zeros(len(idf) + 1, dtype=np.int64)
        np.cumsum(np.bincount(flat_subj[keep], minlength=len(idf)), out=sb_indptr[1:])
        subject_bits = _subject_bitsets(sb_indptr, sb_indices, n_books)
        lookup = subject_lookup(subject_ids.to_list(), subject_names.to_list())
        params = manifest.params
        space = SubjectSpace(
            pooling=str(params["subject_pooling"]),
            subject_vectors=np.asarray(arr("subject_vectors")),
            weights={
                n: np.asarray(arr(f"{artifact.POOL_PREFIX}{n}"))
                for n in params["subject_pool_weights"]
            },
            book_vectors=arr("book_subject_vectors"),
        )
        reranker = None
        if reranker_model is not None:
            import lightgbm

            booster = lightgbm.Booster(model_str=reranker_model)
            compiled = None
            if compile_cache is not None:
                compiled = compiled_predict(booster, reranker_model, compile_cache)
            reranker = Reranker(
                predict=compiled or lightgbm_predict(booster),
                compiled=compiled is not None,
                table=rerank_features.ItemTable(
                    author_id=group_ids(authors, none=rerank_features.UNKNOWN_AUTHOR),
                    series_id=group_ids(series),
                    series_volume=series_volume,
                    book_subjects=book_subjects,
                    subject_vectors=space.book_vectors,
                    year_bucket=rerank_features.year_buckets(year),
                    prior=popularity,
                    count=rating_count,
                    count_pct=rerank_features.count_percentile(rating_count),
                    # Absent from artifacts written before it: zeros, as without timestamps.
                    recency=arr("book_recency")
                    if "book_recency.npy" in manifest.files
                    else np.zeros(n_books, dtype=np.float32),
                    mean=mean_rating,
                    std=arr("book_rating_std"),
                ),
                user_stats=arr("user_stats"),
                user_favourites=arr("user_favourite_subjects"),
                candidates=int(params.get("rerank_candidates", 300)),
            )
        item_item = None
        if artifact.has_item_item(manifest):
            item_item = _item_item(path, params, arr, n_books)
        shrink_k = _shrink_k(path, params)
        new_user_foldin = params.get("new_user_foldin", False)
        if not isinstance(new_user_foldin, bool):
            raise ArtifactError(f"{path}: params.new_user_foldin {new_user_foldin!r} is not a bool")
        bundle = Bundle(
            path=path,
            manifest=manifest,
            item_factors=item_factors,
            item_in_als=arr("item_in_als"),
            user_factors=user_factors,
            user_items_indptr=indptr,
            user_items_indices=indices,
            user_items_confidence=arr("user_items_confidence"),
            popularity=popularity,
            rating_count=rating_count,
            mean_rating=mean_rating,
            year=year,
            series_volume=series_volume,
            book_subjects=book_subjects,
            subject_idf=idf,
            book_subject_norm=subj_norm,
            subject_books_indptr=sb_indptr,
            subject_books_indices=sb_indices,
            book_ids=book_ids,
            titles=titles,
            authors=authors,
            series=series,
            isbns=strings("isbns"),
            subject_ids=subject_ids,
            subject_names=subject_names,
            item_index=indexes["item_index"],
            subject_index=indexes["subject_index"],
            retrieval_index=indexes["retrieval_index"],
            als=AlsSettings.of(params),
            yty=yty,
            book_row=IdIndex(book_ids),
            user_row=IdIndex(strings("user_ids")),
            subject_lookup=lookup,
            search_text=SearchText(titles, authors),
            subjects=space,
            reranker=reranker,
            item_item=item_item,
            new_user_foldin=new_user_foldin,
            shrink_k=shrink_k,
            prior01=prior01,
            cold_start_weight=float(params.get("cold_start_popularity_weight", 0.3)),
            prior_order=prior_order,
            subject_inverse_share=cold_score.inverse_shares(book_subjects, rating_count, len(idf)),
            subject_bits=subject_bits,
        )
        return bundle


def _served_popularity(
    path: Path, manifest: Manifest, arr: Callable[[str], Any], prior: F32
) -> F32:
    """The popularity the trainer chose (issue 22), or the prior rescaled when the artifact
    predates it; checked to be one value in [0, 1] per book."""
    if "served_popularity.npy" not in manifest.files:
        return cold_score.rescale_prior(prior)
    served = np.asarray(arr("served_popularity"), dtype=np.float32)
    if served.shape != prior.shape:
        raise ArtifactError(
            f"{path}/served_popularity.npy has shape {served.shape}, not {prior.shape}"
        )
    if len(served) and (float(served.min()) < 0.0 or float(served.max()) > 1.0):
        raise ArtifactError(f"{path}/served_popularity.npy holds values outside [0, 1]")
    return served


def _shrink_k(path: Path, params: Mapping[str, Any]) -> float | None:
    """``new_user_shrink_k``: absent (None: today's new-user path) or a number >= 0."""
    k = params.get("new_user_shrink_k")
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int | float) or not np.isfinite(k) or k < 0:
        raise ArtifactError(f"{path}: params.new_user_shrink_k {k!r} is not a number >= 0")
    return float(k)


def _item_item(
    path: Path, params: Mapping[str, Any], arr: Callable[[str], Any], n_books: int
) -> ItemItem:
    """The item-item CSR and its blend params, checked: a bad row pointer or book index
    would read out of bounds at request time, a NaN weight would poison every blend."""
    indptr = np.asarray(arr("item_item_indptr"), dtype=np.int64)
    indices = np.asarray(arr("item_item_indices"), dtype=np.int32)
    weights = np.asarray(arr("item_item_weights"), dtype=np.float32)
    where = f"{path}: item_item"
    if indptr.shape != (n_books + 1,):
        raise ArtifactError(f"{where}_indptr has shape {indptr.shape}, not ({n_books + 1},)")
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices):
        raise ArtifactError(f"{where}_indptr is not a CSR row pointer over {len(indices)} entries")
    if len(weights) != len(indices):
        raise ArtifactError(f"{where}: {len(weights)} weights for {len(indices)} indices")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_books):
        raise ArtifactError(f"{where}_indices point outside the {n_books} books")
    if len(weights) and float(weights.min()) <= 0.0:
        raise ArtifactError(f"{where}_weights holds a weight <= 0 (the format keeps positives)")
    try:
        weight = float(params.get("item_item_blend", DEFAULT_BLEND))
        n = int(params.get("blend_candidates", DEFAULT_BLEND_CANDIDATES))
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{path}: params.item_item_blend/blend_candidates: {e}") from e
    if not 0.0 <= weight <= 1.0:
        raise ArtifactError(f"{path}: params.item_item_blend {weight} is outside [0, 1]")
    if n < 1:
        raise ArtifactError(f"{path}: params.blend_candidates {n} is below 1")
    return ItemItem(indptr, indices, weights, weight, n)


# Checked for NaN/inf elsewhere, in the same pass that reads them for another reason.
_SCANNED_ELSEWHERE = frozenset({"item_factors"})


def _finite_arrays(path: Path, arr: Callable[[str], Any]) -> Callable[[str], Any]:
    """``arr`` that refuses any float array holding NaN or inf. Checking only the factors
    let a NaN popularity through: every cold-start list then came back empty, with OK."""

    def checked(name: str) -> Any:
        array = arr(name)
        floating = np.issubdtype(array.dtype, np.floating)
        if floating and name not in _SCANNED_ELSEWHERE and not all_finite(array):
            raise ArtifactError(f"{path}/{name}.npy holds NaN or inf")
        return array

    return checked


def subject_lookup(ids: list[str], names: list[str]) -> dict[str, int]:
    """Normalised subject id or name -> subject_idx. An id wins over a name and the
    first subject over a later one when two normalise alike (never in a trainer's
    artifact: its ids are slugs of distinct normalised parts, its names the data's
    spellings of those parts, so both normalise back to the part)."""
    lookup: dict[str, int] = {}
    for column in (ids, names):
        for i, text in enumerate(column):
            key = normalize_subject(text)
            if key:
                lookup.setdefault(key, i)
    return lookup


def _clip(text: str) -> str:
    return text if len(text) <= SUBJECT_ECHO else f"{text[:SUBJECT_ECHO]}..."


def _subject_bitsets(
    indptr: npt.NDArray[np.int64], indices: I32, n_books: int, chunk: int = 16
) -> npt.NDArray[np.uint8]:
    """Row s: bit b % 8 of byte b // 8 set when book b carries subject s. Built
    ``chunk`` subjects at a time, so no one numpy call holds the GIL for long while
    the worker serves (100 ms at 1M books in one ``bitwise_or.at``)."""
    out = np.zeros((len(indptr) - 1, (n_books + 7) // 8), dtype=np.uint8)
    for first in range(0, len(indptr) - 1, chunk):
        last = min(first + chunk, len(indptr) - 1)
        carries = np.zeros((last - first, n_books), dtype=bool)
        lo, hi = indptr[first], indptr[last]
        subject = np.repeat(np.arange(last - first), np.diff(indptr[first : last + 1]))
        carries[subject, indices[lo:hi]] = True
        out[first:last] = np.packbits(carries, axis=1, bitorder="little")
    return out


def _read_index(path: Path) -> Any:
    """Flat and IVF indexes are mapped (IO_FLAG_MMAP); HNSW ones load into memory. Mapped
    IVF lists live in faiss's OnDiskInvertedLists, whose per-search prefetch threads
    cost 2.6 ms a query on 2 cores; with prefetch off a mapped IVF search costs 0.40 ms
    against 0.23 ms in memory (300k books), and no worker holds a private copy."""
    index: Any = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    if isinstance(index, faiss.IndexIVF) and index.invlists is not None:
        lists: Any = faiss.downcast_InvertedLists(index.invlists)
        if hasattr(lists, "prefetch_nthread"):
            lists.prefetch_nthread = 0
    return index


def warmup_queries(bundle: Bundle) -> dict[str, list[str]]:
    """The queries the trainer chose for this bundle (warmup.json)."""
    doc = json.loads((bundle.path / "warmup.json").read_text())
    return {k: [str(v) for v in doc.get(k, [])] for k in ("user_ids", "book_ids", "subject_ids")}
