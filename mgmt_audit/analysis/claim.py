"""``mgmt-audit audit-claim``: an AUC printed in a paper, judged from its class sizes alone.

The printed digits stand for an interval (``0.59`` is anything in [0.585, 0.595]); the verdict is
judged at both ends and says when it depends on rounding. The interval is Hanley & McNeil's (1982),
the test the Mann–Whitney null of one AUC, the selection correction Šidák's over the trials the number
was the best of (:func:`mgmt_audit.analysis.verdict.judge`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mgmt_audit.analysis import nulls
from mgmt_audit.analysis.reported import PrintedNumber, parse_proportion
from mgmt_audit.analysis.verdict import (
    DEFAULT_ALPHA,
    DEFAULT_MARGIN,
    REPORTED,
    Evidence,
    ReportedAUC,
    Verdict,
    format_verdict,
    judge,
)
from mgmt_audit.errors import AnalysisInputError


@dataclass(frozen=True)
class ClaimResult:
    """A reported AUC's audit: the parsed inputs, the null band of one run at these sizes and the
    verdict (whose numbers every output reads)."""

    auc: PrintedNumber
    n_pos: int
    n_neg: int
    trials_tried: int
    null_band: tuple[float, float]
    verdict: Verdict
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: verdict, auc, ci_low, ci_high, margin, p_value, ... at the top level."""
        v = self.verdict
        evidence = v.to_dict()
        return {
            **{k: evidence[k] for k in ("verdict", "auc", "ci_low", "ci_high", "margin", "p_value",
                                        "p_value_adjusted")},
            "bound_words": v.bound_words, "reason": v.reason,
            "inputs": {"auc": asdict(self.auc), "n_pos": self.n_pos, "n_neg": self.n_neg,
                       "trials_tried": self.trials_tried},
            "rounding": evidence["rounding"],
            "expected_best_null_auc": v.test.expected_best_null_auc,
            "auc_selection_adjusted": v.estimate.auc_adjusted,
            "null_band": list(self.null_band), "detectable_auc": v.detectable_auc,
            "explanation": self.explanation, "evidence": evidence,
        }


def audit_claim(
    auc: str | float, n_pos: int, n_neg: int, trials_tried: int = 1,
    margin: float = DEFAULT_MARGIN, alpha: float = DEFAULT_ALPHA,
) -> ClaimResult:
    """Audit a reported AUC ("0.59", "59%", or a float) measured on ``n_pos`` positive and ``n_neg``
    negative patients, the best of ``trials_tried`` trials, against the smallest AUC of interest
    ``margin``. Raises AnalysisInputError (naming the parameter) for an AUC outside [0, 1], class
    sizes below 1 or trials_tried below 1."""
    if trials_tried < 1:
        raise AnalysisInputError(f"trials_tried must be >= 1, got {trials_tried}", parameter="trials_tried")
    for name, value in (("n_pos", n_pos), ("n_neg", n_neg)):
        if value < 1:
            raise AnalysisInputError(f"{name} must be >= 1, got {value}", parameter=name)
    printed = parse_proportion(auc, "an AUC")
    low, high = printed.rounded
    verdict = judge(Evidence(
        "claim", reported=ReportedAUC(printed.value, n_pos, n_neg, low, high), design=REPORTED,
        selection=trials_tried, margin=margin, alpha=alpha,
    ))
    band = nulls.null_band(n_pos, n_neg, 2 * alpha)
    return ClaimResult(printed, n_pos, n_neg, trials_tried, band, verdict,
                       _explain(printed, n_pos, n_neg, trials_tried, band, verdict))


def _explain(printed: PrintedNumber, n_pos: int, n_neg: int, trials: int, band: tuple[float, float],
             v: Verdict) -> str:
    est, test = v.estimate, v.test
    level = round(100 * (1 - 2 * v.alpha))
    low, high = printed.rounded
    text = (
        f"A printed AUC of {printed.text} (a true value in [{low:.4g}, {high:.4g}]) on {n_pos} positive "
        f"and {n_neg} negative patients has the {level}% Hanley–McNeil interval [{est.ci_low:.3f}, "
        f"{est.ci_high:.3f}]. If the images carried no information, one run would land in "
        f"[{band[0]:.3f}, {band[1]:.3f}] {level}% of the time and reach {low:.4g} (the lowest value the "
        f"digits allow) or more with probability {test.p_value:.3g}."
    )
    if trials > 1:
        text += (
            f" The best of {trials} null runs is expected to reach {test.expected_best_null_auc:.3f}, and "
            f"reaches {low:.4g} or more with probability {test.p_value_adjusted:.3g}; corrected for "
            f"picking the best, the AUC is about {est.auc_adjusted:.3f}."
        )
    text += f" Verdict at margin {v.margin:g}: {v.verdict} — {v.bound_words}; {v.reason}."
    text += f" An AUC of {v.detectable_auc:.2f} would be found beyond chance with 80% power at this size."
    return text


def format_claim(result: ClaimResult) -> str:
    """A readable summary of ``audit_claim``: every number is read from ``result``."""
    v, est = result.verdict, result.verdict.estimate
    level = round(100 * (1 - 2 * v.alpha))
    lines = [
        f"AUC {result.auc.text} on {result.n_pos}+/{result.n_neg}- after {result.trials_tried} trial(s)",
        f"  {level}% interval (Hanley–McNeil)  [{est.ci_low:.3f}, {est.ci_high:.3f}]",
        f"  p vs chance (one-sided)       {v.test.p_value:.3g}",
    ]
    if result.trials_tried > 1:
        lines += [
            f"  p after best-of-N selection   {v.test.p_value_adjusted:.3g}",
            f"  expected best null AUC        {v.test.expected_best_null_auc:.3f}",
            f"  selection-corrected AUC       {est.auc_adjusted:.3f}",
        ]
    if v.rounding is not None:
        r = v.rounding
        lines.append(f"  rounding                      {r.verdict_low} at {r.low:.4g}, {r.verdict_high} at "
                     f"{r.high:.4g}" + (" — the verdict depends on rounding" if r.depends else ""))
    return "\n".join([*lines, "", *format_verdict(v), "", result.explanation])
