"""What is served is decided by paired bootstraps over users, never by a fixed margin.

Each component's per-user NDCG@10 gain over the simpler pipeline is measured on the
eval half: users that played no part in choosing its settings, so its mean is an
unbiased estimate. Two rules:

- **prove the gain** (the reranker: about twice a call's serving CPU): served when the
  gain's 95% interval lies above 0;
- **better on average** (the item-item blend: one sparse product more a call, and ALS
  alone is a point of its own weight grid): served when the mean gain is above 0.
  Asking it to prove its gain made the choice flip between seeds on a small eval
  half: CiaoDVD, 738 users, +0.0061 [-0.0022, +0.0141] served ALS alone, 0.79x of
  EASE alone on the held-out months, where another seed's +0.0094 [+0.0033,
  +0.0155] served the blend (docs/models.md).

A cold-start weight is kept when it is not worse than the pure prior within its
interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.evaluation.bootstrap import Interval, paired
from trainer.evaluation.metrics import RankingReport

PROVE_GAIN = "interval above 0"
BETTER_ON_AVERAGE = "mean above 0"


@dataclass(frozen=True)
class Decision:
    component: str
    served: bool
    gain: Interval  # NDCG@10 of (with component) - (without), per user
    against: str
    rule: str = PROVE_GAIN

    def row(self) -> dict[str, Any]:
        return {
            "served": self.served,
            "against": self.against,
            "ndcg@10_gain": self.gain.row(),
            "rule": self.rule,
            "reason": self.reason(),
        }

    def reason(self) -> str:
        what = self.rule.removesuffix(" above 0")
        verdict = "above 0: served" if self.served else "not above 0: not served"
        return f"NDCG@10 gain over {self.against} {self.gain.text()}; {what} {verdict}"


def decide(
    component: str,
    with_it: RankingReport,
    without: RankingReport,
    against: str,
    seed: int,
    rule: str = PROVE_GAIN,
) -> Decision:
    """Serve ``component`` when its paired gain's interval excludes 0 from above
    (``PROVE_GAIN``), or when its mean gain is above 0 (``BETTER_ON_AVERAGE``)."""
    gain = paired(with_it.per_user_ndcg, without.per_user_ndcg, seed)
    served = gain.excludes_zero_above() if rule == PROVE_GAIN else gain.mean > 0.0
    return Decision(component, served, gain, against, rule)


def not_worse(candidate: RankingReport, reference: RankingReport, seed: int) -> Interval:
    """Paired gain of ``candidate`` over ``reference``; the candidate may stand when its
    interval's upper end is >= 0 (it is not shown to be worse)."""
    return paired(candidate.per_user_ndcg, reference.per_user_ndcg, seed)
