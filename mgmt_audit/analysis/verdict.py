"""Per-family verdict: ``signal``, ``no_signal`` or ``inconclusive``, with its evidence in words and
numbers. Callers fill a ``FamilyEvidence`` with what they have; ``judge`` applies these rules.

Primary statistic: the mean AUC over the family's runs (seeds), or a reported AUC with its class
sizes. Its interval is mean +- z * sqrt(mean DeLong variance): seeds scored on the same patients
share the patient-sampling error, so their errors are treated as fully correlated (conservative).
Without runs, the Hanley–McNeil interval of the reported number.

Its p-value (one-sided, H1: AUC > 0.5): from the label-permutation null when at least
``MIN_NULL_TRIALS`` null AUCs are given ((1 + #null >= observed) / (1 + n)); otherwise the
Mann–Whitney test of the single run, or the analytic Mann–Whitney null at the smallest run's class
sizes for a mean over several runs (conservative: a mean of seeds varies less under the null than
one run).
When ``trials_tried`` > 1 the reported runs were chosen among that many trials, and the p-value is
Šidák-adjusted: 1 - (1 - p)^N.

Rules, at ``alpha`` (0.05):
1. ``signal``: the adjusted p < alpha and the interval lies above 0.5.
2. ``inconclusive`` when the interval lies below 0.5 (worse than chance beyond error: inverted
   labels or a bug, not "no signal").
3. ``no_signal``: the raw (unadjusted) p >= alpha AND the evidence is sufficient: the AUC detectable
   with 80 % power at this size is <= ``MAX_DETECTABLE_AUC``, or a planted-signal power figure shows
   what the pipeline detects; and the positive control (when given) separated (>= ``CONTROL_MIN``).
   The detectable effect is always stated: no verdict says a signal is proved absent.
4. ``inconclusive`` otherwise (beyond chance before selection but not after, p and interval
   disagreeing, too few cases, a failed positive control).
Bimodality, the chance-loss plateau and probe separability are reported as supporting evidence;
they do not change the verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from mgmt_audit.analysis import auc as auc_mod
from mgmt_audit.analysis import nulls
from mgmt_audit.analysis.bimodality import dip_test
from mgmt_audit.analysis.chance_loss import chance_plateau
from mgmt_audit.errors import AnalysisInputError

SIGNAL, NO_SIGNAL, INCONCLUSIVE = "signal", "no_signal", "inconclusive"
MIN_NULL_TRIALS = 19  # the smallest empirical p is 1/(n+1): 19 trials can reach 0.05
MAX_DETECTABLE_AUC = 0.9
CONTROL_MIN = 0.9
POWER = 0.8
CHANCE_EPOCHS = 3  # a run is at chance when its last 3 epochs' losses lie within 0.01 of H(p)


@dataclass(frozen=True)
class ReportedAUC:
    """A number from a paper: the AUC and the class sizes of the set it was measured on."""

    auc: float
    n_pos: int
    n_neg: int


@dataclass(frozen=True)
class PowerFigure:
    """From planted-signal cohorts: the AUC the pipeline detected at a planted strength."""

    detectable_auc: float
    planted_strength: float | None = None


@dataclass(frozen=True)
class FamilyEvidence:
    """Everything known about one model family; every part but ``family`` is optional.

    ``runs``: per seed, (labels, scores) on the evaluation patients. ``reported``: used when there
    are no runs. ``null_aucs``: AUCs of label-permutation trials. ``trials_tried``: how many trials
    the reported runs were selected from (1 = no selection). Loss curves: per run, per epoch, with
    ``positive_share`` for the chance loss. Probe separability in [0, 1] of the final layer for this
    family and for the MNIST control.
    """

    family: str
    runs: Sequence[tuple[Any, Any]] = ()
    reported: ReportedAUC | None = None
    null_aucs: Sequence[float] | None = None
    trials_tried: int = 1
    train_losses: Sequence[Sequence[float]] = ()
    val_losses: Sequence[Sequence[float]] = ()
    positive_share: float | None = None
    probe_separability: float | None = None
    control_separability: float | None = None
    power: PowerFigure | None = None
    alpha: float = 0.05


@dataclass(frozen=True)
class Verdict:
    """The verdict, one evidence sentence, the rule's reason and the numbers behind them."""

    family: str
    verdict: str
    sentence: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "verdict": self.verdict,
            "sentence": self.sentence,
            "reason": self.reason,
            "numbers": self.numbers,
        }


def _primary(ev: FamilyEvidence) -> dict[str, Any]:
    """Mean/reported AUC, its interval, class sizes and raw analytic p."""
    z = stats.norm.ppf(1 - ev.alpha / 2)
    if ev.runs:
        per_run = []
        for y, score in ev.runs:
            labels, s = auc_mod.check_binary(y, score)
            per_run.append(
                (
                    auc_mod.roc_auc(labels, s),
                    auc_mod.delong_variance(labels, s),
                    int(labels.sum()),
                    int((~labels).sum()),
                )
            )
        aucs = np.array([r[0] for r in per_run])
        mean = float(aucs.mean())
        half = z * float(np.sqrt(np.mean([r[1] for r in per_run])))
        n_pos, n_neg = min(r[2] for r in per_run), min(r[3] for r in per_run)
        if len(per_run) == 1:
            p = auc_mod.auc_pvalue(*ev.runs[0])
        else:
            p = nulls.null_pvalue(mean, n_pos, n_neg)
        return {
            "auc": mean, "ci_low": max(mean - half, 0.0), "ci_high": min(mean + half, 1.0),
            "n_runs": len(per_run), "run_aucs": aucs.tolist(), "n_pos": n_pos, "n_neg": n_neg,
            "p_analytic": p,
        }
    if ev.reported is not None:
        r = ev.reported
        half = z * auc_mod.hanley_mcneil_se(r.auc, r.n_pos, r.n_neg)
        return {
            "auc": r.auc, "ci_low": max(r.auc - half, 0.0), "ci_high": min(r.auc + half, 1.0),
            "n_runs": 0, "run_aucs": [], "n_pos": r.n_pos, "n_neg": r.n_neg,
            "p_analytic": nulls.null_pvalue(r.auc, r.n_pos, r.n_neg),
        }
    raise AnalysisInputError(
        f"family {ev.family!r} has neither runs nor a reported AUC: pass "
        "runs=[(labels, scores), ...] or reported=ReportedAUC(auc, n_pos, n_neg)"
    )


def judge(ev: FamilyEvidence) -> Verdict:
    """Apply the module's rules to one family's evidence."""
    num = _primary(ev)
    alpha, n_tr = ev.alpha, max(int(ev.trials_tried), 1)
    parts: list[str] = []
    what = f"mean AUC {num['auc']:.2f}" if num["n_runs"] > 1 else f"AUC {num['auc']:.2f}"
    over = f" over {num['n_runs']} seeds" if num["n_runs"] > 1 else ""
    parts.append(
        f"{what} [{num['ci_low']:.2f}, {num['ci_high']:.2f}]{over} "
        f"({num['n_pos']} positive / {num['n_neg']} negative)"
    )

    p_raw, null_name = num["p_analytic"], "the analytic Mann–Whitney null"
    if ev.null_aucs is not None and len(ev.null_aucs) >= MIN_NULL_TRIALS:
        perm = nulls.permutation_null(ev.null_aucs, observed=num["auc"], alpha=alpha)
        p_raw, null_name = perm.p_value, f"the permutation null of {perm.n} trials"
        num["null_band"] = [perm.low, perm.high]
    p_adj = nulls.sidak(p_raw, n_tr)
    num.update(p_value=p_raw, p_value_selection_adjusted=p_adj, trials_tried=n_tr, null=null_name)
    where = "beyond" if p_raw < alpha else "inside"
    parts.append(f"{where} {null_name} (p = {p_raw:.3g})")
    if n_tr > 1:
        parts.append(f"after selection among {n_tr} trials p = {p_adj:.3g}")

    n_best = max(n_tr, num["n_runs"])
    if n_best > 1:
        best = max(num["run_aucs"]) if num["run_aucs"] else num["auc"]
        exp_best = nulls.expected_best_null_auc(num["n_pos"], num["n_neg"], n_best)
        best_adj = nulls.selection_adjusted_pvalue(best, num["n_pos"], num["n_neg"], n_best)
        num.update(best_auc=best, expected_best_null_auc=exp_best, best_p_adjusted=best_adj)
        parts.append(
            f"best trial {best:.2f} vs {exp_best:.2f} expected from the best of {n_best} null "
            f"trials (adjusted p = {best_adj:.3g})"
        )

    parts.extend(_supporting(ev, num))

    detect = nulls.detectable_auc(num["n_pos"], num["n_neg"], alpha, POWER)
    num["detectable_auc"] = detect
    parts.append(
        f"an AUC >= {detect:.2f} would be detected with {POWER:.0%} power at this size"
    )
    if ev.power is not None:
        strength = (
            f" at planted strength {ev.power.planted_strength:g}"
            if ev.power.planted_strength is not None
            else ""
        )
        parts.append(f"planted signal: AUC >= {ev.power.detectable_auc:.2f} detected{strength}")

    label, reason = _rule(ev, num, p_raw, p_adj, detect)
    return Verdict(ev.family, label, "; ".join(parts), reason, num)


def _rule(ev: FamilyEvidence, num: dict, p_raw: float, p_adj: float, detect: float):
    alpha = ev.alpha
    if p_adj < alpha and num["ci_low"] > 0.5:
        return SIGNAL, "beyond chance at alpha after any selection adjustment, CI above 0.5"
    if num["ci_high"] < 0.5:
        return INCONCLUSIVE, "AUC below chance beyond its CI: check the label coding or pipeline"
    if p_raw < alpha:
        if p_adj >= alpha:
            return INCONCLUSIVE, "beyond chance before the selection adjustment, not after"
        return INCONCLUSIVE, "p-value below alpha but the CI includes 0.5"
    if ev.control_separability is not None and ev.control_separability < CONTROL_MIN:
        return INCONCLUSIVE, (
            f"the positive control separated only {ev.control_separability:.2f} "
            f"(< {CONTROL_MIN}): the pipeline may be unable to learn any signal"
        )
    if detect > MAX_DETECTABLE_AUC and ev.power is None:
        return INCONCLUSIVE, (
            f"too few cases: only an AUC >= {detect:.2f} would be detectable "
            f"(> {MAX_DETECTABLE_AUC}) and no planted-signal power figure was given"
        )
    return NO_SIGNAL, "nothing beyond chance, with enough cases to detect the stated effect"


def _supporting(ev: FamilyEvidence, num: dict) -> list[str]:
    parts = []
    if ev.runs:
        pooled = np.concatenate([np.asarray(s, dtype=float).ravel() for _, s in ev.runs])
        if np.ptp(pooled) > 0:
            _, dip_p = dip_test(pooled)
            num["dip_p"] = dip_p
            shape = "unimodal" if dip_p >= ev.alpha else "multimodal"
            parts.append(f"predictions {shape} (dip p = {dip_p:.2g})")
        else:
            parts.append("predictions constant")
    if ev.positive_share is not None:
        for name, curves in (("validation", ev.val_losses), ("training", ev.train_losses)):
            if len(curves) == 0:
                continue
            if min(len(c) for c in curves) < CHANCE_EPOCHS:
                parts.append(f"{name} loss curves too short (< {CHANCE_EPOCHS} epochs) to judge")
                continue
            chance = chance_plateau(curves, ev.positive_share, k=CHANCE_EPOCHS)
            num[f"{name}_runs_at_chance"] = [chance.n_at_chance, chance.n_runs]
            num["chance_loss"] = chance.entropy
            parts.append(
                f"{chance.n_at_chance}/{chance.n_runs} runs' {name} loss ends at the chance "
                f"loss {chance.entropy:.3f}"
            )
    if ev.probe_separability is not None:
        text = f"final-layer separability {ev.probe_separability:.2f}"
        if ev.control_separability is not None:
            text += f" vs {ev.control_separability:.2f} on the MNIST control"
        parts.append(text)
    return parts
