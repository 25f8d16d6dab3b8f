"""Synthetic Book-Crossing and Open Library files with planted structure and planted dirt.

Why: the trainer, the server and the tests need realistic inputs on machines that have no
network and no copy of the real data set.  ``generate`` writes the real Book-Crossing file
format (latin-1, ``;``-separated, every field quoted, ``NULL`` ages) with the real data set's
kinds of dirt, subjects in the Open Library dump format, and plants structure a good model can
recover: skewed subjects, authors, series read together, user tastes and Zipf popularity.
``demo_truth.json`` records the planted answer for tests only; the trainer never reads it.

Same scale and seed give byte-identical files: every random draw comes from one seeded numpy
generator per stage, and nothing depends on hashing, dict order of sets, time or locale.
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as json_str
from pathlib import Path

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# The generator writes exactly what the readers read.
from trainer.bx_reader import (  # noqa: E402
    BOOKS_FILE,
    BOOKS_HEADER,
    RATINGS_FILE,
    RATINGS_HEADER,
    USERS_FILE,
    USERS_HEADER,
)
from trainer.openlibrary import EDITIONS_FILE as OL_EDITIONS_FILE  # noqa: E402
from trainer.openlibrary import WORKS_FILE as OL_WORKS_FILE  # noqa: E402

TRUTH_FILE = "demo_truth.json"

# The Book-Crossing dump was written on Windows: CRLF line ends, latin-1 bytes.
BX_NEWLINE = "\r\n"
BX_ENCODING = "latin-1"

# Kinds of broken BX-Books.csv lines; see _broken_title_field.
BROKEN_KINDS = ("unescaped_quote", "unquoted_semicolon", "backslash_quote_end")
# Fields a plain csv.reader(delimiter=";", quotechar='"') returns for each broken kind.
BROKEN_KIND_FIELDS = {"unescaped_quote": 9, "unquoted_semicolon": 9, "backslash_quote_end": 8}


@dataclass(frozen=True)
class Scale:
    """Size and shape of one generated data set; the counts are targets, not exact."""

    n_users: int
    n_works: int
    n_ratings: int
    n_subjects: int
    editions_per_work: float  # mean ISBNs per work; each work has 1-3
    series_fraction: float  # share of works that are a volume of a series
    popularity_exponent: float  # Zipf exponent of work popularity
    activity_sigma: float  # lognormal spread of the number of ratings per user
    broken_lines_per_kind: int


SCALES: dict[str, Scale] = {
    "tiny": Scale(
        n_users=600,
        n_works=400,
        n_ratings=25_000,
        n_subjects=30,
        editions_per_work=1.5,
        series_fraction=0.2,
        popularity_exponent=0.7,
        activity_sigma=0.8,
        broken_lines_per_kind=2,
    ),
    "small": Scale(
        n_users=10_000,
        n_works=12_000,
        n_ratings=150_000,
        n_subjects=150,
        editions_per_work=1.67,
        series_fraction=0.2,
        popularity_exponent=0.9,
        activity_sigma=1.4,
        broken_lines_per_kind=3,
    ),
    "bookcrossing": Scale(
        n_users=105_000,
        n_works=190_000,
        n_ratings=1_150_000,
        n_subjects=150,
        editions_per_work=1.42,
        series_fraction=0.2,
        popularity_exponent=0.95,
        activity_sigma=1.8,
        broken_lines_per_kind=5,
    ),
    # Four times the real data set, for benchmarks of how cost grows.
    "bookcrossing4x": Scale(
        n_users=420_000,
        n_works=760_000,
        n_ratings=4_600_000,
        n_subjects=150,
        editions_per_work=1.42,
        series_fraction=0.2,
        popularity_exponent=0.95,
        activity_sigma=1.8,
        broken_lines_per_kind=5,
    ),
}


@dataclass(frozen=True)
class DemoSummary:
    """What ``generate`` wrote, so a caller can report it without re-reading the files."""

    out_dir: Path
    scale: str
    seed: int
    users: int  # rows in BX-Users.csv
    works: int
    isbns: int  # rows in BX-Books.csv
    authors: int
    series: int
    subjects: int
    ratings: int  # data rows in BX-Book-Ratings.csv, dirt and duplicates included
    implicit_ratings: int
    duplicate_rating_rows: int
    broken_book_lines: int  # all planted broken lines in BX-Books.csv
    missplit_book_lines: int  # those a plain csv.reader splits into more than 8 fields
    ol_editions: int
    ol_works: int
    books_csv: Path
    users_csv: Path
    ratings_csv: Path
    ol_editions_txt: Path
    ol_works_txt: Path
    truth_json: Path


# --------------------------------------------------------------------------- word lists

# Ordered by intended popularity: subject i gets Zipf weight 1/(i+1).
SUBJECTS = (
    "romance", "mystery", "fantasy", "science fiction", "thriller", "historical fiction",
    "young adult", "horror", "biography", "history", "humor", "classics", "poetry", "self-help",
    "cooking", "travel", "christian fiction", "literary fiction", "children's books", "psychology",
    "business", "philosophy", "true crime", "religion", "short stories", "adventure", "science",
    "health", "art", "politics", "memoir", "war", "westerns", "chick lit", "crime fiction",
    "espionage", "legal thrillers", "medical thrillers", "paranormal romance", "urban fantasy",
    "epic fantasy", "space opera", "dystopian fiction", "cyberpunk", "alternate history",
    "gothic fiction", "ghost stories", "vampires", "cozy mystery", "detective fiction",
    "police procedurals", "regency romance", "contemporary romance", "family saga",
    "coming of age", "drama", "plays", "essays", "mythology", "fairy tales", "picture books",
    "animals", "nature", "gardening", "parenting", "education", "economics", "sociology",
    "anthropology", "archaeology", "astronomy", "physics", "mathematics", "computers",
    "programming", "engineering", "medicine", "nutrition", "fitness", "sports", "music", "film",
    "photography", "architecture", "design", "crafts", "games", "pets", "spirituality",
    "buddhism", "christianity", "judaism", "islam", "new age", "occult", "astrology", "language",
    "linguistics", "reference", "dictionaries", "law", "military history", "world war ii",
    "civil war", "ancient history", "medieval history", "american history", "european history",
    "african history", "asian history", "latin american fiction", "german literature",
    "spanish literature", "french literature", "russian literature", "japanese literature",
    "irish literature", "australian literature", "canadian literature", "british literature",
    "women's studies", "lgbt", "graphic novels", "comics", "manga", "erotica", "satire",
    "political fiction", "environment", "climate", "true adventure", "exploration", "sailing",
    "mountaineering", "aviation", "railways", "automobiles", "collecting", "antiques", "wine",
    "baking", "vegetarian cooking", "diet", "relationships", "marriage", "aging",
    "death and dying", "grief", "addiction", "ecology",
)  # fmt: skip

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

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Margaret", "Thomas",
    "Dorothy", "Charles", "Karen", "Daniel", "Nancy", "Anne", "Paul", "Helen", "Mark", "Sandra",
    "George", "Carol", "Peter", "Ruth", "Frank", "Sharon", "Laura", "Edward", "Emily", "Henry",
    "Alice", "Walter", "Grace", "Arthur", "Clara", "Hugh", "Rose", "Simon", "Julia", "Oliver",
    "Margot", "Jonathan", "Nora", "José", "Françoise", "Jürgen", "Renée", "Zoë", "Søren",
    "Inés", "Günter", "Chloé", "Raúl", "Björn", "Héctor", "Mónica", "Agnès", "Ángel", "Lucía",
    "Hélène", "Andrés", "Jörg", "Maeve",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker",
    "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Phillips", "Evans",
    "Turner", "Parker", "Collins", "Edwards", "Stewart", "Morris", "Murphy", "Cook", "Rogers",
    "Morgan", "Cooper", "Peterson", "Reed", "Bailey", "Bell", "Kelly", "Howard", "Ward", "Cox",
    "Richardson", "Wood", "Watson", "Brooks", "Bennett", "Gray", "Hughes", "Price", "Sanders",
    "Myers", "Long", "Ross", "Foster", "Powell", "Jenkins", "Perry", "Russell", "Sullivan",
    "Fisher", "Hamilton", "Graham", "Wallace", "Hayes", "Gibson", "Ellis", "Marshall", "Owens",
    "Harrison", "Fletcher", "Crane", "Whitfield", "Ashford", "Blackwood", "Pemberton",
    "Hargrove", "Lindqvist", "Müller", "Schäfer", "Köhler", "Weiß", "Peña", "Núñez", "García",
    "Martínez", "Ibáñez", "Dubois", "Lefèvre", "Bélanger", "Côté", "Brontë", "O'Brien",
    "MacLeod", "Østergaard", "Andersson", "Rossi", "Ferreira",
)  # fmt: skip

ADJECTIVES = (
    "Silent", "Hidden", "Broken", "Glass", "Golden", "Dark", "Last", "Lost", "Burning", "Secret",
    "Crimson", "Winter", "Summer", "Forgotten", "Distant", "Wild", "Quiet", "Bitter", "Sweet",
    "Hollow", "Iron", "Silver", "Endless", "Final", "First", "Long", "Little", "Midnight",
    "Scarlet", "Shattered", "Eternal", "Fallen", "Frozen", "Sacred", "Savage", "Restless",
    "Gentle", "Wicked", "Stolen", "Painted", "Velvet", "Northern", "Southern", "Empty",
    "Perfect", "Strange", "Invisible", "Blue", "Green", "Black", "White", "Red", "Naïve",
    "Sunlit", "Drowned", "Crooked", "Bright", "Hungry", "Lonely", "Ancient",
)  # fmt: skip

NOUNS = (
    "Tower", "River", "Garden", "House", "Sea", "Mountain", "Shadow", "Dream", "Heart", "Moon",
    "Star", "Fire", "Ember", "Storm", "Road", "Bridge", "Door", "Window", "Mirror", "Key",
    "Crown", "Sword", "Throne", "Forest", "Island", "City", "Kingdom", "Empire", "Harbor",
    "Lighthouse", "Orchard", "Valley", "Desert", "Night", "Morning", "Promise", "Lie", "Truth",
    "Memory", "Silence", "Song", "Letter", "Map", "Clock", "Bell", "Wolf", "Raven", "Lion",
    "Fox", "Horse", "Dragon", "Angel", "Ghost", "Witch", "Stranger", "Daughter", "Son", "Widow",
    "Soldier", "Spy", "Thief", "Doctor", "Captain", "Queen", "King", "Prince", "Sister",
    "Brother", "Mother", "Father", "Journey", "Voyage", "Game", "Edge", "Circle", "Question",
    "Café", "Château", "Fiancée", "Señora", "Fräulein", "Piñata", "Résumé", "Mañana",
    "Cathedral", "Circus", "Carnival", "Library", "Museum", "Hotel", "Station", "Prison",
    "School", "Farm", "Village", "Labyrinth", "Compass", "Lantern", "Candle", "Feather", "Stone",
    "Rose", "Lily", "Thorn", "Ash", "Salt", "Bone", "Blood", "Gold", "Silk", "Paper", "Ink",
)  # fmt: skip

PLACES = (
    "Paris", "Venice", "Vienna", "Prague", "Dublin", "Boston", "Savannah", "Berlin", "Madrid",
    "Sevilla", "Zürich", "Málaga", "Montréal", "Québec", "Köln", "München", "Tokyo", "Cairo",
    "Havana", "Lisbon", "Córdoba", "Provence", "Tuscany", "Kansas", "Texas", "Maine",
    "Yorkshire", "Cornwall", "Bavaria", "Andalucía",
)  # fmt: skip

VERBS = ("Falls", "Sleeps", "Burns", "Sings", "Breaks", "Returns", "Waits", "Wakes", "Turns")
SERIES_SUFFIXES = ("Cycle", "Chronicles", "Saga", "Sequence", "Series", "Quartet", "Trilogy")
PUBLISHER_SUFFIXES = ("Books", "Press", "Publishing", "House", "Verlag", "Editions")

# (city, state, country) per country; the first cities of a country are the most common.
LOCATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "usa": (
        ("new york", "new york"), ("los angeles", "california"), ("chicago", "illinois"),
        ("houston", "texas"), ("san francisco", "california"), ("seattle", "washington"),
        ("portland", "oregon"), ("boston", "massachusetts"), ("denver", "colorado"),
        ("atlanta", "georgia"), ("miami", "florida"), ("austin", "texas"),
        ("phoenix", "arizona"), ("minneapolis", "minnesota"), ("philadelphia", "pennsylvania"),
        ("columbus", "ohio"), ("detroit", "michigan"), ("nashville", "tennessee"),
        ("charlotte", "north carolina"), ("richmond", "virginia"), ("stockton", "california"),
        ("salt lake city", "utah"), ("kansas city", "missouri"), ("orlando", "florida"),
    ),
    "canada": (
        ("toronto", "ontario"), ("vancouver", "british columbia"), ("montréal", "quebec"),
        ("ottawa", "ontario"), ("calgary", "alberta"), ("québec", "quebec"),
        ("halifax", "nova scotia"), ("winnipeg", "manitoba"),
    ),
    "united kingdom": (
        ("london", "england"), ("manchester", "england"), ("edinburgh", "scotland"),
        ("bristol", "england"), ("leeds", "england"), ("glasgow", "scotland"),
        ("cardiff", "wales"), ("belfast", "northern ireland"),
    ),
    "germany": (
        ("berlin", "berlin"), ("münchen", "bayern"), ("hamburg", "hamburg"),
        ("köln", "nordrhein-westfalen"), ("frankfurt", "hessen"),
        ("stuttgart", "baden-württemberg"), ("düsseldorf", "nordrhein-westfalen"),
    ),
    "spain": (
        ("madrid", "madrid"), ("barcelona", "barcelona"), ("valencia", "valencia"),
        ("sevilla", "andalucía"), ("a coruña", "galicia"), ("málaga", "andalucía"),
        ("bilbao", "país vasco"), ("zaragoza", "aragón"),
    ),
    "australia": (
        ("sydney", "new south wales"), ("melbourne", "victoria"), ("brisbane", "queensland"),
        ("perth", "western australia"), ("adelaide", "south australia"),
    ),
    "portugal": (("lisboa", "lisboa"), ("porto", "porto")),
    "italy": (("roma", "lazio"), ("milano", "lombardia")),
    "france": (("paris", "île-de-france"), ("lyon", "rhône-alpes")),
    "netherlands": (("amsterdam", "noord-holland"), ("utrecht", "utrecht")),
    "switzerland": (("zürich", "zürich"), ("genève", "genève")),
    "new zealand": (("auckland", "auckland"), ("wellington", "wellington")),
}  # fmt: skip
COUNTRY_WEIGHTS = (0.56, 0.10, 0.07, 0.07, 0.06, 0.04, 0.02, 0.02, 0.02, 0.015, 0.015, 0.01)

# Registration-group ranges of 9-digit ISBN bodies and their shares (English-heavy, like BX).
ISBN_GROUPS = (
    (0, 100_000_000, 0.68),  # 0: English
    (100_000_000, 200_000_000, 0.14),  # 1: English
    (200_000_000, 300_000_000, 0.04),  # 2: French
    (300_000_000, 400_000_000, 0.07),  # 3: German
    (840_000_000, 850_000_000, 0.04),  # 84: Spain
    (880_000_000, 890_000_000, 0.015),  # 88: Italy
    (900_000_000, 910_000_000, 0.015),  # 90: Netherlands
)

SERIES_LENGTHS = np.arange(2, 8)
SERIES_LENGTH_P = np.array([0.30, 0.28, 0.18, 0.12, 0.07, 0.05])
IMPOSSIBLE_AGES = (1, 2, 3, 4, 104, 113, 123, 138, 148, 156, 183, 199, 201, 209, 219, 228, 237)
FUTURE_YEARS = (2030, 2037, 2038, 2050)
FIRST_YEAR, LAST_YEAR = 1920, 2004  # the crawl ended in 2004


# --------------------------------------------------------------------------- internal state


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


@dataclass(frozen=True)
class _Users:
    """Users, their planted tastes and their rating habits."""

    user_id: IntArray
    fav_subjects: IntArray  # (n_users, 3), valid entries first, -1 = none
    fav_authors: IntArray  # (n_users, 4), valid entries first, -1 = none
    n_ratings: IntArray  # target rows per user, 0 for users who never rate
    p_implicit: FloatArray
    bias: FloatArray


@dataclass(frozen=True)
class _Ratings:
    """Clean rating rows before the dirt pass."""

    user: IntArray  # index into _Users
    work: IntArray
    isbn: IntArray
    rating: IntArray


# --------------------------------------------------------------------------- small helpers


def _zipf(n: int, exponent: float) -> FloatArray:
    """Normalised 1/rank**exponent weights: the skew every popularity here follows."""
    w: FloatArray = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    out: FloatArray = w / w.sum()
    return out


def _unique_draws(n: int, draw: Callable[[int], IntArray]) -> IntArray:
    """``n`` distinct values in draw order; redraws only on (rare) collisions."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        pool = np.concatenate([out, draw(int((n - out.size) * 1.05) + 16)])
        _, first = np.unique(pool, return_index=True)
        out = pool[np.sort(first)]
    return out[:n]


def _group_cdf(groups: IntArray, weights: FloatArray, n_groups: int) -> FloatArray:
    """Keys ``g + cdf_within_g`` for rows sorted by group, so one ``searchsorted`` on
    ``g + u`` samples an item of group ``g`` for many (g, u) pairs at once."""
    totals = np.bincount(groups, weights=weights, minlength=n_groups).astype(np.float64)
    before = np.cumsum(totals) - totals
    within = (np.cumsum(weights) - before[groups]) / np.where(totals > 0, totals, 1.0)[groups]
    last = np.r_[groups[1:] != groups[:-1], True]
    within[last] = 1.0
    keys: FloatArray = groups.astype(np.float64) + np.clip(within, 0.0, 1.0)
    return keys


def _sample_groups(keys: FloatArray, groups: IntArray, u: FloatArray) -> IntArray:
    """Row positions drawn by ``_group_cdf`` keys; every group asked for must be non-empty."""
    pos = np.searchsorted(keys, groups + u * (1.0 - 1e-12), side="right")
    return np.minimum(pos, keys.size - 1).astype(np.int64)


def _compact(mat: IntArray) -> IntArray:
    """Move the valid (>= 0) entries of each row to the front, keeping their order."""
    order = np.argsort(np.where(mat >= 0, 0, 1), axis=1, kind="stable")
    out: IntArray = np.take_along_axis(mat, order, axis=1)
    return out


def _distinct_rows(cand: IntArray, keep: BoolArray, exclude: IntArray | None = None) -> IntArray:
    """Candidates per row with duplicates (and ``exclude``) dropped, compacted, -1 padded."""
    out = np.where(keep, cand, -1)
    for j in range(cand.shape[1]):
        dup = np.zeros(cand.shape[0], dtype=np.bool_)
        for k in range(j):
            dup |= out[:, k] == out[:, j]
        if exclude is not None:
            dup |= out[:, j] == exclude
        out[:, j] = np.where(dup, -1, out[:, j])
    return _compact(out.astype(np.int64))


def _isbn_strings(digits: IntArray) -> list[str]:
    """ISBN-10 strings from (n, 10) digit rows, 10 meaning the check character X."""
    codes = (digits + ord("0")).astype(np.uint8)
    codes[:, 9] = np.where(digits[:, 9] == 10, ord("X"), codes[:, 9])
    raw = np.ascontiguousarray(codes).view("S10").ravel()
    out: list[str] = raw.astype("U10").tolist()
    return out


def _check_digit(body: IntArray) -> IntArray:
    """ISBN-10 check digits (10 = X) of (n, 9) digit rows."""
    s = body @ np.arange(10, 1, -1, dtype=np.int64)
    out: IntArray = (11 - s % 11) % 11
    return out


def _isbn13(isbn10: str) -> str:
    """The 978-prefixed ISBN-13 of an ISBN-10, as Open Library also lists it."""
    body = "978" + isbn10[:9]
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _pick(rng: np.random.Generator, n: int, k: int) -> IntArray:
    """``k`` distinct positions out of ``n`` (all of them when ``k >= n``), sorted."""
    k = min(k, n)
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def _unique_strings(
    rng: np.random.Generator, n: int, templates: Sequence[Sequence[str]]
) -> list[str]:
    """``n`` distinct strings from word templates; each retry round uses the next (roomier)
    template set, so collisions end quickly and the result stays deterministic."""
    seen: set[str] = set()
    out: list[str] = []
    for attempt in range(100):
        batch = _fill(
            rng, int((n - len(out)) * 1.2) + 8, templates[min(attempt, len(templates) - 1)]
        )
        for name in batch:
            if name not in seen:
                seen.add(name)
                out.append(name)
                if len(out) == n:
                    return out
    raise RuntimeError("name space exhausted")  # pragma: no cover - spaces are far larger


LETTERS = tuple(string.ascii_uppercase)
# Word pools by template field; {m} and {l2}/{l3} are second draws from the same pools.
WORD_POOLS: dict[str, tuple[str, ...]] = {
    "a": ADJECTIVES,
    "n": NOUNS,
    "m": NOUNS,
    "p": PLACES,
    "f": FIRST_NAMES,
    "l": LAST_NAMES,
    "l2": LAST_NAMES,
    "l3": LAST_NAMES,
    "v": VERBS,
    "s": SERIES_SUFFIXES[:5],  # Quartet/Trilogy would promise a length
    "u": PUBLISHER_SUFFIXES,
    "i": LETTERS,
    "j": LETTERS,
}


def _fill(
    rng: np.random.Generator,
    k: int,
    templates: Sequence[str],
    weights: Sequence[float] | None = None,
) -> list[str]:
    """``k`` strings, each a random template filled with random words from WORD_POOLS."""
    p = None if weights is None else np.asarray(weights) / sum(weights)
    pick = rng.choice(len(templates), size=k, p=p).tolist()
    # Positional templates ("{0} {3}") format from a tuple: no dict per row.
    positions = {field: f"{{{i}}}" for i, field in enumerate(WORD_POOLS)}
    positional = [t.format_map(positions) for t in templates]
    cols = [
        [pool[i] for i in rng.integers(len(pool), size=k).tolist()] for pool in WORD_POOLS.values()
    ]
    return [
        positional[t].format(*row) for t, row in zip(pick, zip(*cols, strict=True), strict=True)
    ]


AUTHOR_TEMPLATES = (
    ("{f} {l}", "{f} {i}. {l}"),
    ("{f} {i}. {l}", "{f} {i}. {j}. {l}"),
    ("{f} {i}. {j}. {l}",),
)
SERIES_TEMPLATES = (
    ("The {n} {s}", "The {a} {n} {s}", "{p} {s}", "The {n} of {p} {s}"),
    ("The {a} {n} {s}", "The {n} of {p} {s}"),
    ("The {a} {n} of {p} {s}",),
)
PUBLISHER_TEMPLATES = (
    (
        "{l} {u}",
        "{l} &amp; {l2}",  # BX stores '&' as an HTML entity
        "{n} {u}",
        "{a} {n} {u}",
        "{p} University Press",
        "{l}, {l2} and {l3}",
    ),
    ("{l} &amp; {l2}", "{a} {n} {u}", "{l}, {l2} and {l3}"),
    ("{a} {n} {l} {u}",),
)


# Title patterns and their weights; {a} adjective, {n}/{m} nouns, {p} place, {f} first name.
TITLE_PATTERNS = (
    ("The {a} {n}", 0.26),
    ("The {n} of {p}", 0.08),
    ("{n} of the {m}", 0.12),
    ("The {n}'s {m}", 0.07),
    ("{f}'s {n}", 0.06),
    ("A {n} in {p}", 0.06),
    ("{a} {n}", 0.10),
    ("{n} &amp; {m}", 0.03),
    ("The {n} and the {m}", 0.05),
    ("Letters from {p}", 0.02),
    ("{n}: A Novel", 0.05),
    ("When the {n} {v}", 0.05),
    ("The {n}", 0.05),
)


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    """Plausible titles from word lists (with BX's ``&amp;`` where a title has '&')."""
    return _fill(rng, n, [t for t, _ in TITLE_PATTERNS], [w for _, w in TITLE_PATTERNS])


# --------------------------------------------------------------------------- catalogue


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


def _isbn_digits(rng: np.random.Generator, n: int, avoid: IntArray | None = None) -> IntArray:
    """``n`` distinct ISBN-10s (as digit rows, valid check digit) from realistic groups,
    none of whose bodies is in ``avoid``."""
    lo = np.array([g[0] for g in ISBN_GROUPS], dtype=np.int64)
    hi = np.array([g[1] for g in ISBN_GROUPS], dtype=np.int64)
    p = np.array([g[2] for g in ISBN_GROUPS])
    p /= p.sum()
    skip = np.empty(0, dtype=np.int64) if avoid is None else avoid

    def draw(k: int) -> IntArray:
        g = rng.choice(len(ISBN_GROUPS), size=k, p=p)
        return (lo[g] + rng.integers(0, hi[g] - lo[g])).astype(np.int64)

    bodies = np.empty(0, dtype=np.int64)
    margin = 16
    while bodies.size < n:  # a clash with ``avoid`` is rare: redraw with a wider margin
        bodies = _unique_draws(n + margin, draw)
        bodies = bodies[~np.isin(bodies, skip)][:n]
        margin *= 4
    body = (bodies[:, None] // 10 ** np.arange(8, -1, -1, dtype=np.int64)) % 10
    out: IntArray = np.concatenate([body, _check_digit(body)[:, None]], axis=1)
    return out


def _bodies(digits: IntArray) -> IntArray:
    out: IntArray = digits[:, :9] @ 10 ** np.arange(8, -1, -1, dtype=np.int64)
    return out


# --------------------------------------------------------------------------- users


def _make_users(rng: np.random.Generator, sc: Scale, cat: _Catalogue) -> _Users:
    """Users with favourite subjects and authors and a heavy-tailed appetite for books."""
    n = sc.n_users
    n_subj = len(cat.subjects)
    user_id = np.sort(rng.choice(int(n * 2.65) + 1, size=n, replace=False) + 1).astype(np.int64)

    # Favourite subjects follow subject popularity, among subjects that have works.
    has_works = np.bincount(cat.work_subjects[:, 0], minlength=n_subj) > 0
    p = np.where(has_works, cat.subject_p, 0.0)
    cand = rng.choice(n_subj, size=(n, 3), p=p / p.sum()).astype(np.int64)
    k_subj = rng.choice([1, 2, 3], size=n, p=[0.35, 0.4, 0.25])
    fav_subjects = _distinct_rows(cand, np.arange(3)[None, :] < k_subj[:, None])
    n_fav = (fav_subjects >= 0).sum(axis=1)

    # Favourite authors: popular authors of a favourite subject (primary subject of the author).
    a_subj = cat.author_subjects[:, 0]
    order = np.argsort(a_subj, kind="stable")
    keys = _group_cdf(a_subj[order], cat.author_pop[order], n_subj)
    slot = (rng.random((n, 4)) * n_fav[:, None]).astype(np.int64)
    subj = np.take_along_axis(fav_subjects, slot, axis=1)
    authored = np.bincount(a_subj, minlength=n_subj) > 0
    pos = _sample_groups(keys, subj.ravel(), rng.random(n * 4)).reshape(n, 4)
    cand_a = np.where(authored[subj], order[pos], -1).astype(np.int64)
    k_auth = rng.choice(5, size=n, p=[0.2, 0.3, 0.25, 0.15, 0.1])
    fav_authors = _distinct_rows(cand_a, np.arange(4)[None, :] < k_auth[:, None])

    # Ratings per user: 1 + lognormal share of the rest, capped, for the ~97% who rate.
    active = rng.random(n) >= 0.03
    n_active = int(active.sum())
    w = rng.lognormal(0.0, sc.activity_sigma, n_active)
    counts = 1 + rng.multinomial(max(sc.n_ratings - n_active, 0), w / w.sum()).astype(np.int64)
    cap = max(20, int(0.3 * cat.n_works))
    for _ in range(5):
        excess = int(np.maximum(counts - cap, 0).sum())
        if excess == 0:
            break
        counts = np.minimum(counts, cap)
        free = counts < cap
        counts[free] += rng.multinomial(excess, w[free] / w[free].sum())
    n_ratings = np.zeros(n, dtype=np.int64)
    n_ratings[active] = np.minimum(counts, cap)

    return _Users(
        user_id=user_id,
        fav_subjects=fav_subjects,
        fav_authors=fav_authors,
        n_ratings=n_ratings,
        p_implicit=rng.beta(1.5, 1.0, size=n),
        bias=rng.normal(0.0, 0.8, size=n),
    )


# --------------------------------------------------------------------------- ratings


@dataclass(frozen=True)
class _DrawTables:
    """Sampling tables shared by every round of rating draws."""

    global_cdf: FloatArray
    subject_keys: FloatArray  # _group_cdf keys over (subject, work) pairs
    subject_work: IntArray
    author_keys: FloatArray  # _group_cdf keys over works, which are grouped by author


def _draw_tables(cat: _Catalogue) -> _DrawTables:
    pw, pc = np.nonzero(cat.work_subjects >= 0)
    ps = cat.work_subjects[pw, pc]
    order = np.lexsort((pw, ps))
    pw, pc, ps = pw[order], pc[order], ps[order]
    weight = cat.work_pop[pw] * np.where(pc == 0, 1.0, 0.3)  # primary subjects weighted up
    return _DrawTables(
        global_cdf=np.cumsum(cat.work_pop),
        subject_keys=_group_cdf(ps.astype(np.int64), weight, len(cat.subjects)),
        subject_work=pw.astype(np.int64),
        author_keys=_group_cdf(cat.work_author, cat.work_pop, len(cat.author_name)),
    )


def _draw_reads(
    rng: np.random.Generator, cat: _Catalogue, users: _Users, tab: _DrawTables, user: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """One draw per entry of ``user`` plus the series runs it triggers: (user, work, order key).

    Each draw picks a favourite subject, a favourite author or plain popularity; a draw that
    lands in a series usually brings a run of it, from volume 1 or from the drawn volume on.
    """
    n = user.size
    mix = rng.random(n)
    n_fav_a = (users.fav_authors >= 0).sum(axis=1)[user]
    by_subject = mix < 0.55
    by_author = (mix >= 0.55) & (mix < 0.72) & (n_fav_a > 0)
    work = np.searchsorted(tab.global_cdf, rng.random(n) * tab.global_cdf[-1], side="right")
    work = np.minimum(work, cat.n_works - 1).astype(np.int64)

    idx = np.flatnonzero(by_subject)
    n_fav_s = (users.fav_subjects >= 0).sum(axis=1)[user[idx]]
    slot = (rng.random(idx.size) * n_fav_s).astype(np.int64)
    subj = users.fav_subjects[user[idx], slot]
    work[idx] = tab.subject_work[_sample_groups(tab.subject_keys, subj, rng.random(idx.size))]

    idx = np.flatnonzero(by_author)
    slot = (rng.random(idx.size) * n_fav_a[idx]).astype(np.int64)
    author = users.fav_authors[user[idx], slot]
    work[idx] = _sample_groups(tab.author_keys, author, rng.random(idx.size))
    return _with_series_runs(rng, cat, user, work)


def _with_series_runs(
    rng: np.random.Generator, cat: _Catalogue, user: IntArray, work: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Append the series runs that draws trigger; keys keep each run right after its draw."""
    key = np.arange(user.size, dtype=np.int64) * 16
    ser = cat.work_series[work]
    idx = np.flatnonzero((ser >= 0) & (rng.random(user.size) < 0.75))
    s = ser[idx]
    vol = cat.work_volume[work[idx]]
    start = np.where(rng.random(idx.size) < 0.5, 0, vol)
    end = np.maximum(vol, start + rng.binomial(cat.series_length[s] - 1 - start, 0.7))
    run = end - start + 1
    seed_of = np.repeat(idx, run)
    offset = np.arange(int(run.sum())) - np.repeat(np.cumsum(run) - run, run)
    run_work = cat.series_first_work[np.repeat(s, run)] + np.repeat(start, run) + offset
    return (
        np.concatenate([user, user[seed_of]]),
        np.concatenate([work, run_work]),
        np.concatenate([key, key[seed_of] + 1 + offset]),
    )


def _first_reads(
    user: IntArray, work: IntArray, key: IntArray, n_works: int, limit: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """One row per (user, work), the earliest key winning; then each user's first ``limit``
    rows by key.  Result is sorted by (user, key)."""
    pair = user * n_works + work
    order = np.lexsort((key, pair))
    first = order[np.r_[True, pair[order][1:] != pair[order][:-1]]]
    first = first[np.lexsort((key[first], user[first]))]
    user, work, key = user[first], work[first], key[first]
    rank = np.arange(user.size) - np.searchsorted(user, user)
    keep = rank < limit[user]
    return user[keep], work[keep], key[keep]


def _sample_ratings(rng: np.random.Generator, cat: _Catalogue, users: _Users) -> _Ratings:
    """Taste x popularity draws, series read together, trimmed to each user's appetite.

    Users whose favourite shelves run dry get further rounds; the last round is uniform over
    all works, so (nearly) every user reaches their planned number of ratings.
    """
    n_users = users.user_id.size
    tab = _draw_tables(cat)
    users_idx = np.arange(n_users, dtype=np.int64)
    user = work = key = np.empty(0, dtype=np.int64)
    need = users.n_ratings.copy()
    base = 0
    for round_ in range(6):
        factor = 1.5 if round_ == 0 else 3.0
        per_user = np.where(need > 0, np.ceil(need * factor) + 3, 0).astype(np.int64)
        drawn_for = np.repeat(users_idx, per_user)
        if round_ < 5:
            u2, w2, k2 = _draw_reads(rng, cat, users, tab, drawn_for)
        else:
            w_any = rng.integers(0, cat.n_works, size=drawn_for.size).astype(np.int64)
            u2, w2, k2 = drawn_for, w_any, np.arange(drawn_for.size, dtype=np.int64) * 16
        user = np.concatenate([user, u2])
        work = np.concatenate([work, w2])
        key = np.concatenate([key, k2 + base])
        base += int(k2.max(initial=0)) + 16
        user, work, key = _first_reads(user, work, key, cat.n_works, users.n_ratings)
        need = users.n_ratings - np.bincount(user, minlength=n_users)
        if not need.any():
            break
    n = user.size

    # Editions: the first edition gets most of a work's ratings.
    cum = np.array([[1.0, 1.0], [0.7, 1.0], [0.6, 0.88]])[cat.work_n_editions[work] - 1]
    u = rng.random(n)
    edition = (u >= cum[:, 0]).astype(np.int64) + (u >= cum[:, 1])
    isbn = cat.work_isbn_start[work] + edition

    # Explicit values follow taste match; ~60% of rows are implicit (0).
    subj_w = cat.work_subjects[work]
    fav_s = users.fav_subjects[user]
    m_primary = (fav_s == subj_w[:, :1]).any(axis=1)
    m_other = ((subj_w[:, 1:, None] == fav_s[:, None, :]) & (subj_w[:, 1:, None] >= 0)).any(
        axis=(1, 2)
    )
    m_author = (users.fav_authors[user] == cat.work_author[work][:, None]).any(axis=1)
    value = (
        6.7
        + 1.8 * m_primary
        + 0.7 * (m_other & ~m_primary)
        + 1.0 * m_author
        + users.bias[user]
        + cat.work_quality[work]
        + rng.normal(0.0, 1.2, n)
    )
    explicit = np.clip(np.rint(value), 1, 10).astype(np.int64)
    implicit = rng.random(n) < users.p_implicit[user]
    rating = np.where(implicit, 0, explicit).astype(np.int64)
    return _Ratings(user=user, work=work, isbn=isbn.astype(np.int64), rating=rating)


# --------------------------------------------------------------------------- dirt + writers


def _hyphenate(isbn: str) -> str:
    return f"{isbn[0]}-{isbn[1:4]}-{isbn[4:9]}-{isbn[9]}"


def _space(isbn: str, i: int) -> str:
    return f"{isbn[0]} {isbn[1:4]} {isbn[4:9]} {isbn[9]}" if i % 2 == 0 else f"{isbn} "


def _invalid_check(digits: IntArray, shift: int) -> str:
    wrong = (int(digits[9]) + 1 + shift % 10) % 11
    body = "".join(str(int(d)) for d in digits[:9])
    return body + ("X" if wrong == 10 else str(wrong))


def _write_ratings(
    rng: np.random.Generator, path: Path, cat: _Catalogue, users: _Users, ratings: _Ratings
) -> dict[str, int]:
    """BX-Book-Ratings.csv with formatting dirt, bad ISBNs and exact duplicate rows."""
    n = ratings.user.size
    raw = np.array(cat.isbn, dtype="U13")[ratings.isbn]
    perm = rng.permutation(n)
    counts = {
        "hyphenated": max(10, round(0.002 * n)),
        "spaced": max(10, round(0.002 * n)),
        "invalid_check": max(5, round(0.0015 * n)),
        "unknown": max(5, round(0.004 * n)),
    }
    rows: dict[str, IntArray] = {}
    at = 0
    for name, k in counts.items():
        rows[name] = np.sort(perm[at : at + k])
        at += k
    rest = perm[at:]
    x_rows = np.sort(rest[cat.isbn_digits[ratings.isbn[rest], 9] == 10])
    rows["lower_x"] = x_rows[_pick(rng, x_rows.size, max(5, round(0.05 * x_rows.size)))]

    for i, r in enumerate(rows["hyphenated"].tolist()):
        raw[r] = _hyphenate(str(raw[r])) if i % 3 else _hyphenate(str(raw[r])).lower()
    for i, r in enumerate(rows["spaced"].tolist()):
        raw[r] = _space(str(raw[r]), i)
    for i, r in enumerate(rows["invalid_check"].tolist()):
        raw[r] = _invalid_check(cat.isbn_digits[ratings.isbn[r]], i)
    for r in rows["lower_x"].tolist():
        raw[r] = str(raw[r]).lower()
    # ISBNs that name no book: a small pool, some of them rated several times.
    pool_digits = _isbn_digits(rng, max(3, counts["unknown"] // 3), avoid=_bodies(cat.isbn_digits))
    pool = np.array(_isbn_strings(pool_digits), dtype="U13")
    pick = rng.choice(pool.size, size=counts["unknown"], p=_zipf(pool.size, 1.0))
    raw[rows["unknown"]] = pool[pick]

    uid = users.user_id[ratings.user]
    rating = ratings.rating
    dup = _pick(rng, n, max(5, round(0.001 * n)))
    uid = np.concatenate([uid, uid[dup]])
    raw = np.concatenate([raw, raw[dup]])
    rating = np.concatenate([rating, rating[dup]])

    # Sorted by user, then ISBN text, like the dump.
    _, isbn_rank = np.unique(raw.astype("S13"), return_inverse=True)
    order = np.lexsort((isbn_rank, uid))
    header = ";".join(f'"{h}"' for h in RATINGS_HEADER)
    lines = [header]
    lines += [
        f'"{u}";"{i}";"{r}"'
        for u, i, r in zip(
            uid[order].tolist(), raw[order].tolist(), rating[order].tolist(), strict=True
        )
    ]
    _write_bx(path, lines)
    stats = {f"ratings_isbn_{k}": int(v.size) for k, v in rows.items()}
    stats["ratings_duplicate_rows"] = int(dup.size)
    stats["ratings_unknown_isbn_pool"] = int(pool.size)
    stats["ratings_rows"] = len(lines) - 1
    stats["ratings_implicit"] = int((rating == 0).sum())
    return stats


def _write_bx(path: Path, lines: Sequence[str]) -> None:
    """Write a BX file: CRLF, latin-1 (fails loudly on a character latin-1 cannot hold)."""
    _write_bytes(path, (BX_NEWLINE.join(lines) + BX_NEWLINE).encode(BX_ENCODING))


def _write_users(rng: np.random.Generator, path: Path, users: _Users) -> dict[str, int]:
    """BX-Users.csv: 'city, state, country', ages with NULLs and impossible values."""
    n = users.user_id.size
    places = [
        (f"{city}, {state}, {country}", cw * pw)
        for (country, cities), cw in zip(LOCATIONS.items(), COUNTRY_WEIGHTS, strict=True)
        for (city, state), pw in zip(cities, _zipf(len(cities), 1.0).tolist(), strict=True)
    ]
    p = np.array([w for _, w in places])
    locs = [places[i][0] for i in rng.choice(len(places), size=n, p=p / p.sum()).tolist()]

    perm = rng.permutation(n)
    k_na, k_empty = max(2, round(0.004 * n)), max(2, round(0.003 * n))
    k_no_state, k_no_country = max(2, round(0.02 * n)), max(2, round(0.005 * n))
    at = 0
    for r in perm[at : at + k_na].tolist():
        locs[r] = "n/a, n/a, n/a"
    at += k_na
    for r in perm[at : at + k_empty].tolist():
        locs[r] = ""
    at += k_empty
    for r in perm[at : at + k_no_state].tolist():
        city, _, country_name = locs[r].split(", ")
        locs[r] = f"{city}, , {country_name}"
    at += k_no_state
    for r in perm[at : at + k_no_country].tolist():
        city, state, _ = locs[r].split(", ")
        locs[r] = f"{city}, {state}, "
    at += k_no_country

    age = np.clip(np.rint(14 + rng.gamma(3.0, 6.5, size=n)), 10, 95).astype(np.int64)
    null = rng.random(n) < 0.4
    perm = rng.permutation(n)
    k0, k244, k_bad = max(2, round(0.005 * n)), max(1, round(0.0002 * n)), max(3, round(0.001 * n))
    age[perm[:k0]] = 0
    age[perm[k0 : k0 + k244]] = 244
    bad = perm[k0 + k244 : k0 + k244 + k_bad]
    age[bad] = np.array(IMPOSSIBLE_AGES)[rng.integers(len(IMPOSSIBLE_AGES), size=bad.size)]
    null[perm[: k0 + k244 + k_bad]] = False

    header = ";".join(f'"{h}"' for h in USERS_HEADER)
    lines = [header]
    lines += [
        f'"{u}";"{loc}";' + ("NULL" if nl else f'"{a}"')
        for u, loc, a, nl in zip(
            users.user_id.tolist(), locs, age.tolist(), null.tolist(), strict=True
        )
    ]
    _write_bx(path, lines)
    return {
        "users_age_null": int(null.sum()),
        "users_age_0": int(k0),
        "users_age_244": int(k244),
        "users_age_other_impossible": int(k_bad),
        "users_location_na": int(k_na),
        "users_location_empty": int(k_empty),
        "users_location_no_state": int(k_no_state),
        "users_location_no_country": int(k_no_country),
    }


def _broken_title_field(kind: str, title: str, noun: str) -> str:
    """The title field (delimiters included) of a broken line of the given kind."""
    if kind == "unescaped_quote":  # a bare '"' then ';' from an entity: csv splits at '&amp;'
        return f'"{title} "{noun}" Years &amp; After"'
    if kind == "unquoted_semicolon":  # the field lost its quotes and holds a ';'
        return f"{title}; Part Two"
    # backslash_quote_end, like the DK Readers lines: MySQL escaped the closing quote.
    return f'"{title} (Level 4: Proficient Readers)\\"'


def _write_books(
    rng: np.random.Generator, path: Path, cat: _Catalogue, per_kind: int
) -> dict[str, object]:
    """BX-Books.csv in shuffled order with years, authors, entities and broken lines dirty."""
    n = cat.n_isbns
    perm = rng.permutation(n)
    k_year0 = max(3, round(0.015 * n))
    k_future = max(2, round(0.0005 * n))
    k_unknown = max(2, round(0.001 * n))
    k_empty = max(2, round(0.0005 * n))
    k_broken = len(BROKEN_KINDS)
    year = cat.isbn_year.copy()
    at = 0
    year[perm[:k_year0]] = 0
    at += k_year0
    fut = perm[at : at + k_future]
    year[fut] = np.array(FUTURE_YEARS)[np.arange(fut.size) % len(FUTURE_YEARS)]
    at += k_future
    author = [cat.author_name[a] for a in cat.work_author[cat.isbn_work].tolist()]
    for r in perm[at : at + k_unknown].tolist():
        author[r] = "Unknown"
    at += k_unknown
    for r in perm[at : at + k_empty].tolist():
        author[r] = ""
    at += k_empty

    title_field = [f'"{cat.work_title[w]}"' for w in cat.isbn_work.tolist()]
    broken: list[dict[str, object]] = []
    nouns = rng.integers(len(NOUNS), size=k_broken * per_kind)
    b_rows = perm[at : at + k_broken * per_kind].tolist()
    for i, r in enumerate(b_rows):
        kind = BROKEN_KINDS[i % k_broken]
        title = cat.work_title[int(cat.isbn_work[r])]
        title_field[r] = _broken_title_field(kind, title, NOUNS[int(nouns[i])])
        broken.append({"isbn": cat.isbn[r], "kind": kind, "csv_fields": BROKEN_KIND_FIELDS[kind]})
    broken.sort(key=lambda b: str(b["isbn"]))

    header = ";".join(f'"{h}"' for h in BOOKS_HEADER)
    url = "http://images.amazon.com/images/P/"
    years = year.tolist()
    publisher = [cat.publishers[i] for i in cat.isbn_publisher.tolist()]
    lines = [header]
    lines += [
        f'"{i}";{title_field[r]};"{author[r]}";"{years[r]}";"{publisher[r]}";'
        f'"{url}{i}.01.THUMBZZZ.jpg";"{url}{i}.01.MZZZZZZZ.jpg";"{url}{i}.01.LZZZZZZZ.jpg"'
        for r, i in ((r, cat.isbn[r]) for r in rng.permutation(n).tolist())
    ]
    _write_bx(path, lines)
    with_amp = sum("&amp;" in t for t in title_field)
    return {
        "books_year_zero": k_year0,
        "books_year_future": k_future,
        "books_author_unknown": k_unknown,
        "books_author_empty": k_empty,
        "books_title_amp": with_amp,
        "broken_book_lines": broken,
    }


# --------------------------------------------------------------------------- Open Library


def _raw_subject(clean: str, variant: int) -> str:
    """One of the spellings Open Library uses for a clean subject."""
    canon = clean[0].upper() + clean[1:]
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
    return f"{PLACES[i % len(PLACES)]} -- {primary.capitalize()}"


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


def _write_text(path: Path, lines: Sequence[str]) -> None:
    """UTF-8, LF line ends: the Open Library dump convention."""
    _write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so an interrupted run leaves no half file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --------------------------------------------------------------------------- truth + entry


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


def _quiet(_message: str) -> None:
    pass


def generate(
    out_dir: Path,
    scale: str = "tiny",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Write the demo files into ``out_dir`` (created if needed) and say what was written.

    Same ``scale`` and ``seed`` give byte-identical files.  ``progress`` hears one short line
    per step, which matters at the ``bookcrossing`` scale (tens of seconds).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    sc = SCALES[scale]
    say = progress if progress is not None else _quiet
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One stream per stage, so changing one stage leaves the others' draws alone.
    r_cat, r_users, r_rate, r_books, r_ufile, r_rfile, r_ol = np.random.default_rng(seed).spawn(7)

    say(f"catalogue: {sc.n_works:,} works, their authors, series and editions")
    cat = _make_catalogue(r_cat, sc)
    say(f"users: {sc.n_users:,} with tastes")
    users = _make_users(r_users, sc, cat)
    say(f"ratings: sampling ~{sc.n_ratings:,} rows")
    ratings = _sample_ratings(r_rate, cat, users)

    say(f"writing {BOOKS_FILE} ({cat.n_isbns:,} books)")
    book_stats = _write_books(r_books, out / BOOKS_FILE, cat, sc.broken_lines_per_kind)
    say(f"writing {USERS_FILE}")
    user_stats = _write_users(r_ufile, out / USERS_FILE, users)
    say(f"writing {RATINGS_FILE}")
    rating_stats = _write_ratings(r_rfile, out / RATINGS_FILE, cat, users, ratings)
    say("writing Open Library dumps")
    work_keys, author_keys, ol_stats = _write_ol(r_ol, out, cat)

    dirt: dict[str, object] = {**book_stats, **user_stats, **rating_stats, **ol_stats}
    say(f"writing {TRUTH_FILE}")
    truth = _truth(scale, seed, cat, users, work_keys, author_keys, dirt)
    _write_bytes(
        out / TRUTH_FILE, json.dumps(truth, ensure_ascii=False, separators=(",", ":")).encode()
    )

    broken = book_stats["broken_book_lines"]
    assert isinstance(broken, list)
    return DemoSummary(
        out_dir=out,
        scale=scale,
        seed=seed,
        users=int(users.user_id.size),
        works=cat.n_works,
        isbns=cat.n_isbns,
        authors=len(cat.author_name),
        series=len(cat.series_name),
        subjects=len(cat.subjects),
        ratings=rating_stats["ratings_rows"],
        implicit_ratings=rating_stats["ratings_implicit"],
        duplicate_rating_rows=rating_stats["ratings_duplicate_rows"],
        broken_book_lines=len(broken),
        missplit_book_lines=sum(1 for b in broken if b["csv_fields"] != len(BOOKS_HEADER)),
        ol_editions=ol_stats["ol_editions"],
        ol_works=ol_stats["ol_works"],
        books_csv=out / BOOKS_FILE,
        users_csv=out / USERS_FILE,
        ratings_csv=out / RATINGS_FILE,
        ol_editions_txt=out / OL_EDITIONS_FILE,
        ol_works_txt=out / OL_WORKS_FILE,
        truth_json=out / TRUTH_FILE,
    )
