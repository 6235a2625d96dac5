"""The verdict: ``signal``, ``signal_below_margin``, ``no_signal`` or ``inconclusive``, relative to a
stated margin, with every number behind it in one typed :class:`Verdict` that the report, ``audit``,
``audit-claim`` and ``summary.json`` read (nothing downstream recomputes a statistic).

The rules are stated once, in the package docstring of :mod:`mgmt_audit.analysis`; this module
implements them. Callers describe what they have in an :class:`Evidence` and call :func:`judge`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from mgmt_audit.analysis import auc as auc_mod
from mgmt_audit.analysis import nulls
from mgmt_audit.analysis.bimodality import bimodality_coefficient, dip_test
from mgmt_audit.analysis.chance_loss import chance_plateau
from mgmt_audit.errors import AnalysisInputError

SIGNAL, SIGNAL_BELOW_MARGIN = "signal", "signal_below_margin"
NO_SIGNAL, INCONCLUSIVE = "no_signal", "inconclusive"
OUTCOMES = (SIGNAL, SIGNAL_BELOW_MARGIN, NO_SIGNAL, INCONCLUSIVE)
DEFAULT_MARGIN = 0.65
DEFAULT_ALPHA = 0.05
POWER = 0.8
CONTROL_MIN = 0.9  # separability the positive control must reach for the pipeline to count as able to learn
CHANCE_EPOCHS = 3  # a run is at chance when its last 3 epochs' losses lie within 0.01 of H(p)
FLOOR_SPEAKS = 0.1  # a pipeline-null p at a floor this low (>= 9 null trials) blocks no_signal
_NORMAL = NormalDist()

# Evaluation designs: what the AUC was measured on.
HELD_OUT_TEST = "held-out test"
OUT_OF_FOLD = "out-of-fold"
VALIDATION = "validation (also used by the search and early stopping)"
GIVEN = "the prediction file's patients"
REPORTED = "a reported number"
DESIGNS = (HELD_OUT_TEST, OUT_OF_FOLD, VALIDATION, GIVEN, REPORTED)


def min_null_trials(alpha: float = DEFAULT_ALPHA, selection: int = 1) -> int:
    """Fewest label-permutation trials whose smallest p, 1 / (n + 1), still decides at ``alpha``
    after Šidák adjustment for ``selection`` configurations (19 at alpha 0.05 without selection)."""
    return math.ceil(1.0 / _sidak_alpha(alpha, selection)) - 1


def _sidak_alpha(alpha: float, selection: int) -> float:
    """Per-comparison level that keeps the family-wise level ``alpha`` over ``selection`` comparisons."""
    return float(-np.expm1(np.log1p(-alpha) / selection))


@dataclass(frozen=True)
class Run:
    """One run's predictions on its evaluation patients: ``labels`` (n,) 0/1, ``scores`` (n,), and the
    patient IDs (n,) when known (runs with IDs are aligned by ID)."""

    labels: Sequence[int] | np.ndarray
    scores: Sequence[float] | np.ndarray
    ids: Sequence[str] | None = None


@dataclass(frozen=True)
class ReportedAUC:
    """A number from a paper: the AUC, the class sizes of the set it was measured on and, when it
    was printed to a few digits, the interval [low, high] of true values it stands for."""

    auc: float
    n_pos: int
    n_neg: int
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Evidence:
    """What is known about one model family (or configuration, or claim).

    ``runs``: seeds (or repetitions of cross-validation, each with its out-of-fold predictions) of
    one configuration, scored on the same patients; ``reported``: used when there are no runs.
    ``design``: what the AUC was measured on (one of ``DESIGNS``). ``selection``: how many
    configurations the judged one was chosen from (pruned and failed included; the seeds of one
    configuration are not a selection). ``pipeline_null``: AUCs of retrained label-permutation trials
    scored on the same evaluation patients. ``margin``: the smallest AUC of interest. Loss curves
    (per run, per epoch) with ``positive_share``, and final-layer probe separability of this family
    and of the MNIST control, are supporting evidence.
    """

    name: str
    runs: Sequence[Run] = ()
    reported: ReportedAUC | None = None
    design: str = GIVEN
    selection: int = 1
    pipeline_null: Sequence[float] | None = None
    margin: float = DEFAULT_MARGIN
    alpha: float = DEFAULT_ALPHA
    train_losses: Sequence[Sequence[float]] = ()
    val_losses: Sequence[Sequence[float]] = ()
    positive_share: float | None = None
    probe_separability: float | None = None
    control_separability: float | None = None
    n_permutations: int = nulls.N_PERMUTATIONS


@dataclass(frozen=True)
class Estimate:
    """The AUC and its interval. ``ci_low`` / ``ci_high`` are one-sided bounds at ``confidence`` each
    (together the two-sided 1 - 2 alpha interval, 90 % at alpha 0.05); after selection among N the
    lower bound is at the Šidák level 1 - (1 - alpha)^(1/N) and ``auc_adjusted`` is the winner's-curse
    corrected (median-unbiased, least favourable case) AUC. ``se``: standard error (AUC units)."""

    auc: float
    auc_adjusted: float
    se: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n_pos: int
    n_neg: int
    n_runs: int
    run_aucs: tuple[float, ...]


@dataclass(frozen=True)
class ChanceTest:
    """The one-sided test of AUC > 0.5 on the evaluation patients, before and after selection."""

    p_value: float
    p_value_adjusted: float
    method: str
    selection: int
    expected_best_null_auc: float | None


@dataclass(frozen=True)
class PipelineNull:
    """Retrained label-permutation trials (the null of the whole pipeline) on the same patients.

    ``p_value`` = (1 + #{null >= observed}) / (1 + n) (Ojala & Garriga 2010), ``p_value_adjusted`` after
    selection; ``floor`` is the smallest attainable p, 1 / (n + 1). ``usable``: the floor allows a
    decision at alpha after selection (``needed`` trials are enough); a p at a floor of at most
    ``FLOOR_SPEAKS`` that cannot decide still blocks ``no_signal`` (the observed AUC beat every one of
    at least 9 null trials); fewer null trials say nothing either way. ``low`` / ``high``: the null
    AUCs' alpha and 1 - alpha quantiles."""

    n: int
    p_value: float
    p_value_adjusted: float
    floor: float
    usable: bool
    needed: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class Bimodality:
    """The shape of each run's predictions: Hartigan's dip-test p and Sarle's bimodality coefficient
    per run (None: constant output), and how many runs are multimodal by the dip test at alpha."""

    dip_p: tuple[float | None, ...]
    coefficient: tuple[float | None, ...]
    n_multimodal: int
    n_runs: int


@dataclass(frozen=True)
class LossPlateau:
    """Runs whose ``split`` ("training" or "validation") loss ends on the chance loss H(p)."""

    split: str
    n_at_chance: int
    n_runs: int
    chance_loss: float


@dataclass(frozen=True)
class Rounding:
    """A printed AUC judged at both ends of the interval its digits stand for."""

    low: float
    high: float
    verdict_low: str
    verdict_high: str

    @property
    def depends(self) -> bool:
        return self.verdict_low != self.verdict_high


@dataclass(frozen=True)
class Verdict:
    """The verdict with its evidence: every number a report or audit shows.

    ``bound_words`` says what the data exclude or cannot exclude ("AUC >= 0.65 excluded", "cannot
    exclude AUC up to 0.81"); ``sentence`` is the evidence in one line; ``supporting`` the supporting
    evidence (bimodality, chance loss, probes), one phrase each.
    """

    name: str
    verdict: str
    reason: str
    bound_words: str
    sentence: str
    margin: float
    alpha: float
    design: str
    estimate: Estimate
    test: ChanceTest
    detectable_auc: float
    pipeline_null: PipelineNull | None = None
    bimodality: Bimodality | None = None
    loss: tuple[LossPlateau, ...] = ()
    probe_separability: float | None = None
    control_separability: float | None = None
    rounding: Rounding | None = None
    supporting: tuple[str, ...] = field(default=())

    @property
    def auc(self) -> float:
        return self.estimate.auc

    @property
    def ci_low(self) -> float:
        return self.estimate.ci_low

    @property
    def ci_high(self) -> float:
        return self.estimate.ci_high

    @property
    def p_value(self) -> float:
        return self.test.p_value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the headline (verdict, auc, ci_low, ci_high, margin, p_value, ...) at the top
        level, then every part as nested objects."""
        data = asdict(self)
        if self.rounding is not None:
            data["rounding"]["depends_on_rounding"] = self.rounding.depends
        return {
            "verdict": self.verdict, "auc": self.auc, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "margin": self.margin, "p_value": self.p_value,
            "p_value_adjusted": self.test.p_value_adjusted, **data,
        }


@dataclass(frozen=True)
class _Point:
    """The estimate and test at one value of the AUC (one end of a printed number's interval)."""

    estimate: Estimate
    test: ChanceTest
    constant: bool


def judge(ev: Evidence) -> Verdict:
    """Apply the rules of :mod:`mgmt_audit.analysis` to one family's evidence.

    Raises AnalysisInputError for a margin outside (0.5, 1], alpha outside (0, 0.5), a selection
    below 1, evidence with neither runs nor a reported AUC, or runs that cannot give an AUC.
    """
    _check(ev)
    ends: tuple[_Point, _Point] | None = None
    if ev.runs:
        main = _from_runs(ev)
    elif ev.reported is not None:
        r = ev.reported
        main = _from_reported(ev, r.auc)
        if r.low is not None and r.high is not None:
            ends = (_from_reported(ev, r.low), _from_reported(ev, r.high))
    else:
        raise AnalysisInputError(
            f"{ev.name!r} has neither runs nor a reported AUC: pass runs=[Run(labels, scores), ...] "
            "or reported=ReportedAUC(auc, n_pos, n_neg)"
        )
    null = _pipeline_null(ev, main.estimate.auc) if ev.pipeline_null is not None and len(ev.pipeline_null) else None
    rounding = None
    if ends is not None:
        low_label, high_label = (_rule(ev, end, null)[0] for end in ends)
        rounding = Rounding(ends[0].estimate.auc, ends[1].estimate.auc, low_label, high_label)
        # what every value the digits stand for supports: chance judged at the low end, the
        # margin at the high end
        low_test = ends[0].test
        low_test = replace(low_test, method=f"{low_test.method}, at {rounding.low:.4g}, the lowest value "
                                            "the printed digits allow")
        main = _Point(_span(main.estimate, ends[0].estimate, ends[1].estimate), low_test, False)
    label, reason = _rule(ev, main, null)
    if rounding is not None and rounding.depends:
        reason += (f" (the verdict depends on rounding: {rounding.verdict_low} at {rounding.low:.4g}, "
                   f"{rounding.verdict_high} at {rounding.high:.4g})")
    est = main.estimate
    detect = nulls.detectable_auc(est.n_pos, est.n_neg, _sidak_alpha(ev.alpha, ev.selection), POWER)
    bimodality = _bimodality(ev) if ev.runs else None
    loss = _loss(ev)
    supporting = _supporting(ev, bimodality, loss)
    words = bound_words(est.ci_low, est.ci_high, ev.margin, label)
    sentence = _sentence(ev, est, main.test, null, label, words)
    return Verdict(
        name=ev.name, verdict=label, reason=reason, bound_words=words, sentence=sentence,
        margin=ev.margin, alpha=ev.alpha, design=ev.design, estimate=est, test=main.test,
        detectable_auc=detect, pipeline_null=null, bimodality=bimodality, loss=loss,
        probe_separability=ev.probe_separability, control_separability=ev.control_separability,
        rounding=rounding, supporting=supporting,
    )


def format_verdict(v: Verdict) -> list[str]:
    """The verdict as printed by ``audit`` and ``audit-claim``: verdict, bounds, reason, evidence."""
    lines = [f"verdict: {v.verdict} (margin {v.margin:g}: {v.bound_words})", f"  why: {v.reason}",
             f"  evidence: {v.sentence}"]
    return lines + [f"  supporting: {s}" for s in v.supporting]


def _check(ev: Evidence) -> None:
    if not 0.5 < ev.margin <= 1.0:
        raise AnalysisInputError(
            f"margin must be in (0.5, 1], the smallest AUC of interest, got {ev.margin}"
        )
    if not 0.0 < ev.alpha < 0.5:
        raise AnalysisInputError(f"alpha must be in (0, 0.5), got {ev.alpha}")
    if ev.selection < 1:
        raise AnalysisInputError(
            f"selection (configurations tried) must be >= 1, got {ev.selection}"
        )
    if ev.design not in DESIGNS:
        raise AnalysisInputError(f"design must be one of {DESIGNS}, got {ev.design!r}")


def _bounds(ev: Evidence, auc: float, se: float) -> tuple[float, float, float]:
    """(selection-adjusted lower bound, upper bound, winner's-curse corrected AUC)."""
    z = _NORMAL.inv_cdf(1 - ev.alpha)
    z_low = _NORMAL.inv_cdf(1 - _sidak_alpha(ev.alpha, ev.selection))
    shift = _NORMAL.inv_cdf(0.5 ** (1.0 / ev.selection)) * se
    return (float(max(auc - z_low * se, 0.0)), float(min(auc + z * se, 1.0)),
            float(min(max(auc - shift, 0.0), 1.0)))


def _expected_best(ev: Evidence, n_pos: int, n_neg: int) -> float | None:
    return nulls.expected_best_null_auc(n_pos, n_neg, ev.selection) if ev.selection > 1 else None


def _from_runs(ev: Evidence) -> _Point:
    labels, matrix, aligned = align_runs(ev.runs)
    constant = all(np.ptp(row) == 0 for row in matrix) if aligned else all(
        np.ptp(np.asarray(r.scores, dtype=float)) == 0 for r in ev.runs)
    if aligned:
        mean = auc_mod.mean_auc(labels, matrix)
        auc, se, run_aucs, n_pos, n_neg = mean.auc, mean.se, mean.run_aucs, mean.n_pos, mean.n_neg
        p = nulls.fixed_predictions_pvalue(labels, matrix, ev.n_permutations)
        if len(run_aucs) == 1:
            method = "DeLong interval, Mann–Whitney test"
            test_method = "Mann–Whitney"
        else:
            method = (f"mean of {len(run_aucs)} runs on the same patients, DeLong interval with their "
                      "covariance estimated")
            test_method = "permutation of the evaluation labels across all runs at once"
    else:
        per_run = []
        for run in ev.runs:
            y, s = auc_mod.check_binary(run.labels, run.scores)
            per_run.append((auc_mod.roc_auc(y, s), np.sqrt(auc_mod.delong_variance(y, s)),
                            int(y.sum()), int((~y).sum())))
        run_aucs = tuple(float(r[0]) for r in per_run)
        auc, se = float(np.mean(run_aucs)), float(np.mean([r[1] for r in per_run]))
        n_pos, n_neg = min(r[2] for r in per_run), min(r[3] for r in per_run)
        p = nulls.null_pvalue(auc, n_pos, n_neg)
        method = (f"mean of {len(run_aucs)} runs on different patients, interval from the mean of their "
                  "DeLong errors (conservative for any correlation)")
        test_method = "Mann–Whitney null at the smallest run's class sizes (conservative for a mean)"
    low, high, adjusted = _bounds(ev, auc, se)
    estimate = Estimate(auc, adjusted, se, low, high, 1 - ev.alpha, method, n_pos, n_neg,
                        len(run_aucs), tuple(run_aucs))
    test = ChanceTest(p, nulls.sidak(p, ev.selection), test_method, ev.selection,
                      _expected_best(ev, n_pos, n_neg))
    return _Point(estimate, test, constant)


def _from_reported(ev: Evidence, value: float) -> _Point:
    r = ev.reported
    se = auc_mod.hanley_mcneil_se(value, r.n_pos, r.n_neg)
    low, high, adjusted = _bounds(ev, value, se)
    estimate = Estimate(value, adjusted, se, low, high, 1 - ev.alpha, "Hanley–McNeil interval",
                        r.n_pos, r.n_neg, 0, ())
    p = nulls.null_pvalue(value, r.n_pos, r.n_neg)
    test = ChanceTest(p, nulls.sidak(p, ev.selection), "Mann–Whitney null of one AUC at these sizes",
                      ev.selection, _expected_best(ev, r.n_pos, r.n_neg))
    return _Point(estimate, test, False)


def align_runs(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray, bool]:
    """(labels (n,), scores (k, n), True) when every run scored the same patients: by ID when all
    runs carry IDs, otherwise by row order when lengths and label sequences agree. Otherwise
    (first run's labels, its scores as (1, n), False): the runs cover different patients.

    Raises AnalysisInputError when runs with IDs give one patient two labels.
    """
    if not runs:
        raise AnalysisInputError("no runs given: pass at least one Run(labels, scores)")
    first = runs[0]
    labels0 = np.asarray(first.labels).astype(int)
    if all(r.ids is not None for r in runs):
        order = sorted(first.ids)
        if len(set(order)) == len(order) and all(sorted(r.ids) == order for r in runs):
            matrix, labels = [], None
            for r in runs:
                index = {pid: i for i, pid in enumerate(r.ids)}
                pick = [index[pid] for pid in order]
                y = np.asarray(r.labels).astype(int)[pick]
                if labels is not None and not np.array_equal(labels, y):
                    raise AnalysisInputError(
                        "the same patient has different labels in different runs: fix the labels"
                    )
                labels = y
                matrix.append(np.asarray(r.scores, dtype=float)[pick])
            return labels, np.vstack(matrix), True
        return labels0, np.asarray(first.scores, dtype=float)[None, :], False
    same = all(len(r.labels) == labels0.size
               and np.array_equal(np.asarray(r.labels).astype(int), labels0) for r in runs)
    if same:
        return labels0, np.vstack([np.asarray(r.scores, dtype=float) for r in runs]), True
    return labels0, np.asarray(first.scores, dtype=float)[None, :], False


def _pipeline_null(ev: Evidence, observed: float) -> PipelineNull:
    summary = nulls.permutation_null(ev.pipeline_null, observed=observed, alpha=2 * ev.alpha)
    floor = 1.0 / (summary.n + 1)
    usable = nulls.sidak(floor, ev.selection) <= ev.alpha
    return PipelineNull(
        n=summary.n, p_value=summary.p_value, p_value_adjusted=nulls.sidak(summary.p_value, ev.selection),
        floor=floor, usable=usable, needed=min_null_trials(ev.alpha, ev.selection), mean=summary.mean,
        low=summary.low, high=summary.high,
    )


def _rule(ev: Evidence, point: _Point, null: PipelineNull | None) -> tuple[str, str]:
    """The four outcomes for one family's evidence at one point (see :func:`decide`)."""
    est, test = point.estimate, point.test
    return decide(test.p_value, test.p_value_adjusted, est.ci_low, est.ci_high, margin=ev.margin,
                  alpha=ev.alpha, selection=ev.selection, constant=point.constant, null=null,
                  control_separability=ev.control_separability)


def decide(
    p_value: float, p_value_adjusted: float, ci_low: float, ci_high: float, *, margin: float,
    alpha: float = DEFAULT_ALPHA, selection: int = 1, constant: bool = False,
    null: PipelineNull | None = None, control_separability: float | None = None,
) -> tuple[str, str]:
    """The rules of :mod:`mgmt_audit.analysis` over plain numbers: (outcome, reason).

    ``p_value`` / ``p_value_adjusted``: the one-sided test of AUC > 0.5 before and after selection
    among ``selection`` configurations; ``ci_low`` / ``ci_high``: one-sided bounds on the AUC at level
    ``alpha`` each (the lower one already at the selection-adjusted level), both in [0, 1];
    ``margin``: the smallest AUC of interest, in (0.5, 1]. ``constant``: every run predicts one value;
    ``null``: the retrained label-permutation null, when run; ``control_separability``: the positive
    control's final-layer separability, when known. The outcomes are checked in order; the reason says
    which part of the rule decided. :func:`judge` calls this for AUC evidence; reported accuracies,
    sensitivities and specificities (:mod:`mgmt_audit.analysis.claims`) call it with the bounds on the
    AUC their operating point implies.
    """
    after = f" after selection among {selection}" if selection > 1 else ""
    if constant:
        return INCONCLUSIVE, ("every run predicts one value for all patients: a collapsed model says "
                              "nothing about the images")
    if ci_high < 0.5:
        return INCONCLUSIVE, (f"AUC below 0.5 beyond its interval (upper bound {ci_high:.3f}): worse than "
                              f"chance, which chance alone does about once in {round(1 / alpha)} null "
                              "cohorts and inverted labels or a pipeline bug do more often; it shows "
                              "neither a signal nor its absence")
    test_beyond = p_value_adjusted <= alpha
    bound_beyond = ci_low > 0.5
    null_blocks = null is not None and null.usable and null.p_value_adjusted > alpha
    if test_beyond and bound_beyond and not null_blocks:
        if ci_high < margin:
            return SIGNAL_BELOW_MARGIN, (f"beyond chance at alpha {alpha:g}{after}, but the upper bound "
                                         f"{ci_high:.3f} lies below the margin {margin:g}: real and small")
        return SIGNAL, (f"beyond chance at alpha {alpha:g}{after}, and an AUC of {margin:g} or more "
                        "is not excluded")
    if test_beyond and not bound_beyond:
        why_not = f"the test rejects chance but the lower bound {ci_low:.3f} does not exceed 0.5"
    elif null_blocks:
        why_not = (f"the retrained label-permutation null does not reject chance (p = "
                   f"{null.p_value_adjusted:.3g}{after})")
    elif p_value <= alpha:
        why_not = f"beyond chance before the selection adjustment (p = {p_value:.3g}), not after"
    else:
        why_not = f"not beyond chance (p = {p_value_adjusted:.3g}{after})"
    if ci_high >= margin:
        return INCONCLUSIVE, f"{why_not}, and an AUC up to {ci_high:.3f} cannot be excluded"
    if ci_low <= 1 - margin:
        return INCONCLUSIVE, (f"{why_not}; an inverted signal (AUC down to {ci_low:.3f}, i.e. "
                              f"{1 - ci_low:.3f} with the labels swapped) cannot be excluded: "
                              "check the label coding")
    if control_separability is not None and control_separability < CONTROL_MIN:
        return INCONCLUSIVE, (f"{why_not}, but the positive control separated only "
                              f"{control_separability:.2f} (< {CONTROL_MIN}): the pipeline may be "
                              "unable to learn any signal")
    if null is not None and null.usable and null.p_value_adjusted <= alpha:
        return INCONCLUSIVE, (f"{why_not}, but the retrained label-permutation null rejects chance "
                              f"(p = {null.p_value_adjusted:.3g}): the two nulls disagree")
    if null is not None and null.p_value <= null.floor <= FLOOR_SPEAKS:
        return INCONCLUSIVE, (f"{why_not}, but the observed AUC exceeds all {null.n} retrained null "
                              f"trials (p = {null.p_value:.3g}, the floor of {null.n} trials): run at least "
                              f"{null.needed} null trials")
    return NO_SIGNAL, (f"{why_not}, and an AUC of {margin:g} or more is excluded (upper bound "
                       f"{ci_high:.3f} < {margin:g})")


def _span(main: Estimate, low: Estimate, high: Estimate) -> Estimate:
    """The interval a printed number supports: the lower bound of its low end, the upper of its high end."""
    return Estimate(main.auc, main.auc_adjusted, main.se, low.ci_low, high.ci_high, main.confidence,
                    f"{main.method}, over the rounding interval [{low.auc:.4g}, {high.auc:.4g}]",
                    main.n_pos, main.n_neg, main.n_runs, main.run_aucs)


def bound_words(ci_low: float, ci_high: float, margin: float, label: str) -> str:
    """What the AUC bounds [``ci_low``, ``ci_high``] exclude or cannot exclude, in words, for the
    verdict ``label`` (one of ``OUTCOMES``) at ``margin``."""
    lo, hi = ci_low, ci_high
    if label == SIGNAL:
        return f"AUC {lo:.2f} to {hi:.2f}: above chance, AUC >= {margin:g} not excluded"
    if label == SIGNAL_BELOW_MARGIN:
        return f"AUC {lo:.2f} to {hi:.2f}: above chance, AUC >= {margin:g} excluded"
    if label == NO_SIGNAL:
        return f"AUC >= {margin:g} excluded (upper bound {hi:.2f})"
    if hi < 0.5:
        return f"AUC below chance (upper bound {hi:.2f})"
    if hi >= margin:
        return f"cannot exclude AUC up to {hi:.2f}"
    if lo <= 1 - margin:
        return f"AUC >= {margin:g} excluded, but not an inverted signal down to AUC {lo:.2f}"
    return f"AUC >= {margin:g} excluded (upper bound {hi:.2f}), but see why"


def _sentence(ev: Evidence, est: Estimate, test: ChanceTest, null: PipelineNull | None, label: str,
              words: str) -> str:
    what = f"mean AUC of {est.n_runs} runs" if est.n_runs > 1 else "AUC"
    level = round(100 * (1 - 2 * ev.alpha))
    adjusted = f" (lower bound Šidák-adjusted for {ev.selection})" if ev.selection > 1 else ""
    parts = [f"{ev.design}: {what} {est.auc:.3f}, {level}% interval{adjusted} [{est.ci_low:.3f}, "
             f"{est.ci_high:.3f}] on {est.n_pos} positive / {est.n_neg} negative"]
    chance = f"p = {test.p_value:.3g} against chance ({test.method})"
    if ev.selection > 1:
        chance += (f", {test.p_value_adjusted:.3g} after selection among {ev.selection} (Šidák; "
                   f"winner's-curse corrected AUC {est.auc_adjusted:.3f}; the best of {ev.selection} "
                   f"null runs reaches {test.expected_best_null_auc:.3f})")
    parts.append(chance)
    if null is not None:
        text = f"retrained label-permutation null of {null.n} trials: p = {null.p_value:.3g}"
        if not null.usable:
            text += (f" (too few to decide at alpha {ev.alpha:g}: needs {null.needed} null trials, whose smallest "
                     "p, 1 / (n + 1), can fall below alpha after the selection adjustment)")
        parts.append(text)
    parts.append(f"{words} (margin {ev.margin:g})")
    return "; ".join(parts)


def _bimodality(ev: Evidence) -> Bimodality:
    ps: list[float | None] = []
    coefficients: list[float | None] = []
    for run in ev.runs:
        scores = np.asarray(run.scores, dtype=float)
        shaped = scores.size >= 4 and np.ptp(scores) > 0
        ps.append(dip_test(scores)[1] if shaped else None)
        coefficients.append(bimodality_coefficient(scores) if shaped else None)
    return Bimodality(tuple(ps), tuple(coefficients), sum(p is not None and p < ev.alpha for p in ps), len(ps))


def _loss(ev: Evidence) -> tuple[LossPlateau, ...]:
    if ev.positive_share is None:
        return ()
    out = []
    for split, curves in (("validation", ev.val_losses), ("training", ev.train_losses)):
        curves = [c for c in curves if len(c) >= CHANCE_EPOCHS]
        if curves:
            chance = chance_plateau(curves, ev.positive_share, k=CHANCE_EPOCHS)
            out.append(LossPlateau(split, chance.n_at_chance, chance.n_runs, chance.entropy))
    return tuple(out)


def _supporting(ev: Evidence, bimodality: Bimodality | None, loss: Sequence[LossPlateau]) -> tuple[str, ...]:
    parts = []
    if bimodality is not None:
        tested = [p for p in bimodality.dip_p if p is not None]
        constant = bimodality.n_runs - len(tested)
        text = (f"predictions multimodal (dip test p < {ev.alpha:g}) in {bimodality.n_multimodal} of "
                f"{bimodality.n_runs} run(s)")
        if tested:
            text += f", dip p per run from {min(tested):.2g} to {max(tested):.2g}"
        if constant:
            text += f"; {constant} run(s) constant"
        parts.append(text)
    for plateau in loss:
        parts.append(f"{plateau.n_at_chance} of {plateau.n_runs} runs' {plateau.split} loss ends at the "
                     f"chance loss H(p) = {plateau.chance_loss:.3f}")
    if ev.probe_separability is not None:
        text = f"final-layer separability {ev.probe_separability:.2f}"
        if ev.control_separability is not None:
            text += f" vs {ev.control_separability:.2f} on the MNIST control"
        parts.append(text)
    return tuple(parts)
