"""The cleaning report: for every rule, rows in, rows out and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RuleCount:
    rule: str
    rows_in: int
    rows_out: int
    why: str

    @property
    def dropped(self) -> int:
        return self.rows_in - self.rows_out


@dataclass
class CleaningReport:
    rules: list[RuleCount] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    # Rules the source did not declare (RawDataset.rules): left out unless they drop rows.
    undeclared: frozenset[str] = frozenset()

    def add(self, rule: str, rows_in: int, rows_out: int, why: str) -> None:
        if rule in self.undeclared and rows_in == rows_out:
            return
        self.rules.append(RuleCount(rule, rows_in, rows_out, why))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": [
                {"rule": r.rule, "rows_in": r.rows_in, "rows_out": r.rows_out, "why": r.why}
                for r in self.rules
            ],
            "notes": self.notes,
        }

    def markdown(self) -> str:
        lines = ["| rule | rows in | rows out | dropped | why |", "|---|---:|---:|---:|---|"]
        lines += [
            f"| {r.rule} | {r.rows_in} | {r.rows_out} | {r.dropped} | {r.why} |" for r in self.rules
        ]
        return "\n".join(lines)
