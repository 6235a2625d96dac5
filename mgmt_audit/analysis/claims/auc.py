"""A reported AUC judged from its class sizes: :func:`mgmt_audit.analysis.verdict.judge` on a
:class:`~mgmt_audit.analysis.verdict.ReportedAUC` (Hanley & McNeil's interval, the Mann–Whitney null,
Šidák over the trials), at both ends of its rounding interval; with only the total known, at every
class split the verdict may depend on.
"""

from __future__ import annotations

from dataclasses import dataclass

from mgmt_audit.analysis.reported import PrintedNumber
from mgmt_audit.analysis.verdict import REPORTED, Evidence, ReportedAUC, Verdict, judge
from mgmt_audit.errors import AnalysisInputError


def judge_auc(printed: PrintedNumber, n_pos: int, n_neg: int, trials: int, margin: float, alpha: float) -> Verdict:
    """The verdict on a printed AUC on ``n_pos`` / ``n_neg`` cases, the best of ``trials``."""
    low, high = printed.rounded
    return judge(Evidence("claim", reported=ReportedAUC(printed.value, n_pos, n_neg, low, high),
                          design=REPORTED, selection=trials, margin=margin, alpha=alpha))


@dataclass(frozen=True)
class SplitSearch:
    """A printed AUC on ``n`` cases whose class split is unknown. ``balanced``: the split judged first
    (the most informative one); ``band``: the positive counts (inclusive) around it where the verdict
    is the same as there; outside it the verdict differs (the interval widens as a class shrinks)."""

    n: int
    balanced: Verdict
    band: tuple[int, int]

    @property
    def covers_all(self) -> bool:
        return self.band == (1, self.n - 1)


def search_splits(printed: PrintedNumber, n: int, trials: int, margin: float, alpha: float) -> SplitSearch:
    """Judge a printed AUC at the balanced split of ``n`` and find, by bisection on each side, the
    band of splits with the same verdict. Bisection assumes the verdict changes once on each side
    as the minority class shrinks (the Hanley–McNeil error and the null's spread grow monotonically
    with imbalance; checked against every split in the tests). Raises AnalysisInputError for n < 2."""
    if n < 2:
        raise AnalysisInputError(f"n must be >= 2 to split into two classes, got {n}", parameter="n")
    p0 = (n + 1) // 2
    cache: dict[int, str] = {}

    def verdict_at(p: int) -> str:
        if p not in cache:
            cache[p] = judge_auc(printed, p, n - p, trials, margin, alpha).verdict
        return cache[p]

    centre = judge_auc(printed, p0, n - p0, trials, margin, alpha)
    cache[p0] = centre.verdict
    same_low, other_low = p0, 0  # verdict same at same_low, differs at other_low (0: none yet)
    if verdict_at(1) == centre.verdict:
        same_low = 1
    else:
        other_low = 1
        while same_low - other_low > 1:
            mid = (same_low + other_low) // 2
            if verdict_at(mid) == centre.verdict:
                same_low = mid
            else:
                other_low = mid
    same_high = p0
    if verdict_at(n - 1) == centre.verdict:
        same_high = n - 1
    else:
        other_high = n - 1
        while other_high - same_high > 1:
            mid = (same_high + other_high) // 2
            if verdict_at(mid) == centre.verdict:
                same_high = mid
            else:
                other_high = mid
    return SplitSearch(n, centre, (same_low, same_high))
