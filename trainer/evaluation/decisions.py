"""What is served is decided by paired bootstraps over users, never by a fixed margin.

A component (the item-item blend, the reranker) is served when the 95% interval
of its per-user NDCG@10 gain over the simpler pipeline lies above 0 on the
eval half: users that played no part in choosing its settings. A cold-start
weight is kept when it is not worse than the pure prior within its interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.evaluation.bootstrap import Interval, paired
from trainer.evaluation.metrics import RankingReport


@dataclass(frozen=True)
class Decision:
    component: str
    served: bool
    gain: Interval  # NDCG@10 of (with component) - (without), per user
    against: str

    def row(self) -> dict[str, Any]:
        return {
            "served": self.served,
            "against": self.against,
            "ndcg@10_gain": self.gain.row(),
            "reason": self.reason(),
        }

    def reason(self) -> str:
        verdict = "above 0: served" if self.served else "not above 0: not served"
        return f"NDCG@10 gain over {self.against} {self.gain.text()}; interval {verdict}"


def decide(
    component: str, with_it: RankingReport, without: RankingReport, against: str, seed: int
) -> Decision:
    """Serve ``component`` when its paired gain's interval excludes 0 from above."""
    gain = paired(with_it.per_user_ndcg, without.per_user_ndcg, seed)
    return Decision(component, gain.excludes_zero_above(), gain, against)


def not_worse(candidate: RankingReport, reference: RankingReport, seed: int) -> Interval:
    """Paired gain of ``candidate`` over ``reference``; the candidate may stand when its
    interval's upper end is >= 0 (it is not shown to be worse)."""
    return paired(candidate.per_user_ndcg, reference.per_user_ndcg, seed)
