"""The named sizes of the demo data set.

Why: the CLI (``--scale``), the tests and the benchmarks pick a size by name, and they need
the names without importing the generator's stages; each ``Scale`` also carries the shape
knobs (popularity skew, user activity spread, how much dirt) so a size is one reviewed entry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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

    def times(self, k: int) -> Scale:
        """The same shape with ``k`` times the users, works and ratings."""
        return replace(
            self, n_users=self.n_users * k, n_works=self.n_works * k, n_ratings=self.n_ratings * k
        )


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
}
# Four times the real data set, for benchmarks of how cost grows; sixteen times: where
# the one-machine trainer stops (docs/scale.md).
SCALES["bookcrossing4x"] = SCALES["bookcrossing"].times(4)
SCALES["bookcrossing16x"] = SCALES["bookcrossing"].times(16)
