"""The artifact format: the one contract between the trainer and the server.

An artifact is a directory ``<root>/<model_version>/`` holding ``.npy`` arrays
(memory-mappable, never pickled), string columns, a FAISS index and
``manifest.json``. The trainer writes everything under a hidden temporary name,
writes the manifest last, fsyncs and renames: a directory whose name does not
start with ``.`` and that holds a manifest is complete. The server verifies the
manifest (format version, sha256, shape, dtype of every file) before serving.

The page docs/artifact-format.md describes the files; keep the two in step.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 3
MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
REJECTED_PREFIX = ".rejected-"
_VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")

# Arrays every artifact of this format version holds: name -> (dtype, ndim).
# Row i of every per-book array is the book with item_idx i.
REQUIRED_ARRAYS: dict[str, tuple[str, int]] = {
    "item_factors": ("float32", 2),  # ALS item factors (n_books, f); zero row = no ALS vector
    "item_in_als": ("bool", 1),  # (n_books,) whether the book has an ALS vector
    "user_factors": ("float32", 2),  # ALS user factors (n_users, f)
    "user_items_indptr": ("int64", 1),  # CSR of books each user rated (every rating)
    "user_items_indices": ("int32", 1),
    # ALS confidence of each of those (bookrec.confidence); 0 for a rating ALS was not
    # fitted on (explicit, below the chosen min_rating)
    "user_items_confidence": ("float32", 1),
    "popularity": ("float32", 1),  # Bayesian popularity prior in [0, 1]
    "rating_count": ("int32", 1),  # interactions per book in the training split
    "mean_rating": ("float32", 1),  # mean explicit rating per book (0 when none)
    "year": ("int16", 1),  # first publication year, 0 when unknown
    "series_volume": ("int16", 1),  # 0 when not in a series
    "book_subjects": ("int32", 2),  # (n_books, max_subjects) subject_idx, padded with -1
    "subject_idf": ("float32", 1),  # (n_subjects,) inverse document frequency
    "subject_vectors": ("float32", 2),  # (n_subjects, d) learned subject embeddings
    "book_subject_vectors": ("float32", 2),  # (n_books, d) pooled, L2-normalised; zero = none
    "book_rating_std": ("float32", 1),  # std of explicit ratings per book (train split)
    "user_stats": ("float32", 2),  # (n_users, 3): interactions, mean, std (train split)
    "user_favourite_subjects": ("int32", 2),  # (n_users, 5) subject_idx, -1 padded
}
# String columns: name -> what a row is.
REQUIRED_STRINGS: dict[str, str] = {
    "book_ids": "external work id per item_idx",
    "titles": "display title per item_idx (series marker removed)",
    "authors": "primary author per item_idx",
    "series": "series name per item_idx, empty when none",
    "isbns": "space-separated ISBN-13s per item_idx",
    "user_ids": "external user id per user row",
    "subject_ids": "slug per subject_idx",
    "subject_names": "display name per subject_idx",
}
REQUIRED_FILES: tuple[str, ...] = (
    "item_index.faiss",  # IndexFlatIP over L2-normalised item factors
    "subject_index.faiss",  # IndexFlatIP over book_subject_vectors
    "retrieval_index.faiss",  # inner product over item_factors: flat, or IVF when large
    "warmup.json",
    "evaluation.json",  # the metrics of docs/models.md, also in the manifest
)
# Present only when the trainer decided to serve the reranker (manifest metrics.served).
RERANKER_FILES: tuple[str, ...] = ("reranker.txt", "reranker_features.json")
# Written with the reranker's files (optional: an artifact without them reads zeros, as
# for data without timestamps): per-book columns its features need beyond the above.
RERANKER_ARRAYS: dict[str, tuple[str, int]] = {
    "book_recency": ("float32", 1),  # share of the book's interactions in the latest tenth
}
# Present only when the trainer decided to serve the item-item source (bookrec/blend.py):
# a CSR (n_books, n_books), row r = the books reading r points to, ascending, weight > 0.
ITEM_ITEM_ARRAYS: dict[str, tuple[str, int]] = {
    "item_item_indptr": ("int64", 1),
    "item_item_indices": ("int32", 1),
    "item_item_weights": ("float32", 1),
}
# Optional (issue 22): the popularity the trainer chose to serve (counts, recent counts or
# the prior, in [0, 1]) for ColdStart and the new-user shrink; absent: the prior, as before.
NEW_USER_ARRAYS: dict[str, tuple[str, int]] = {
    "served_popularity": ("float32", 1),
}
# Subject pooling weights: subject_pool_<name>.npy, names per pooling in the manifest params.
POOL_PREFIX = "subject_pool_"


class ArtifactError(Exception):
    """An artifact directory is incomplete, corrupt or of another format version."""


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int
    shape: tuple[int, ...] | None = None
    dtype: str | None = None


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model_version: str
    created_at: str
    split_id: str
    files: Mapping[str, FileEntry]
    params: Mapping[str, Any] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        files = {
            name: {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in vars(e).items()
                if v is not None
            }
            for name, e in sorted(self.files.items())
        }
        doc = {
            "format_version": self.format_version,
            "model_version": self.model_version,
            "created_at": self.created_at,
            "split_id": self.split_id,
            "files": files,
            "params": dict(self.params),
            "counts": dict(self.counts),
            "metrics": dict(self.metrics),
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str) -> Manifest:
        doc = json.loads(text)
        files = {
            name: FileEntry(
                sha256=e["sha256"],
                bytes=int(e["bytes"]),
                shape=tuple(e["shape"]) if "shape" in e else None,
                dtype=e.get("dtype"),
            )
            for name, e in doc["files"].items()
        }
        return Manifest(
            format_version=int(doc["format_version"]),
            model_version=str(doc["model_version"]),
            created_at=str(doc["created_at"]),
            split_id=str(doc["split_id"]),
            files=files,
            params=doc.get("params", {}),
            counts=doc.get("counts", {}),
            metrics=doc.get("metrics", {}),
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_model_version(name: str) -> bool:
    """Whether ``name`` is spelled like a model version (``20261126T120000Z-1a2b3c4d``)."""
    return bool(_VERSION_RE.match(name))


def new_model_version(seed_text: str, now: _dt.datetime | None = None) -> str:
    """Sortable by time, unique by content: ``20261126T120000Z-1a2b3c4d``."""
    now = now or _dt.datetime.now(_dt.UTC)
    digest = hashlib.sha256(f"{now.isoformat()}|{seed_text}".encode()).hexdigest()[:8]
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{digest}"


def encode_strings(values: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """A string column as (offsets, utf-8 blob): memory-mappable, no pickle."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return offsets, blob


class StringColumn:
    """Read-only view of a string column; rows are decoded on access."""

    def __init__(self, offsets: npt.NDArray[np.int64], blob: npt.NDArray[np.uint8]) -> None:
        # Plain views of memory maps: np.memmap's own indexing costs ~40 us a call.
        self._offsets = np.asarray(offsets)
        self._blob = np.asarray(blob)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> str:
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        return bytes(self._blob[start:end]).decode("utf-8")

    def fixed_width(self) -> npt.NDArray[np.bytes_]:
        """Every row as one fixed-width bytes array (numpy ``S`` dtype), built without a
        Python object per row: what id lookups and grouping need, in a few numpy calls.
        (``S`` drops trailing NUL bytes, which no id or name holds.)"""
        lengths = np.diff(self._offsets)
        width = max(1, int(lengths.max(initial=0)))
        first, last = int(self._offsets[0]), int(self._offsets[-1])
        row_of = np.repeat(np.arange(len(lengths)), lengths)
        column = np.arange(last - first) - (self._offsets[:-1] - first)[row_of]
        rows = np.zeros((len(lengths), width), dtype=np.uint8)
        rows[row_of, column] = self._blob[first:last]
        out: npt.NDArray[np.bytes_] = rows.view(f"S{width}").ravel()
        return out

    def to_list(self) -> list[str]:
        raw = bytes(self._blob)
        offs = self._offsets.tolist()
        return [raw[offs[i] : offs[i + 1]].decode("utf-8") for i in range(len(self))]


class ArtifactWriter:
    """Writes one artifact under a temporary name; ``publish`` makes it visible.

    Not thread-safe. If the process dies before ``publish`` the temporary
    directory stays hidden from the server and is removed by ``discard`` or
    by the next ``clean_stale_tmp``.
    """

    def __init__(self, root: Path, model_version: str) -> None:
        if not _VERSION_RE.match(model_version):
            raise ValueError(f"bad model_version {model_version!r}")
        self.root = root
        self.model_version = model_version
        root.mkdir(parents=True, exist_ok=True)
        self.tmp = root / f"{TMP_PREFIX}{model_version}"
        self.tmp.mkdir()
        self._files: dict[str, FileEntry] = {}

    def _record(self, name: str, shape: tuple[int, ...] | None, dtype: str | None) -> None:
        path = self.tmp / name
        self._files[name] = FileEntry(_sha256(path), path.stat().st_size, shape, dtype)

    def save_array(self, name: str, array: npt.NDArray[Any]) -> None:
        arr = np.ascontiguousarray(array)
        np.save(self.tmp / f"{name}.npy", arr, allow_pickle=False)
        self._record(f"{name}.npy", tuple(int(d) for d in arr.shape), str(arr.dtype))

    def save_strings(self, name: str, values: Sequence[str]) -> None:
        offsets, blob = encode_strings(values)
        self.save_array(f"{name}.offsets", offsets)
        self.save_array(f"{name}.utf8", blob)

    def save_bytes(self, name: str, data: bytes) -> None:
        (self.tmp / name).write_bytes(data)
        self._record(name, None, None)

    def path_for(self, name: str) -> Path:
        """For writers that need a path (FAISS); call ``record_file`` after."""
        return self.tmp / name

    def record_file(self, name: str) -> None:
        self._record(name, None, None)

    def publish(
        self,
        split_id: str,
        params: Mapping[str, Any],
        counts: Mapping[str, int],
        metrics: Mapping[str, Any],
        visible: bool = True,
    ) -> Path:
        """Write the manifest last, fsync, rename: the artifact appears whole or not at all.

        ``visible=False`` (a run the quality gate refused) renames it to
        ``.rejected-<version>`` instead: complete and inspectable, never served."""
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model_version=self.model_version,
            created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            split_id=split_id,
            files=dict(self._files),
            params=params,
            counts=counts,
            metrics=metrics,
        )
        missing = expected_files() - set(self._files)
        if missing:
            raise ArtifactError(f"artifact lacks required files: {sorted(missing)}")
        for name in self._files:
            fsync(self.tmp / name)
        (self.tmp / MANIFEST).write_text(manifest.to_json())
        fsync(self.tmp / MANIFEST)
        final = self.root / (
            self.model_version if visible else REJECTED_PREFIX + self.model_version
        )
        os.rename(self.tmp, final)
        fsync(self.root, directory=True)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def fsync(path: Path, directory: bool = False) -> None:
    """Flushes a file, or a directory's entries, to disk: a publish must survive a crash."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def expected_files() -> set[str]:
    names = {f"{n}.npy" for n in REQUIRED_ARRAYS}
    names |= {f"{n}.{part}.npy" for n in REQUIRED_STRINGS for part in ("offsets", "utf8")}
    return names | set(REQUIRED_FILES)


def has_reranker(manifest: Manifest) -> bool:
    return all(name in manifest.files for name in RERANKER_FILES)


def has_item_item(manifest: Manifest) -> bool:
    return all(f"{name}.npy" in manifest.files for name in ITEM_ITEM_ARRAYS)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        manifest = Manifest.from_json(path.read_text())
    except FileNotFoundError as e:
        raise ArtifactError(f"{directory}: no {MANIFEST} (incomplete artifact)") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{path}: unreadable manifest: {e}") from e
    if manifest.format_version != FORMAT_VERSION:
        raise ArtifactError(
            f"{directory}: format version {manifest.format_version}, this build reads "
            f"{FORMAT_VERSION}; retrain with this version of the trainer"
        )
    return manifest


def verify(directory: Path, manifest: Manifest, check_hashes: bool = True) -> None:
    """Raise ArtifactError unless every file matches the manifest."""
    missing = expected_files() - set(manifest.files)
    if missing:
        raise ArtifactError(f"{directory}: manifest lacks {sorted(missing)}")
    # Every file's presence and size first: a directory still being written fails in a
    # few stats, not after hashing what is already there (the server retries it).
    for name, entry in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != entry.bytes:
            raise ArtifactError(f"{path}: size {path.stat().st_size} != manifest {entry.bytes}")
    for name, entry in manifest.files.items() if check_hashes else ():
        path = directory / name
        if _sha256(path) != entry.sha256:
            raise ArtifactError(f"{path}: sha256 differs from the manifest (corrupt file)")
    optional = dict(ITEM_ITEM_ARRAYS) if has_item_item(manifest) else {}
    optional |= {n: v for n, v in RERANKER_ARRAYS.items() if f"{n}.npy" in manifest.files}
    optional |= {n: v for n, v in NEW_USER_ARRAYS.items() if f"{n}.npy" in manifest.files}
    for name, (dtype, ndim) in {**REQUIRED_ARRAYS, **optional}.items():
        entry = manifest.files[f"{name}.npy"]
        if entry.dtype != dtype or entry.shape is None or len(entry.shape) != ndim:
            raise ArtifactError(
                f"{directory}/{name}.npy: manifest says {entry.dtype}{entry.shape}, "
                f"format needs {dtype} with {ndim} dims"
            )


def load_array(directory: Path, manifest: Manifest, name: str) -> npt.NDArray[Any]:
    """Memory-map one array and check it against the manifest."""
    fname = f"{name}.npy"
    try:
        arr: npt.NDArray[Any] = np.load(directory / fname, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # truncated, torn header, not an .npy
        raise ArtifactError(f"{directory}/{fname}: unreadable array: {e}") from e
    entry = manifest.files[fname]
    if entry.shape is not None and tuple(arr.shape) != entry.shape:
        raise ArtifactError(f"{directory}/{fname}: shape {arr.shape} != manifest {entry.shape}")
    if entry.dtype is not None and str(arr.dtype) != entry.dtype:
        raise ArtifactError(f"{directory}/{fname}: dtype {arr.dtype} != manifest {entry.dtype}")
    return arr


def load_strings(directory: Path, manifest: Manifest, name: str) -> StringColumn:
    return StringColumn(
        load_array(directory, manifest, f"{name}.offsets"),
        load_array(directory, manifest, f"{name}.utf8"),
    )


def complete_versions(root: Path) -> list[Path]:
    """Artifact directories that look complete (named, with a manifest), oldest first."""
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and _VERSION_RE.match(p.name) and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def newest_valid(root: Path, check_hashes: bool = True) -> tuple[Path, Manifest] | None:
    """The newest artifact that verifies; older ones are tried when a newer one is broken."""
    for directory in reversed(complete_versions(root)):
        try:
            manifest = read_manifest(directory)
            verify(directory, manifest, check_hashes)
        except ArtifactError:
            continue
        return directory, manifest
    return None


def clean_stale_tmp(root: Path, keep: Iterable[Path] = ()) -> list[Path]:
    """Remove temporary directories left by killed training runs."""
    keep_set = {p.resolve() for p in keep}
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TMP_PREFIX) and p.resolve() not in keep_set:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


# -- leases: which versions servers are using (so retention never deletes them) ----------

LEASES_DIR = ".leases"


def _lease_path(root: Path, holder: str) -> Path:
    return root / LEASES_DIR / f"{holder}.json"


def replace_text(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a reader never sees it torn); its folder is
    made when missing. Not fsynced: for state a process rewrites, not for artifacts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    return True


def write_lease(root: Path, holder: str, version: str) -> None:
    """A server records the version it serves; replaced atomically on every swap."""
    doc = {"version": version, "pid": os.getpid(), "holder": holder}
    replace_text(_lease_path(root, holder), json.dumps(doc))


def remove_lease(root: Path, holder: str) -> None:
    _lease_path(root, holder).unlink(missing_ok=True)


def leased_versions(root: Path) -> set[str]:
    """Versions named by leases whose process is still alive (stale leases are ignored)."""
    out: set[str] = set()
    for path in (root / LEASES_DIR).glob("*.json") if (root / LEASES_DIR).is_dir() else []:
        try:
            doc = json.loads(path.read_text())
            pid, version = int(doc["pid"]), str(doc["version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if process_alive(pid):
            out.add(version)
    return out
